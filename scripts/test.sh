#!/usr/bin/env bash
# The README's test command: sets up .venv and runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(bash "$root/scripts/setup-env.sh" test)
cd "$root"
"$py" -m ruff check .
"$py" -m pytest -q "$@"
