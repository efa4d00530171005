#!/usr/bin/env bash
# Creates .venv (Python 3.10 when available: the Open Ephys Python Processor embeds 3.10) and
# installs sweepsort into it with the given extras. Idempotent; prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-test}
venv="$root/.venv"
pick_python() {
    for p in "${SWEEPSORT_PYTHON:-}" python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python3.10" \
             /root/.pyenv/versions/3.10.13/bin/python3.10 python3.11 python3; do
        [ -n "$p" ] || continue
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; assert sys.version_info >= (3, 10)' 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    echo "no Python >= 3.10 found (set SWEEPSORT_PYTHON)" >&2; return 1
}
if [ ! -x "$venv/bin/python" ]; then
    py=$(pick_python)
    "$py" -m venv "$venv" >&2
fi
stamp="$venv/.installed-$extras"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -e "$root[$extras]" >&2
    touch "$stamp"
fi
echo "$venv/bin/python"
