"""The demo's replay and GUI-detector summaries say what their numbers count, and the numbers
add up: the host's summary counts the module's *TTL* events (a spike detector emits
none, while its spike file holds hundreds of spikes), and the comparison with the GUI's Spike
Detector splits our detections into near + not near a GUI spike."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from oe_plugin.host.session import SessionReport

ROOT = Path(__file__).resolve().parents[1]


def test_host_summary_says_emitted_events_are_ttl_events():
    report = SessionReport(module="spike_detector.py", runner="simulator", n_channels=16,
                           sample_rate_hz=40000.0, first_sample_number=0, n_blocks=3,
                           n_samples=3072, events=np.zeros(0), dropped_events=0,
                           ttl_delivered=5, spikes_delivered=0,
                           latencies_ms=np.array([0.1, 0.2, 0.3]),
                           block_sizes=np.array([1024, 1024, 1024]), wall_s=0.1)
    text = report.summary()
    assert "0 TTL events emitted by the module (0 dropped)" in text
    assert "5 TTL events + 0 upstream spikes delivered to it" in text
    assert " 0 events emitted" not in text


def _compare_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compare_gui_detector

    return compare_gui_detector


def test_gui_comparison_counts_add_up():
    c = _compare_module()
    # GUI spikes on stereotrodes 0, 0, 1, 2; ours: two near the first (both channels of
    # stereotrode 0), one near the second, one on the wrong stereotrode, one far from any
    g_t = np.array([100, 300, 500, 900])
    g_e = np.array([0, 0, 1, 2])
    o_t = np.array([100, 104, 302, 500, 700])
    o_e = np.array([0, 0, 0, 3, 1])
    r = c.match_counts(g_t, g_e, o_t, o_e, tol=5)
    assert r["gui_found_by_ours"] == 2 and r["gui_missed"] == 2
    assert r["ours_near_gui"] == 3 and r["ours_not_in_gui"] == 2
    assert r["gui_with_several_ours"] == 1
    assert r["ours"] == r["ours_near_gui"] + r["ours_not_in_gui"]
    assert r["gui_spikes"] == r["gui_found_by_ours"] + r["gui_missed"]

    text = c.format_comparison({**r, "tolerance_ms": 0.5, "window_s": 1.0})
    m = re.search(r"Ours: (\d+) = (\d+) near a GUI spike \+ (\d+) the GUI does not report", text)
    assert m and int(m[1]) == int(m[2]) + int(m[3]) == 5
    m = re.search(r"(\d+) of (\d+) \(\S+ %; (\d+) missed\)", text)
    assert m and int(m[2]) == int(m[1]) + int(m[3]) == 4
