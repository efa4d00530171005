"""The data model on a recording directory written by the other parts' writers (Binary
recording with protocol-encoded TTLs, sweepstim session files, a sort folder + Phy export, an
online spike file), and ``sweepsort report`` rendered headless from it."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from paths import EXAMPLE_DATA  # noqa: E402

from offline.analysis import synthetic as syn  # noqa: E402
from offline.analysis.adapters import load_phy_folder  # noqa: E402
from offline.analysis.grouping import find_recordings, group_recordings, identity  # noqa: E402
from offline.analysis.model import Recording  # noqa: E402
from offline.analysis.presentations import build_presentations  # noqa: E402
from offline.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return syn.make_recording(tmp_path_factory.mktemp("rec") / "2024-05-01_12-00-00")


def test_sorts_and_neurons(made):
    rec = Recording(made["root"])
    assert list(rec.sorts) == ["sort1", "online"]
    assert not rec.sort.loaded and "not loaded" in repr(rec.sort)
    assert rec.sort.name == "sort1" and len(rec.n) == 3
    for u, truth in enumerate(made["spike_times_s"]):
        n = rec.n[u]
        np.testing.assert_allclose(n.times_s, truth, atol=0.5 / syn.FS)
        assert n.template_uv.shape == (syn.N_CHANNELS, 40) and n.channel == u
        assert n.position_um == (0.0, 25.0 * u)
    assert rec.n2 is rec.n[2] and "Neuron 2 of sort1" in repr(rec.n2)
    online = rec.sorts["online"].neurons
    assert sorted(online) == [1000, 1001, 1002]  # detection only: one MUA per channel
    np.testing.assert_array_equal(online[1001].spike_samples, rec.n[1].spike_samples)
    phy = load_phy_folder(made["sort_dir"] / "phy", syn.FIRST_SAMPLE)
    for u in range(3):
        np.testing.assert_array_equal(phy.spike_samples[u], rec.n[u].spike_samples)


def test_experiments_from_decoded_ttls_and_session_files(made):
    rec = Recording(made["root"])
    e = rec.experiments
    assert [x.name for x in e] == ["drift", "sparse"]
    assert rec.refresh_source_used == "ttl"
    for exp, truth in zip(e, made["truth"], strict=True):
        assert exp.refreshes.size == truth["plan"].n_frames
        np.testing.assert_array_equal(exp.refreshes["sweep_index"], truth["code"])
        onsets = exp.refresh_onset_s()
        np.testing.assert_allclose(onsets, truth["onscreen_s"], atol=1e-4)  # lag corrected
    np.testing.assert_array_equal(rec.e1.movie().onset_s, rec.e1.refresh_onset_s())
    drift = rec.e0
    table_per_refresh = drift.refresh_table()
    shown = drift.refreshes["sweep_index"] != 65535
    np.testing.assert_array_equal(
        table_per_refresh["ori_deg"][shown],
        [drift.conditions[i]["ori_deg"] for i in drift.refreshes["sweep_index"][shown]])
    assert drift.parameters == ["ori_deg"] and "grating" in repr(drift)
    pres = drift.presentations()
    table = made["truth"][0]["table"]
    assert len(pres) == table.order.size
    np.testing.assert_array_equal(pres.sweep_index, table.order)
    assert pres.is_blank.sum() == (table.order == 65535).sum() > 0
    np.testing.assert_allclose(pres.duration_s, 0.5, atol=1e-3)
    # the same presentations from the codes alone (no frame plan)
    alone = build_presentations(drift.refreshes["sample_number"], drift.refreshes["sweep_index"],
                                sample_rate_hz=drift.sample_rate_hz, refresh_hz=syn.REFRESH_HZ,
                                conditions=drift.conditions, blank_s=0.5)
    np.testing.assert_array_equal(alone.sweep_index, pres.sweep_index)
    np.testing.assert_allclose(alone.onset_s, pres.onset_s)


def test_online_sweep_file_gives_the_same_experiments(made):
    ttl = Recording(made["root"]).experiments
    online = Recording(made["root"], refresh_source="online")
    assert [e.name for e in online.experiments] == ["drift", "sparse"]
    assert online.refresh_source_used == "online"
    for a, b in zip(ttl, online.experiments, strict=True):
        np.testing.assert_array_equal(a.refreshes, b.refreshes)


@pytest.mark.slow
def test_gui_spike_detector_files_of_a_real_recording(tmp_path):
    from offline.legacy_spikes import read_legacy_spikes

    rec = Recording(EXAMPLE_DATA)
    assert list(rec.sorts) == ["gui:Record Node 105"]
    files = sorted((EXAMPLE_DATA / "Record Node 105").glob("*.spikes"))
    assert sorted(rec.n) == [1000 * k for k in range(len(files))]  # all unsorted: MUA
    for k, f in enumerate(files):
        d = read_legacy_spikes(f)
        n = rec.n[1000 * k]
        np.testing.assert_array_equal(n.spike_samples, np.sort(d["sample_numbers"]))
        assert n.template_uv.shape == d["waveforms_uv"].shape[1:]
        assert n.channel in d["channels"]
    assert rec.experiments == []
    out = tmp_path / "real.html"
    assert main(["report", str(EXAMPLE_DATA), "--out", str(out), "--units", "0", "1000",
                 "--quiet"]) == 0
    text = out.read_text()
    assert text.count('<section class="unit"') == 2 and 'class="error"' not in text
    assert text.count('data-kind="template"') == 2


@pytest.mark.slow
def test_known_neurons_through_the_model(made):
    rec = Recording(made["root"])
    tune = rec.n0.tune(rec.e0, "ori_deg")
    assert tune is rec.n0.tune(rec.e0, "ori_deg")  # cached by settings
    assert abs((tune.preferred - syn.PREF_DIR_DEG + 180) % 360 - 180) < 6.0
    assert tune.dsi > 0.2 and np.isfinite(tune.baseline_hz)
    sta = rec.n1.sta(rec.e1)
    assert sta.peak_lag_ms == pytest.approx(syn.STA_LATENCY_MS, abs=10.0)
    y, x = np.unravel_index(np.argmax(sta.peak_map), sta.peak_map.shape)
    assert (x, 4 - 1 - y) == (syn.ON_CELL_XI, syn.ON_CELL_YI)
    assert rec.n2.isi().n_violations == 0
    ccg = rec.sort.correlograms()
    assert ccg.counts.shape == (3, 3, 101)


def test_grouping_without_fixed_folder_names(made, tmp_path):
    root = made["root"]
    assert identity(root) == (root.parent.parent.name, root.parent.name)
    (tmp_path / "any" / "where").mkdir(parents=True)
    other = tmp_path / "any" / "where"
    (other / "sweepsort-meta.json").write_text(json.dumps({"animal": "ptc22", "track": "tr1"}))
    assert find_recordings(tmp_path) == [other]
    animals = group_recordings([root, other], key=lambda p: ("ptc22", "tr1"))
    assert list(animals) == ["ptc22"]
    assert len(animals["ptc22"].tracks["tr1"].recordings) == 2


@pytest.mark.slow
def test_report_renders_headless_with_a_page_per_unit(made, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(made["root"]), "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert text.count('<section class="unit"') == 3
    assert '<section class="population"' in text
    assert 'class="error"' not in text
    for kind in ("rates", "correlograms", "pairwise_correlations", "ising"):
        assert f'data-kind="{kind}"' in text
    units = re.split(r'<section class="unit" id="unit-(\d+)">', text)[1:]
    assert [units[i] for i in range(0, len(units), 2)] == ["0", "1", "2"]
    for body in units[1::2]:
        kinds = re.findall(r'<figure class="fig" data-kind="(\w+)">', body)
        assert kinds == ["template", "acg", "isi", "psth", "tuning", "sta"]
    assert text.count("<figcaption>raster + PSTH heat map e0 by ori_deg<") == 3
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(pngs) == 4 + 3 * 6
    assert all(base64.b64decode(p[:12])[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.slow
def test_report_as_pdf(made, tmp_path):
    out = tmp_path / "report.pdf"
    assert main(["report", str(made["root"]), "--out", str(out), "--units", "0", "--quiet"]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") + data.count(
        b"/Type /Page ") + data.count(b"/Type/Page") >= 2


def test_report_cli_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no such recording directory" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sort_folder_made_by_the_offline_sorter(tmp_path):
    from synth import make_recording as make_gt
    from test_recording import write_binary_recording as write_gt

    from oe_plugin.probe import Probe
    from offline.sort import RecordingSource, load_sort, settings_from_table, sort_recording

    n_ch = 8
    pos = np.zeros((n_ch, 2))
    pos[:, 1] = 25.0 * np.arange(n_ch)
    pos[::2, 0] = 16.0
    data, truth = make_gt(n_channels=n_ch, duration_s=6.0, rate_hz=5.0, snr=8.0,
                          positions_um=pos, decay_um=30.0, seed=7)
    session = tmp_path / "session"
    write_gt(session / "Record Node 102" / "experiment1" / "recording1", data, 1000,
             [(2000, 0, 1, 1), (2600, 0, 0, 0)])
    out = session / "sorts" / "s1"
    sort_recording(RecordingSource(str(session)), out, settings_from_table({}),
                   Probe("t", pos, np.zeros(n_ch, int)), log=lambda m: None, progress=False)
    rec = Recording(session)
    assert list(rec.sorts) == ["s1"]  # its phy/ export is not listed again
    stored = load_sort(out)
    first = stored.meta["first_sample_number"]
    assert first == 1000 and len(rec.n) == stored.n_units > 0
    truth_abs = np.sort(truth["sample_index"]) + first
    for u, n in rec.n.items():
        want = np.sort(stored.arrays["spike_index"][stored.arrays["spike_unit"] == u]) + first
        np.testing.assert_array_equal(n.spike_samples, want)
        near = np.abs(truth_abs[np.clip(np.searchsorted(truth_abs, n.spike_samples), 0,
                                        truth_abs.size - 1)] - n.spike_samples)
        near = np.minimum(near, np.abs(truth_abs[np.clip(np.searchsorted(
            truth_abs, n.spike_samples) - 1, 0, truth_abs.size - 1)] - n.spike_samples))
        assert np.mean(near <= 12) > 0.9
        assert n.template_uv.ndim == 2 and n.position_um is not None
        assert n.metrics["n_spikes"] == n.n_spikes


SWEEPSTIM_SCRIPT = """\
from stimulus.script import Blanks, Experiment, Runs, Variable

experiment = Experiment(
    stimulus="grating",
    dynamic=dict(ori_deg=Variable([0, 45, 90], dim=0, shuffle=True),
                 sf_cpd=Variable([0.1, 0.2], dim=1, shuffle=True),
                 sweep_s=0.03, postsweep_s=0.01),
    runs=Runs(2, reshuffle=True),
    blanks=Blanks(every=4, duration_s=0.02),
    preexp_s=0.02,
    postexp_s=0.02,
)
"""


@pytest.mark.slow
def test_a_session_file_written_by_sweepstim_run(tmp_path):
    """`sweepstim run --offscreen` -> its TTL log sampled into a Binary recording -> the model
    finds the experiment and cuts the same presentations from the plan and from the codes."""
    from oe_plugin.protocol.oe_binary_events import write_binary_recording
    from oe_plugin.protocol.ttl_sim import SimSettings, sample_transitions
    from stimulus.cli import main as stim_main
    from stimulus.ttl.file import read_transition_log

    (tmp_path / "gratings.py").write_text(SWEEPSTIM_SCRIPT)
    (tmp_path / "rig.toml").write_text("[screen]\nwidth_px = 96\nheight_px = 72\n"
                                       "fullscreen = false\n\n[timing]\npriority = false\n")
    rec_root = tmp_path / "2024-05-01_12-00-00"
    code = stim_main(["run", str(tmp_path / "gratings.py"), "--config",
                      str(tmp_path / "rig.toml"), "--seed", "77", "--offscreen", "--ttl",
                      f"file:{tmp_path / 'ttl.tsv'}", "--out", str(rec_root / "stim") + "/",
                      "--quiet"])
    assert code == 0
    tr, _proto = read_transition_log(tmp_path / "ttl.tsv")
    ev = sample_transitions(tr, SimSettings(sample_rate_hz=30000.0, first_sample_number=1000))
    n = int(ev["sample_number"].max()) + 1000
    write_binary_recording(rec_root / "Record Node 101" / "experiment1" / "recording1",
                           sample_rate_hz=30000.0, n_samples=n, first_sample_number=1000,
                           n_channels=2, events=ev)
    rec = Recording(rec_root)
    (e,) = rec.experiments
    assert e.stimulus == "grating" and sorted(e.parameters) == ["ori_deg", "sf_cpd"]
    order = np.asarray(e.session["order"])
    pres = e.presentations()
    np.testing.assert_array_equal(pres.sweep_index, order)  # sweeps and blanks, exact
    stim = ~pres.is_blank
    np.testing.assert_allclose(pres.duration_s[stim], 0.03, atol=1e-3)
    np.testing.assert_allclose(pres.duration_s[~stim], 0.02, atol=1e-3)
    alone = build_presentations(e.refreshes["sample_number"], e.refreshes["sweep_index"],
                                sample_rate_hz=e.sample_rate_hz, refresh_hz=e.refresh_hz,
                                conditions=e.conditions, blank_s=e.session["blank_s"])
    np.testing.assert_array_equal(alone.sweep_index, pres.sweep_index)
    np.testing.assert_allclose(alone.onset_s, pres.onset_s)
    np.testing.assert_allclose(alone.offset_s, pres.offset_s)


def _unit_sections(text: str) -> str:
    return text[text.index('<section class="unit"'):]


@pytest.mark.slow
def test_parallel_and_serial_reports_have_the_same_unit_pages(made, tmp_path):
    """The unit pages are drawn from the same arrays by the same function in this process
    (jobs=1) or in worker processes (jobs=2): the HTML is byte-identical, images included."""
    from offline.analysis.report import write_report

    serial = write_report(Recording(made["root"]), tmp_path / "s.html", jobs=1)
    parallel = write_report(Recording(made["root"]), tmp_path / "p.html", jobs=2)
    assert serial["n_figures"] == parallel["n_figures"] == 4 + 3 * 6
    a = _unit_sections((tmp_path / "s.html").read_text())
    b = _unit_sections((tmp_path / "p.html").read_text())
    assert a.count('<section class="unit"') == 3 and a.count("data:image/png") == 3 * 6
    assert a == b


def test_psth_is_a_heat_map_of_conditions_by_time(made):
    rec = Recording(made["root"])
    res = rec.n0.psth(rec.e0, by="ori_deg", bin_ms=20.0)
    raster, heat = res.plot_heatmap()
    img = heat.images[0].get_array()
    assert img.shape == res.rate_hz.shape == (13, res.bin_centers_ms.size)  # 12 dirs + blank
    np.testing.assert_array_equal(np.asarray(img), res.rate_hz)
    # the raster is one artist holding every spike of every trial, grouped by condition
    n_spikes = sum(r.size for cond in res.raster_ms for r in cond)
    spikes = [ln for ln in raster.lines if ln.get_marker() == "|"]
    assert len(spikes) == 1 and spikes[0].get_xdata().size == n_spikes
    assert heat.figure.axes[-1].get_ylabel() == "rate (Hz)"  # the colour bar


def test_sta_axes_in_degrees_with_a_colour_bar(made):
    from offline.analysis.sta import grid_extent_deg

    rec = Recording(made["root"])
    e = rec.e1
    extent, ori = grid_extent_deg(e.stimulus, e.session["static"], e.conditions)
    assert extent == (-20.0, 20.0, -20.0, 20.0) and ori == 0.0  # sparse noise default 40 deg
    assert grid_extent_deg("msequence", {"width_deg": 10, "x_deg": 5.0}, [{"y_deg": -3}]) == (
        (0.0, 10.0, -19.0, 13.0), 0.0)
    axes = rec.n1.sta(e).plot_summary(extent_deg=extent)
    assert axes[0].images[0].get_extent() == list(extent)
    assert axes[0].get_xlabel() == "azimuth (°)" and axes[0].get_ylabel() == "elevation (°)"
    assert axes[0].figure.axes[-1].get_ylabel() == "Δ contrast"


@pytest.mark.slow
def test_unit_header_shows_each_quantity_once(made, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(made["root"]), "--out", str(out), "--quiet", "--jobs", "1"]) == 0
    text = out.read_text()
    headers = re.findall(r'<p class="unit-stats">(.*?)</p>', text)
    assert len(headers) == 3
    rec = Recording(made["root"])
    for u, head in enumerate(headers):
        names = re.findall(r'data-q="([^"]+)"', head)
        assert len(names) == len(set(names)) and names[:3] == ["spikes", "rate", "channel"]
        assert "firing_rate_hz" not in head and "n_spikes" not in head
        assert "peak_channel" not in head and head.count("Hz") == 1
        m = rec.n[u].metrics
        assert f"{m['n_spikes']} spikes" in head and f"rate {m['firing_rate_hz']:.2f} Hz" in head


@pytest.mark.slow
def test_report_progress_goes_through_tqdm(made, tmp_path, capsys, monkeypatch):
    import offline.analysis.report as report

    made_bars = []

    class Bar(report.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.asked_disable = kwargs.get("disable")
            made_bars.append(self)

    monkeypatch.setattr(report, "tqdm", Bar)
    out = tmp_path / "r.html"
    assert main(["report", str(made["root"]), "--out", str(out), "--units", "0", "2",
                 "--jobs", "2"]) == 0
    cap = capsys.readouterr()
    assert len(made_bars) == 1 and made_bars[0].total == 2 and made_bars[0].n == 2
    assert made_bars[0].asked_disable is False
    assert "unit pages" in cap.err and "2/2" in cap.err
    assert not re.search(r"^unit \d+$", cap.out, re.M)  # no bare 'unit N' lines any more
    assert main(["report", str(made["root"]), "--out", str(out), "--units", "0",
                 "--quiet"]) == 0
    assert made_bars[-1].asked_disable is True and "unit pages" not in capsys.readouterr().err
