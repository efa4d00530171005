#!/usr/bin/env bash
# The README's test command: sets up .venv and runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Headless OpenGL (EGL + Mesa) for the stimulus rendering tests: install when missing.
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || ! ldconfig -p 2>/dev/null | grep -q 'libGL.so.1'; then
    gl_pkgs="libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri"
    if [ "$(id -u)" = 0 ]; then
        apt-get update >&2 && apt-get install -y --no-install-recommends $gl_pkgs >&2
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update >&2 && sudo apt-get install -y --no-install-recommends $gl_pkgs >&2
    else
        echo "missing headless GL libraries: install $gl_pkgs" >&2
    fi
fi
py=$(bash "$root/scripts/setup-env.sh" test)
cd "$root"
"$py" -m ruff check .
"$py" -m pytest -q "$@"
