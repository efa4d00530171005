"""``sweepsort monitor``: live plots of the pipeline module's online statistics.

The Python Processor cannot draw, so this runs in its own process and re-reads
``<recording_dir>/sweepsort/online_stats.bin`` (+ ``.json``; :mod:`oe_plugin.outputs.stats_file`,
rewritten atomically by the pipeline module every few seconds) on a timer. Per unit (the most active
``max_units``): the firing rate over time, and a tuning curve — the rate per value of one sweep
table dimension (the session file named in the stats file, or ``--session``), or per sweep
index when there is no sweep table. Headless: ``--once --png OUT`` renders one PNG with the Agg
backend.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from oe_plugin.outputs.stats_file import read_stats


def tuning(arrays: dict, sweep_table: list | None, dimension: str | None):
    """(x labels, rates (U+1, X) Hz, dimension name) from the per-sweep counts."""
    counts = arrays["sweep_counts"]
    seconds = arrays["sweep_seconds"]
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


def _sweep_table(meta: dict, session: str | None):
    path = session or meta.get("session_file") or ""
    if not path or not Path(path).is_file():
        return None
    from offline.sweeps import read_session_file

    return read_session_file(path).sweep_table


def render(fig, stats_source, dimension: str | None = None, session: str | None = None,
           max_units: int = 8) -> dict:
    """Draw the statistics into ``fig`` (cleared); returns the stats meta."""
    arrays, meta = read_stats(stats_source)
    fig.clear()
    ax_t, ax_c = fig.subplots(1, 2)
    units = arrays["units"]
    tc = arrays["time_counts"]
    bin_s = float(arrays["bin_s"])
    order = np.argsort(-tc.sum(axis=1), kind="stable")
    shown = [r for r in order if tc[r].sum() > 0][:max_units]
    t = (np.arange(tc.shape[1]) + 0.5) * bin_s
    for r in shown:
        label = f"unit {units[r]}" if units[r] >= 0 else "unsorted"
        ax_t.plot(t, tc[r] / bin_s, label=label)
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("rate (Hz)")
    ax_t.set_title(f"firing rate ({bin_s:g} s bins)")
    if shown:
        ax_t.legend(fontsize="small")
    keys, rates, dim = tuning(arrays, _sweep_table(meta, session), dimension)
    x = np.arange(len(keys))
    for r in shown:
        label = f"unit {units[r]}" if units[r] >= 0 else "unsorted"
        ax_c.plot(x, rates[r], marker="o", label=label)
    if len(keys) <= 24:
        ax_c.set_xticks(x, keys, rotation=45, fontsize="small")
    ax_c.set_xlabel(dim)
    ax_c.set_ylabel("rate (Hz)")
    ax_c.set_title("tuning")
    done = meta.get("samples_processed", 0) / max(meta.get("sample_rate_hz", 1.0), 1.0)
    fig.suptitle(f"sweepsort monitor — {meta.get('n_units', 0)} units, {done:.1f} s processed")
    fig.tight_layout()
    return meta


def monitor(recording_dir, *, once: bool = False, png: str | None = None,
            dimension: str | None = None, session: str | None = None, interval_s: float = 2.0,
            max_units: int = 8) -> int:
    import matplotlib

    if once or png:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 5))
    if once:
        render(fig, recording_dir, dimension, session, max_units)
        if png:
            fig.savefig(png, dpi=80)
        plt.close(fig)
        return 0
    plt.ion()
    plt.show()
    while plt.fignum_exists(fig.number):
        try:
            render(fig, recording_dir, dimension, session, max_units)
            if png:
                fig.savefig(png, dpi=80)
        except (FileNotFoundError, ValueError) as exc:
            fig.clear()
            fig.suptitle(f"waiting for statistics: {exc}")
        fig.canvas.draw_idle()
        plt.pause(interval_s)
        time.sleep(0)
    return 0
