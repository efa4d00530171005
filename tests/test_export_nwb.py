"""``sweepsort export-nwb``: the synthetic recording (offline.analysis.synthetic: an Open Ephys
Binary recording whose TTL events encode two stimulus sessions, the session files with frame
logs, a sort of known spikes) written as NWB, read back with pynwb and checked with
nwbinspector; and the error paths (exit status 2, nothing written)."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import nwbinspector  # the test extra: exercised, never skipped
import pynwb
import pytest

from offline.analysis import synthetic
from offline.cli import main as cli_main
from offline.sort.sortfile import load_sort

pytestmark = pytest.mark.slow  # sorts exported to NWB and read back

SOFTWARE_MS = 1714564800123  # 2024-05-01T12:00:00.123Z
START_UTC = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc)
SUBJECT = ["--subject-id", "m1", "--species", "Mus musculus", "--age", "P90D",
           "--location", "VISp"]


def _sync_messages(rec_dir) -> None:
    """What the GUI (0.6+) writes beside a Binary recording."""
    (rec_dir / "sync_messages.txt").write_text(
        f"Software Time (milliseconds since midnight Jan 1st 1970 UTC): {SOFTWARE_MS}\n"
        f"Start Time for Acquisition Board (100) - Rhythm Data @ 30000 Hz: "
        f"{synthetic.FIRST_SAMPLE}\n")


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    info = synthetic.make_recording(tmp_path_factory.mktemp("nwb") / "rec", with_online=False)
    _sync_messages(info["root"] / "Record Node 101" / "experiment1" / "recording1")
    return info


@pytest.fixture(scope="module")
def exported(rec, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "session.nwb"
    code = cli_main(["export-nwb", str(rec["root"]), "--sort", str(rec["sort_dir"]), "--out",
                     str(out), *SUBJECT])
    assert code == 0
    return out


def _bare_copy(rec, tmp_path):
    """The recording's Record Node alone: no stimulus session files, no sync_messages.txt."""
    node = tmp_path / "bare" / "Record Node 101"
    shutil.copytree(rec["root"] / "Record Node 101", node)
    (node / "experiment1" / "recording1" / "sync_messages.txt").unlink()
    return tmp_path / "bare", node


def test_start_time_electrodes_and_units_are_the_recordings_and_the_sorts(rec, exported):
    res = load_sort(rec["sort_dir"])
    a, fs = res.arrays, synthetic.FS
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == START_UTC
        el = nwb.electrodes.to_dataframe()
        assert len(el) == synthetic.N_CHANNELS
        assert np.array_equal(el["rel_x"], a["channel_positions_um"][:, 0])
        assert np.array_equal(el["rel_y"], a["channel_positions_um"][:, 1])
        assert set(el["location"]) == {"VISp"}
        assert nwb.subject.subject_id == "m1"
        units = nwb.units
        assert len(units) == res.n_units == 3
        assert units.resolution == pytest.approx(1 / fs)
        for u in range(res.n_units):
            t = units.get_unit_spike_times(u)
            # 0 s = the first recorded sample (the sample the Software Time refers to)
            assert np.array_equal(t, np.sort(a["spike_index"][a["spike_unit"] == u]) / fs)
            assert np.allclose(t, rec["spike_times_s"][u] - synthetic.FIRST_SAMPLE / fs,
                               atol=0.5 / fs)
            assert np.allclose(units["waveform_mean"][u], a["templates_uv"][u].T * 1e-6)
            assert list(units["electrodes"][u].index) == list(range(synthetic.N_CHANNELS))
            m = res.meta["metrics"][u]
            for k in ("n_spikes", "firing_rate_hz", "snr", "presence_ratio", "peak_channel"):
                assert units[k][u] == pytest.approx(m[k])


def test_one_trial_per_presented_sweep_at_its_on_screen_time(rec, exported):
    from stimulus.plan import BLANK, STIMULUS

    t0 = synthetic.FIRST_SAMPLE / synthetic.FS
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        trials = nwb.trials.to_dataframe()
        epochs = nwb.epochs.to_dataframe()
        stim = set(nwb.stimulus)
    names = ["drift", "sparse"]
    assert len(trials) == sum(t["table"].order.size for t in rec["truth"])
    assert [list(tags) for tags in epochs["tags"]] == [[n] for n in names]
    assert stim == {f"{k}_{n}" for k in ("refreshes", "flip_interval") for n in names}
    assert np.all(np.diff(trials["start_time"]) > 0)
    for name, truth in zip(names, rec["truth"], strict=True):
        rows = trials[trials["experiment"] == name]
        table, plan = truth["table"], truth["plan"]
        assert np.array_equal(rows["sweep_index"], table.order)
        assert np.array_equal(rows["is_blank"], table.order == 65535)
        shown = np.isin(plan.phase, (STIMULUS, BLANK))
        first = [np.flatnonzero(shown & (plan.presentation == p))[0]
                 for p in range(table.order.size)]
        last = [np.flatnonzero(shown & (plan.presentation == p))[-1]
                for p in range(table.order.size)]
        period = 1 / synthetic.REFRESH_HZ
        assert np.allclose(rows["start_time"], truth["onscreen_s"][first] - t0, atol=1e-4)
        assert np.allclose(rows["stop_time"], truth["onscreen_s"][last] + period - t0,
                           atol=1e-4)
        assert np.array_equal(rows["n_refreshes"], np.subtract(last, first) + 1)
        assert np.all(rows["dropped_frames"] == 0)
        for param in table.conditions[0]:
            want = [table.conditions[s][param] if s != 65535 else np.nan for s in table.order]
            assert np.allclose(rows[param].to_numpy(float), want, equal_nan=True), param
    assert set(trials.loc[trials["experiment"] == "drift", "xi"].isna()) == {True}


def test_nwbinspector_finds_nothing_worse_than_a_suggestion(exported):
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(exported)))
    serious = [(m.importance.name, m.check_function_name, m.message) for m in messages
               if m.importance.value >= nwbinspector.Importance.BEST_PRACTICE_VIOLATION.value]
    assert serious == []
    # what remains is metadata only the lab knows (experimenter, institution, ...)
    assert {m.check_function_name for m in messages} <= {
        "check_experimenter_exists", "check_experiment_description", "check_institution",
        "check_keywords", "check_description"}


def test_settings_xml_date_without_stimulus_or_subject(rec, tmp_path, capsys):
    session, node = _bare_copy(rec, tmp_path)
    (node / "settings.xml").write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<SETTINGS><INFO><VERSION>0.6.7</VERSION>"
        "<DATE>3 Apr 2025 13:38:45</DATE></INFO></SETTINGS>\n")
    out = tmp_path / "bare.nwb"
    assert cli_main(["export-nwb", str(session), "--sort", str(rec["sort_dir"]), "--out",
                     str(out)]) == 0
    text = capsys.readouterr().out
    assert "settings.xml (DATE" in text
    assert "no stimulus presentations in this recording" in text
    assert "0 trials from 0 experiments" in text
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == dt.datetime(2025, 4, 3, 13, 38, 45).astimezone()
        assert nwb.trials is None and nwb.epochs is None
        assert len(nwb.units) == 3 and set(nwb.electrodes["location"][:]) == {"unknown"}
    worst = [m.check_function_name for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(out))
             if m.importance.value >= nwbinspector.Importance.CRITICAL.value]
    assert worst == ["check_subject_exists"]


def test_errors_exit_2_and_write_nothing(rec, tmp_path, capsys):
    root, sort = str(rec["root"]), str(rec["sort_dir"])
    out = tmp_path / "x.nwb"

    def run(*args):
        code = cli_main(["export-nwb", *args])
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("sweepsort export-nwb: "), err
        return code, err

    # no sort folder
    code, err = run(root, "--sort", str(tmp_path / "nope"), "--out", str(out))
    assert code == 2 and "not a complete sort folder" in err
    assert not out.exists()
    # no folder for the output
    code, err = run(root, "--sort", sort, "--out", str(tmp_path / "no" / "x.nwb"))
    assert code == 2 and "no such folder for the output" in err
    # a start time without its zone, or not a time
    code, err = run(root, "--sort", sort, "--out", str(out), "--session-start",
                    "2024-05-01T12:00:00")
    assert code == 2 and "give the time zone too" in err
    code, err = run(root, "--sort", sort, "--out", str(out), "--session-start", "noon")
    assert code == 2 and "not an ISO-8601 time" in err
    assert not out.exists()
    # an existing output is kept without --overwrite (and no temporary file is left)
    out.write_bytes(b"keep")
    code, err = run(root, "--sort", sort, "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert out.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nwb"]
    # a recording without any start time: a hint, nothing written; --session-start fixes it
    session, _ = _bare_copy(rec, tmp_path)
    out2 = tmp_path / "y.nwb"
    code, err = run(str(session), "--sort", sort, "--out", str(out2))
    assert code == 2 and "no start time" in err and "--session-start" in err
    assert not out2.exists()
    assert cli_main(["export-nwb", str(session), "--sort", sort, "--out", str(out2),
                     "--session-start", "2024-05-01T14:00:00+02:00"]) == 0
    with pynwb.NWBHDF5IO(str(out2), "r") as io:
        assert io.read().session_start_time == dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    # --overwrite replaces it
    assert cli_main(["export-nwb", root, "--sort", sort, "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    capsys.readouterr()
    # a sort of another stream (other length) is refused
    other = tmp_path / "other_sort"
    shutil.copytree(sort, other)
    meta = (other / "sort.json").read_text().replace('"n_samples": ', '"n_samples": 1')
    (other / "sort.json").write_text(meta)
    code, err = run(root, "--sort", str(other), "--out", str(tmp_path / "z.nwb"))
    assert code == 2 and "the sort is not of this stream" in err
    assert not (tmp_path / "z.nwb").exists()


def test_start_time_of_the_real_legacy_example():
    """The GUI 0.6.7 example (legacy format): the Software Time of messages.events, which is
    the settings.xml DATE (13:38:45, the acquisition computer's local time, UTC+2) in UTC."""
    from paths import EXAMPLE_DATA

    from offline.nwb_export import recording_start_time, settings_xml_date
    from offline.recording import open_recording

    stream = open_recording(EXAMPLE_DATA)
    start, origin = recording_start_time(stream.path)
    assert origin.endswith("messages.events (Software Time)")
    assert start == dt.datetime(2025, 4, 3, 11, 38, 45, 31000, tzinfo=dt.timezone.utc)
    local = settings_xml_date(EXAMPLE_DATA / "Record Node 101" / "settings.xml")
    assert local.replace(tzinfo=None) == dt.datetime(2025, 4, 3, 13, 38, 45)


def test_a_legacy_message_file_with_two_recordings_gives_each_its_own_start():
    from offline.nwb_export import software_start_time

    text = ("1743680325031, Software Time (milliseconds since midnight Jan 1st 1970 UTC)\n"
            "251635, Start Time for File Reader (100) - example_data @ 40000 Hz\n"
            "251635, TTL Line=1 State=0\n"
            "1743680400500, Software Time (milliseconds since midnight Jan 1st 1970 UTC)\n"
            "3251000, Start Time for File Reader (100) - example_data @ 40000 Hz\n")
    first = dt.datetime(2025, 4, 3, 11, 38, 45, 31000, tzinfo=dt.timezone.utc)
    second = dt.datetime(2025, 4, 3, 11, 40, 0, 500000, tzinfo=dt.timezone.utc)
    assert software_start_time(text, 251635) == first
    assert software_start_time(text, 3251000) == second
    assert software_start_time(text, None) == first  # no match: the first start
    assert software_start_time("no times here\n") is None


def test_a_real_sort_and_a_sort_without_units(tmp_path, capsys):
    """Sorts made by the sort pipeline (probe name, its metrics, extra-template arrays):
    8 channels with units, and 4 channels of noise whose sort has no unit (no Units table)."""
    from synth import make_recording
    from test_recording import write_binary_recording

    from oe_plugin.probe import Probe
    from offline.sort import RecordingSource, settings_from_table, sort_recording

    pos_um = np.column_stack([np.tile([0.0, 16.0], 4), 25.0 * np.arange(8)])
    data, _ = make_recording(n_channels=8, duration_s=6.0, rate_hz=5.0, snr=8.0,
                             positions_um=pos_um, decay_um=30.0, seed=3)
    rec_dir = tmp_path / "s" / "Record Node 102" / "experiment1" / "recording1"
    write_binary_recording(rec_dir, data, 1000, [])
    (rec_dir / "sync_messages.txt").write_text(
        f"Software Time (milliseconds since midnight Jan 1st 1970 UTC): {SOFTWARE_MS}\n"
        "Start Time for Acquisition Board (100) - Rhythm Data @ 30000 Hz: 1000\n")
    res = sort_recording(RecordingSource(str(tmp_path / "s")), tmp_path / "sort",
                         settings_from_table({}), Probe("test-linear", pos_um, np.zeros(8, int)))
    assert res.n_units >= 2
    out = tmp_path / "real.nwb"
    assert cli_main(["export-nwb", str(tmp_path / "s"), "--sort", str(tmp_path / "sort"),
                     "--out", str(out), *SUBJECT]) == 0
    assert f"{res.n_units} units on 8 electrodes, 0 trials" in capsys.readouterr().out
    a, fs = res.arrays, res.meta["recording_sample_rate_hz"]
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == START_UTC
        assert list(nwb.devices) == ["test-linear"]
        assert np.array_equal(nwb.electrodes["rel_x"][:], pos_um[:, 0])
        assert len(nwb.units) == res.n_units
        for u in range(res.n_units):
            want = np.sort(a["spike_index"][a["spike_unit"] == u]) / fs
            assert np.array_equal(nwb.units.get_unit_spike_times(u), want)
            m = res.meta["metrics"][u]
            assert nwb.units["isi_violation_fraction"][u] == pytest.approx(
                m["isi_violation_fraction"], nan_ok=True)
            assert nwb.units["amplitude_cutoff"][u] == pytest.approx(m["amplitude_cutoff"],
                                                                     nan_ok=True)
    serious = [m.check_function_name for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(out))
               if m.importance.value >= nwbinspector.Importance.BEST_PRACTICE_VIOLATION.value]
    assert serious == []
    # pure noise on 4 channels, sorted channel by channel: no unit
    noise_dir = tmp_path / "n" / "Record Node 102" / "experiment1" / "recording1"
    write_binary_recording(noise_dir, np.random.default_rng(0).normal(0, 10, (4, 60000)), 0, [])
    assert cli_main(["sort", str(tmp_path / "n"), "--out", str(tmp_path / "nsort"), "--probe",
                     "single", "--jobs", "1", "--quiet"]) == 0
    assert load_sort(tmp_path / "nsort").n_units == 0
    out = tmp_path / "none.nwb"
    assert cli_main(["export-nwb", str(tmp_path / "n"), "--sort", str(tmp_path / "nsort"),
                     "--out", str(out), "--session-start", "2024-05-01T12:00:00+00:00"]) == 0
    assert "0 units on 4 electrodes" in capsys.readouterr().out
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.units is None and len(nwb.electrodes) == 4
