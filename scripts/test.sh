#!/usr/bin/env bash
# The README's test command: sets up .venv (the `test` extra: every optional package the tests
# import) and runs the whole test suite.
#   scripts/test.sh            everything (what CI runs: .ci/run)
#   scripts/test.sh --fast     the fast subset: tests not marked `slow` (the end-to-end runs)
# Further arguments go to pytest.
set -euo pipefail
marker=()
if [ "${1:-}" = "--fast" ]; then
    shift
    marker=(-m "not slow")
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# Headless OpenGL (EGL + Mesa) for the stimulus rendering tests: install the Debian packages
# that are missing (checked per package: a pipe from `ldconfig -p` into `grep -q` can fail under
# pipefail and would reinstall every time).
gl_pkgs="libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri"
if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for pkg in $gl_pkgs; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        case "$status" in *"ok installed"*) ;; *) missing="$missing $pkg" ;; esac
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update >&2 && apt-get install -y --no-install-recommends $missing >&2
        elif command -v sudo >/dev/null 2>&1; then
            sudo apt-get update >&2 && sudo apt-get install -y --no-install-recommends $missing >&2
        else
            echo "missing headless GL libraries:$missing (install them with apt-get)" >&2
        fi
    fi
fi
py=$(bash "$root/scripts/setup-env.sh" test)
cd "$root"
"$py" -m ruff check .
"$py" -m pytest -q ${marker[@]+"${marker[@]}"} "$@"
