#!/usr/bin/env bash
# The README's main command: sets up .venv, then
# 1. runs the virtual experiment (`sweepsort demo`, docs/demo.md): sweepstim shows drifting
#    gratings and sparse noise headless, model V1 neurons respond, their simulated 54-channel
#    Open Ephys recording (with the sweep TTLs) is sorted offline, replayed through the online
#    pipeline module in the host simulator, analysed (tuning, STA, report) and compared with the
#    ground truth -> out/demo/ (report.html, summary.json, summary.txt);
# 2. replays the bundled real Open Ephys recording (../shared/data/openephys-example-0.6.7,
#    Record Node 101 = raw) through the spike-detector module with the GUI Spike Detector's
#    settings, and compares with offline detection and the GUI's own detector.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(bash "$root/scripts/setup-env.sh" test)
data=${SWEEPSORT_DEMO_DATA:-$root/../shared/data/openephys-example-0.6.7}
out=${1:-$root/out/demo}
cd "$root"
echo "=== 1. the virtual experiment: sweepsort demo --out $out"
"$py" -m offline.cli demo --out "$out"
echo "=== 2. a real recording through the spike-detector module"
if [ -d "$data" ]; then
    "$py" -m offline.cli replay "$data" --node 101 \
        --module oe_plugin/modules/spike_detector.py \
        --config examples/gui_spike_detector.toml \
        --compare-offline --out "$out-real"
    if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
        echo "--- the same under the native runner (process() on a thread without the GIL, as in the GUI)"
        "$py" -m offline.cli replay "$data" --node 101 --native \
            --module oe_plugin/modules/spike_detector.py \
            --config examples/gui_spike_detector.toml --out "$out-real-native"
    fi
    echo "--- against the GUI's own Spike Detector (Record Node 105)"
    "$py" benchmarks/compare_gui_detector.py
else
    echo "(skipped: no $data)"
fi
