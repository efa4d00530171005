#!/usr/bin/env bash
# The README's main command: sets up .venv, then replays the bundled real Open Ephys recording
# (../shared/data/openephys-example-0.6.7, Record Node 101 = raw) through the spike-detector
# module in the host simulator with the GUI Spike Detector's settings, and prints what it found,
# how fast, whether offline detection agrees, and how it compares with the GUI's own detector.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(bash "$root/scripts/setup-env.sh" test)
data=${SWEEPSORT_DEMO_DATA:-$root/../shared/data/openephys-example-0.6.7}
out=${1:-$root/out/demo}
cd "$root"
"$py" -m offline.cli replay "$data" --node 101 \
    --module oe_plugin/modules/spike_detector.py \
    --config examples/gui_spike_detector.toml \
    --compare-offline --out "$out"
if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
    echo "--- the same under the native runner (process() on a thread without the GIL, as in the GUI)"
    "$py" -m offline.cli replay "$data" --node 101 --native \
        --module oe_plugin/modules/spike_detector.py \
        --config examples/gui_spike_detector.toml --out "$out-native"
fi
echo "--- against the GUI's own Spike Detector (Record Node 105)"
"$py" benchmarks/compare_gui_detector.py
