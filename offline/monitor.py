"""``sweepsort monitor``: live plots of the pipeline module's online statistics.

The Python Processor cannot draw, so this runs in its own process and re-reads
``<recording_dir>/sweepsort/online_stats.bin`` (+ ``.json``; :mod:`oe_plugin.outputs.stats_file`,
rewritten by the pipeline module every few seconds) on a timer. It shows one stimulus
experiment (``--experiment N``; default the latest with refreshes; 0 = before the first START
marker). The recording is found by the modules' own rule (:func:`locate_recording`: a path, or
the folder's bare name through the GUI's HTTP API / ``[output] directory``): per unit (the
most active ``max_units``) the firing rate over the acquisition with the
experiment's span shaded, and a tuning curve — the rate per value of one sweep-table dimension
of the experiment's session file, or per sweep index when it has none; with live motion
tracking (``[match] track_motion``), a third panel: the displacement the module applied per
depth window over time, and how many estimates it rejected. The figure title names
the experiment and its session file. Headless: ``--once --png OUT`` renders one PNG (Agg).

**Which session file is an experiment's.** First by the **session code**: the START block
on the TTL lines carries a 24-bit code (protocol version 2, docs/ttl-protocol.md), kept per
experiment in the statistics; a file whose ``ttl_protocol.session_code`` equals it is that
experiment's (twin sessions of the same script and seed are told apart this way), and an
experiment with a code never gets a file with another code. For the rest (older stimulus
software, a code that arrived corrupted) a file is matched by what the experiment *showed*:
the statistics keep, per experiment, its first sweep indices (blanks left out, repeats
collapsed; :data:`oe_plugin.online.stats.SIG_LEN`), compared position by position
with each file's presentation order (``sweep_table.order``, else its frame log's codes)
treated the same way. Experiments are taken in order; each gets the not yet taken file that
agrees best, if more than half of the compared positions agree. A file whose sweep table is
shorter than the highest sweep index the experiment showed never matches. An experiment that
cannot be compared (no sweep shown yet, or a file without an order) gets the file at its
position: experiment k <-> the k-th candidate. Candidates are ``--session`` (files or folders,
in the order given), else the files the pipeline was configured with (``[stats]
session_files`` in order, then ``session_dir``); a folder's ``*.session.json`` are taken in
``created_utc`` order. Experiment 0 and folded slots (``[stats] max_experiments`` exceeded)
get no file. Session files are re-read only when they change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oe_plugin.outputs.stats_file import (
    ExperimentStats,
    StatsFormatError,
    pick_experiment,
    read_stats,
)
from oe_plugin.protocol.spec import MAX_SWEEP_INDEX


@dataclass(frozen=True)
class SessionTable:
    """What the monitor needs from a stimulus session file.

    sweep_table : list of dict — row i = the parameters of sweep index i.
    order : int64 (n,) or None — the presentation order, blanks left out, repeats collapsed.
    session_code : the 24-bit code it sent on the TTL lines (None: an older file).
    """

    path: Path
    sweep_table: list
    order: np.ndarray | None
    session_code: int | None = None

    @property
    def name(self) -> str:
        n = self.path.name
        return n[:-len(".session.json")] if n.endswith(".session.json") else n


def collapse(indices) -> np.ndarray:
    """Sweep indices -> the sequence of distinct consecutive sweeps (blanks, markers and
    unknown codes left out): how the online statistics record an experiment's signature."""
    a = np.asarray(indices, np.int64)
    a = a[(a >= 0) & (a <= MAX_SWEEP_INDEX)]
    if a.size == 0:
        return a
    return a[np.r_[True, a[1:] != a[:-1]]]


_CACHE: dict[Path, tuple[int, SessionTable]] = {}


def load_session_table(path) -> SessionTable:
    """Read (or take from the cache while unchanged) one session file."""
    from offline.sweeps import read_session_file

    p = Path(path)
    mtime = p.stat().st_mtime_ns
    hit = _CACHE.get(p)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    s = read_session_file(p)
    table = s.raw.get("sweep_table")
    order = table.get("order") if isinstance(table, dict) else None
    if order is None and s.frame_log is not None and "code" in s.frame_log:
        from oe_plugin.protocol.verify import sent_sweeps

        order = sent_sweeps(s.frame_log["code"])  # session-code chunks and markers: none
    from offline.sweeps import session_code_of

    out = SessionTable(p, s.sweep_table, None if order is None else collapse(order),
                       session_code_of(s.raw))
    _CACHE[p] = (mtime, out)
    return out


def _created(p: Path):
    try:
        return (json.loads(p.read_text(encoding="utf-8")).get("created_utc") or "", str(p))
    except (OSError, ValueError):
        return ("", str(p))


def session_candidates(meta: dict, given=None) -> list[Path]:
    """The session files to match, in order: ``given`` (files or folders; one that does not
    exist is a ValueError), else the sidecar's ``session_files`` then ``session_dir`` (missing
    ones skipped: they may have been moved since)."""
    explicit = bool(given)
    items = [given] if isinstance(given, (str, Path)) else list(given or [])
    if not explicit:
        items = list(meta.get("session_files") or [])
        if meta.get("session_dir"):
            items.append(meta["session_dir"])
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.session.json"), key=_created)
        elif p.is_file():
            found = [p]
        elif explicit:
            raise ValueError(f"--session {p}: no such file or folder")
        else:
            found = []
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def load_sessions(paths) -> list[SessionTable]:
    """Read the candidates; unreadable ones are left out with a warning."""
    import warnings

    out = []
    for p in paths:
        try:
            out.append(load_session_table(p))
        except (OSError, ValueError) as exc:
            warnings.warn(f"session file skipped: {exc}", stacklevel=2)
    return out


def _score(e: ExperimentStats, s: SessionTable) -> float | None:
    """Agreement of an experiment with a session file: 0..1, or None when undecidable."""
    if e.sweep_frames.size > len(s.sweep_table):
        return 0.0  # it showed a sweep index the file's table does not have
    if s.order is None or s.order.size == 0 or e.signature.size == 0:
        return None
    n = min(e.signature.size, s.order.size)
    return float(np.mean(e.signature[:n] == s.order[:n]))


def match_sessions(experiments: list[ExperimentStats], sessions: list[SessionTable]
                   ) -> dict[int, int]:
    """{slot index in ``experiments``: index in ``sessions``} (see the module docstring)."""
    slots = [i for i, e in enumerate(experiments) if e.number >= 1 and not e.folded]
    used: set[int] = set()
    out: dict[int, int] = {}
    undecided = []
    by_code = []
    for i in slots:  # 1. the session code
        code = getattr(experiments[i], "session_code", None)
        j = next((j for j, s in enumerate(sessions) if code is not None
                  and s.session_code == code and j not in used), None)
        if j is not None:
            out[i] = j
            used.add(j)
        else:
            by_code.append(i)

    def allowed(e, s) -> bool:  # an experiment's known code excludes files with another code
        code = getattr(e, "session_code", None)
        return code is None or s.session_code is None

    slots = by_code
    for i in slots:
        best, best_score = None, 0.5
        for j, s in enumerate(sessions):
            score = None if j in used or not allowed(experiments[i], s) else _score(
                experiments[i], s)
            if score is not None and score > best_score:
                best, best_score = j, score
        if best is None:
            undecided.append(i)
        else:
            out[i] = best
            used.add(best)
    for i in undecided:
        j = experiments[i].number - 1
        if (0 <= j < len(sessions) and j not in used and allowed(experiments[i], sessions[j])
                and _score(experiments[i], sessions[j]) is None):
            out[i] = j
            used.add(j)
    return out


def tuning(exp: ExperimentStats, sweep_table: list | None, dimension: str | None):
    """(x labels, rates (R, X) Hz, dimension name) from one experiment's per-sweep counts."""
    counts = exp.sweep_counts
    seconds = exp.sweep_seconds
    if not sweep_table:
        shown = np.flatnonzero(seconds > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = counts[:, shown] / seconds[shown]
        return [str(i) for i in shown], rates, "sweep index"
    names = [k for k in sweep_table[0]]
    if dimension is None:  # the first parameter that varies across the table
        dimension = next((k for k in names if len({repr(r.get(k)) for r in sweep_table}) > 1),
                         names[0] if names else None)
    if dimension not in names:
        raise ValueError(f"sweep table has no dimension {dimension!r}; it has {names}")
    n = min(len(sweep_table), counts.shape[1])
    values = [sweep_table[i].get(dimension) for i in range(n)]
    keys = sorted({repr(v) for v in values}, key=lambda s: _num(s))
    x_counts = np.zeros((counts.shape[0], len(keys)))
    x_secs = np.zeros(len(keys))
    index = {k: j for j, k in enumerate(keys)}
    for i, v in enumerate(values):
        j = index[repr(v)]
        x_counts[:, j] += counts[:, i]
        x_secs[j] += seconds[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(x_secs > 0, x_counts / x_secs, np.nan)
    return keys, rates, dimension


def _num(s: str):
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s)


def experiment_session(arrays: dict, meta: dict, experiment: int | None = None, session=None
                       ) -> tuple[ExperimentStats, SessionTable | None]:
    """The experiment to show (``experiment`` number; None: the latest with refreshes) and
    its matched session file (None: none matched or given)."""
    exps = arrays["experiments"]
    exp = pick_experiment(exps, experiment)
    sessions = load_sessions(session_candidates(meta, session))
    match = match_sessions(exps, sessions)
    slot = next(i for i, e in enumerate(exps) if e is exp)
    return exp, (sessions[match[slot]] if slot in match else None)


def render(fig, stats_source, dimension: str | None = None, session=None,
           max_units: int = 8, experiment: int | None = None) -> dict:
    """Draw the statistics of one experiment into ``fig`` (cleared); returns the stats meta
    plus ``experiment_shown`` (its number) and ``session_shown`` (the matched file or '')."""
    arrays, meta = read_stats(stats_source)
    exp, sess = experiment_session(arrays, meta, experiment, session)
    fig.clear()
    motion = arrays.get("motion_um")
    has_motion = motion is not None and motion.size > 0
    if has_motion:
        ax_t, ax_c, ax_m = fig.subplots(1, 3)
        plot_motion(ax_m, arrays, meta)
    else:
        ax_t, ax_c = fig.subplots(1, 2)
    units = arrays["units"]
    tc = arrays["time_counts"]
    bin_s = float(arrays["bin_s"])
    activity = exp.sweep_counts.sum(axis=1) + exp.no_sweep_counts
    if not activity.any():
        activity = tc.sum(axis=1)
    order = np.argsort(-activity, kind="stable")
    shown = [r for r in order if activity[r] > 0][:max_units]
    t = (np.arange(tc.shape[1]) + 0.5) * bin_s
    for r in shown:
        label = f"unit {units[r]}" if units[r] >= 0 else "unsorted"
        ax_t.plot(t, tc[r] / bin_s, label=label)
    if exp.n_frames:
        ax_t.axvspan(exp.start_s, max(exp.end_s, exp.start_s + bin_s), color="0.85", zorder=0)
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("rate (Hz)")
    ax_t.set_title(f"firing rate ({bin_s:g} s bins; shaded: experiment {exp.number})")
    if shown:
        ax_t.legend(fontsize="small")
    keys, rates, dim = tuning(exp, sess.sweep_table if sess else None, dimension)
    x = np.arange(len(keys))
    for r in shown:
        label = f"unit {units[r]}" if units[r] >= 0 else "unsorted"
        ax_c.plot(x, rates[r], marker="o", label=label)
    if len(keys) <= 24:
        ax_c.set_xticks(x, keys, rotation=45, fontsize="small")
    ax_c.set_xlabel(dim)
    ax_c.set_ylabel("rate (Hz)")
    ax_c.set_title(f"tuning ({exp.sweep_seconds.sum():.0f} s of sweeps)")
    done = meta.get("samples_processed", 0) / max(meta.get("sample_rate_hz", 1.0), 1.0)
    n_exp = meta.get("experiments_seen", 0)
    source = f"session {sess.name}" if sess else "no session file: sweep indices"
    fig.suptitle(f"sweepsort monitor — {exp.label} of {n_exp} ({source}) — "
                 f"{meta.get('n_units', 0)} units, {done:.1f} s processed")
    fig.tight_layout()
    return dict(meta, experiment_shown=exp.number,
                session_shown=str(sess.path) if sess else "",
                motion_rows_shown=int(motion.shape[0]) if has_motion else 0)


def plot_motion(ax, arrays: dict, meta: dict) -> None:
    """The live motion estimate (``[match] track_motion``): the displacement the module applied
    per depth window (µm) against time (s since the acquisition's start), steps as applied."""
    motion = arrays["motion_um"]
    t = arrays["motion_time_s"]
    every = float(meta.get("motion_every_s", 0.0)) or (float(t[1] - t[0]) if len(t) > 1 else 1.0)
    depth = arrays.get("motion_depth_um")
    edges = np.r_[t, t[-1] + every] if len(t) else np.zeros(1)
    for w in range(motion.shape[1]):
        label = (f"depth {depth[w]:.0f} µm" if depth is not None and len(depth) == motion.shape[1]
                 and motion.shape[1] > 1 else "rigid")
        ax.stairs(motion[:, w], edges, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("displacement (µm)")
    rejected = int(meta.get("motion_rejected", 0))
    note = f"; {rejected} estimates rejected (last good kept)" if rejected else ""
    ax.set_title(f"probe motion, live ({every:g} s updates{note})", fontsize="small")
    if motion.shape[1] > 1:
        ax.legend(fontsize="x-small")


def locate_recording(recording, config=None) -> Path:
    """The folder (or file) to read for ``recording``, by the modules' own rule
    (:func:`oe_plugin.outputs.location.resolve_recording_folder`): an existing path as given
    (the stats reader also looks above a Record Node's ``experimentE/recordingR`` folder); else
    ``recording`` is the folder's bare name, found through the GUI's HTTP API, ``[output]
    directory`` of ``config`` (the module's settings TOML) or the fallback."""
    from oe_plugin.config import from_table, load_toml
    from oe_plugin.outputs.location import OutputSettings, resolve_recording_folder

    p = Path(recording).expanduser()
    if p.exists():
        return p
    table = load_toml(config) if config else {}
    settings = from_table(OutputSettings, table.get("output"), "output")
    return resolve_recording_folder(str(recording), settings, config).path


def monitor(recording_dir, *, once: bool = False, png: str | None = None,
            dimension: str | None = None, session=None, interval_s: float = 2.0,
            max_units: int = 8, experiment: int | None = None, config=None) -> int:
    import matplotlib

    recording_dir = locate_recording(recording_dir, config)

    if once or png:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 5))
    if once:
        render(fig, recording_dir, dimension, session, max_units, experiment)
        if png:
            fig.savefig(png, dpi=80)
        plt.close(fig)
        return 0
    plt.ion()
    plt.show()
    while plt.fignum_exists(fig.number):
        try:
            render(fig, recording_dir, dimension, session, max_units, experiment)
            if png:
                fig.savefig(png, dpi=80)
        except StatsFormatError:
            raise
        except (FileNotFoundError, ValueError) as exc:
            fig.clear()
            fig.suptitle(f"waiting for statistics: {exc}")
        fig.canvas.draw_idle()
        plt.pause(interval_s)
        time.sleep(0)
    return 0
