"""``sweepsort report``: one self-contained HTML file (PNG figures embedded) for a recording.

Layout: a population page (recording summary, experiments, firing rates, correlogram matrix,
pairwise correlations, a pairwise maximum-entropy fit) and one section per unit (template on
the probe layout, ACG, ISI, then per experiment: raster + PSTH, tuning curves along every
varying numeric parameter, and the STA for sparse-noise / m-sequence experiments). Sections
start on a new page when printed, so the browser's "print to PDF" gives a page per unit. An
``--out`` ending in ``.pdf`` writes a PDF directly (matplotlib's PdfPages): the population
page, then one page per unit, each page a grid of the same figures.

Rendering is headless (Agg figures, no pyplot). A figure that fails is replaced by its error
message; the report is still written.
"""

from __future__ import annotations

import base64
import html
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from offline.analysis._plot import new_axes, png_bytes
from offline.analysis.model import SpikeTrain
from offline.sort.motion_plot import load_motion_arrays, plot_motion

CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.2em;border-bottom:1px solid #ccc} h3{font-size:1em}
section{page-break-before:always;margin-top:2em}
figure{display:inline-block;margin:0.3em;vertical-align:top}
figcaption{font-size:0.75em;color:#555;text-align:center}
table{border-collapse:collapse;font-size:0.85em} td,th{border:1px solid #ccc;padding:2px 6px}
.error{color:#a00;font-size:0.8em} nav a{margin-right:0.6em}
"""


def plot_template(neuron, ax=None, positions_um=None):
    """The unit's template on the probe layout: each channel's waveform at its position.

    ``neuron``: a :class:`~offline.analysis.model.Neuron` (or anything with ``template_uv``,
    ``template_channels``, ``channel``); ``positions_um`` (n_channels, 2) default: its sort's
    channel positions."""
    ax = new_axes(ax, figsize=(2.6, 3.4))
    tpl, chans = neuron.template_uv, neuron.template_channels
    if tpl is None or chans is None or not len(chans):
        ax.text(0.5, 0.5, "no template", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    pos = positions_um
    if pos is None and hasattr(neuron, "sort"):
        pos = neuron.sort.data.channel_positions_um
    if pos is None:
        pos = np.column_stack([np.zeros(int(np.max(chans)) + 1), np.arange(int(np.max(chans)) + 1)
                               * 20.0])
    xy = pos[chans]
    dy = np.diff(np.unique(xy[:, 1])).min() if np.unique(xy[:, 1]).size > 1 else 20.0
    dx = np.diff(np.unique(xy[:, 0])).min() if np.unique(xy[:, 0]).size > 1 else 20.0
    w = tpl.shape[1]
    peak = float(np.abs(tpl).max()) or 1.0
    t = (np.arange(w) / (w - 1) - 0.5) * 0.8 * dx
    xs = xy[:, 0:1] + t[None, :]
    ys = xy[:, 1:2] + np.asarray(tpl, np.float64) / peak * 0.9 * dy
    nan = np.full((len(chans), 1), np.nan)
    is_peak = np.asarray(chans) == neuron.channel
    for sel, color in ((~is_peak, "k"), (is_peak, "C3")):  # one line per colour, NaN-separated
        if sel.any():
            ax.plot(np.hstack([xs[sel], nan[sel]]).ravel(), np.hstack([ys[sel], nan[sel]]).ravel(),
                    color=color, lw=0.8)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("depth (µm)")
    ax.set_title(f"template, peak {peak:.0f} µV on ch {neuron.channel}", fontsize=8)
    return ax


def _rates_plot(neurons, ax=None):
    """Horizontal bars sorted by rate (fastest on top), a readable label per unit at 100 units
    (the figure grows with the number of units; labels thin out past 150)."""
    ids = list(neurons)
    rates = np.array([neurons[u].span_rate_hz for u in ids], np.float64)
    order = np.argsort(-rates, kind="stable")
    n = len(ids)
    h = min(0.11 * n + 0.9, 16.0)
    if ax is None:
        ax = _report_axes((4.2, max(h, 1.8)), left=0.55, bottom=0.45, top=0.15)
    ax.barh(np.arange(n), rates[order], height=0.8, color="0.3")
    step = max(1, int(np.ceil(n / 150)))
    ticks = np.arange(0, n, step)
    ax.set_yticks(ticks, [str(ids[order[i]]) for i in ticks], fontsize=6)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_ylabel("unit")
    ax.set_xlabel("mean rate (Hz)")
    ax.grid(axis="x", color="0.85", lw=0.5)
    ax.set_axisbelow(True)
    return ax


def _lean(obj):
    """Fewer ticks (their objects and labels are most of a small figure's drawing time): at
    most 5 major ticks on linear axes that choose their own, no minor ticks, plain-text labels
    on log axes (mathtext is slow to lay out); titles at a fixed height above the axes (not
    moved above top tick labels, which the report's figures do not have)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

    from offline.analysis._plot import figure_of

    fig = figure_of(obj)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_locator(NullLocator())
            if axis.get_scale() == "linear" and type(axis.get_major_locator()).__name__ in (
                    "AutoLocator", "MaxNLocator"):
                axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
            elif axis.get_scale() == "log":  # "0.1", "10" in plain text, not mathtext 10^n
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.title.set_y(1.0)  # a fixed title position: no tick-label bounding boxes to measure
        ax._autotitlepos = False
    return obj


def _correlogram_grid(res, max_units: int = 8):
    """The correlogram matrix in one axes (two artists instead of a grid of n x n axes):
    cell (row a, column b) holds the CCG a -> b scaled to its own maximum, the ACGs black."""
    n = min(len(res.unit_ids), max_units)
    ax = _report_axes((1.0 * n + 1.0, 1.0 * n + 0.8), left=0.6, bottom=0.5, top=0.3)
    lags = res.lags_ms
    half = res.settings["bin_ms"] / 2
    edges = np.r_[lags - half, lags[-1] + half]
    xs = np.repeat(edges, 2)[1:-1]
    x01 = (xs - edges[0]) / (edges[-1] - edges[0]) * 0.9 + 0.05
    lines = {True: ([], []), False: ([], [])}
    for a in range(n):
        for b in range(n):
            c = np.asarray(res.counts[a, b], np.float64)
            y = np.repeat(c / (c.max() or 1.0), 2) * 0.85
            lx, ly = lines[a == b]
            lx += [b + x01, [np.nan]]
            ly += [n - 1 - a + 0.05 + y, [np.nan]]
    for auto, color in ((False, "C0"), (True, "k")):
        lx, ly = lines[auto]
        if lx:
            ax.plot(np.concatenate(lx), np.concatenate(ly), color=color, lw=0.6)
    ids = [str(u) for u in res.unit_ids[:n]]
    ax.set_xticks(np.arange(n) + 0.5, ids, fontsize=7)
    ax.set_yticks(np.arange(n) + 0.5, ids[::-1], fontsize=7)
    ax.set_xlim(0, n)
    ax.set_ylim(0, n)
    ax.hlines(np.arange(1, n), 0, n, color="0.85", lw=0.5)
    ax.vlines(np.arange(1, n), 0, n, color="0.85", lw=0.5)
    ax.tick_params(length=0)
    ax.set_xlabel("to unit")
    ax.set_ylabel("from unit")
    ax.set_title(f"CCG ±{res.settings['window_ms']:g} ms, each scaled to its peak", fontsize=8)
    return ax


def _report_axes(figsize, nrows=1, ncols=1, *, left=0.5, right=0.15, bottom=0.5, top=0.28,
                 wspace=0.25, hspace=0.15, **kw):
    """A report figure with fixed margins (in inches): no constrained layout, which costs
    about half the drawing time of a small figure. One axes, or an array (nrows, ncols)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = figsize
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return axes[0, 0] if nrows == ncols == 1 else axes


class _Html:
    def __init__(self, dpi: int):
        self.parts: list[str] = []
        self.dpi = dpi
        self.n_figures = 0
        self.n_errors = 0
        self.pages: list[tuple[str, list[tuple[str, bytes]]]] = []  # (title, [(caption, png)])

    def page(self, title: str) -> None:
        self.pages.append((title, []))

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, kind: str, caption: str, draw) -> None:
        try:
            png = png_bytes(_lean(draw()), dpi=self.dpi)
        except Exception as exc:  # noqa: BLE001 - one failed figure must not lose the report
            self.n_errors += 1
            self.add(f'<p class="error" data-kind="{kind}">{html.escape(caption)}: '
                     f'{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>')
            return
        self.n_figures += 1
        if self.pages:
            self.pages[-1][1].append((caption, png))
        b64 = base64.b64encode(png).decode("ascii")
        self.add(f'<figure class="fig" data-kind="{kind}"><img alt="{html.escape(caption)}" '
                 f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}'
                 '</figcaption></figure>')


def _numeric_varying(experiment) -> list[str]:
    out = []
    for p in experiment.parameters:
        vals = [c.get(p) for c in experiment.conditions]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out.append(p)
    return out


# -- unit pages: plain arrays in, HTML out (the same function serially or in a worker process)

@dataclass
class _UnitInput(SpikeTrain):
    """What one unit page needs: arrays and numbers only (sent to a worker process)."""

    id: object
    spike_samples: np.ndarray
    sample_rate_hz: float
    template_uv: np.ndarray | None
    template_channels: np.ndarray | None
    channel: int
    metrics: dict


@dataclass
class _ExperimentInput:
    """One experiment, computed once for every unit: presentations or the stimulus movie."""

    index: int
    name: str
    stimulus: str
    params: list
    presentations: object = None
    movie: object = None
    extent_deg: tuple | None = None
    ori_deg: float = 0.0


def _experiment_inputs(experiments) -> list[_ExperimentInput]:
    from offline.analysis.sta import grid_extent_deg

    out = []
    for e in experiments:
        if not e.refreshes.size:
            continue
        x = _ExperimentInput(e.index, e.name, e.stimulus, _numeric_varying(e))
        if e.has_sta:
            x.movie = e.movie()
            x.extent_deg, x.ori_deg = grid_extent_deg(e.stimulus, e.session.get("static", {}),
                                                      e.conditions)
        else:
            x.presentations = e.presentations()
        out.append(x)
    return out


def _unit_input(neuron) -> _UnitInput:
    return _UnitInput(neuron.id, np.asarray(neuron.spike_samples), float(neuron.sample_rate_hz),
                      neuron.template_uv, neuron.template_channels, int(neuron.channel),
                      {k: (v.item() if hasattr(v, "item") else v)
                       for k, v in dict(neuron.metrics).items()})


#: metrics shown by the unit header's first quantities (or not worth a column)
_HEADER_SKIP = {"unit", "n_spikes", "firing_rate_hz", "peak_channel"}


def unit_stats(u: _UnitInput) -> list[tuple[str, str]]:
    """The unit header's quantities, each once: (name, formatted value). The firing rate is
    the sort's ``firing_rate_hz`` metric (spikes / recording duration) when it has one, else
    spikes / span of the spikes."""
    rate = u.metrics.get("firing_rate_hz")
    rate = float(rate) if isinstance(rate, (int, float)) else u.span_rate_hz
    out = [("spikes", f"{u.n_spikes}"), ("rate", f"{rate:.2f} Hz"), ("channel", f"{u.channel}")]
    for k, v in u.metrics.items():
        if k in _HEADER_SKIP:
            continue
        out.append((k, f"{v:.3g}" if isinstance(v, float) else str(v)))
    return out


_STATE: dict = {}


def _init_worker(experiments, positions_um, dpi) -> None:
    _STATE.update(experiments=experiments, positions_um=positions_um, dpi=dpi)


def _worker_unit(u: _UnitInput):
    return _render_unit(u, _STATE["experiments"], _STATE["positions_um"], _STATE["dpi"])


def _render_unit(u: _UnitInput, experiments, positions_um, dpi: int):
    """One unit's section: (HTML text, [(caption, png)], n_figures, n_errors)."""
    from offline.analysis.correlograms import compute_autocorrelograms
    from offline.analysis.isi import compute_isi
    from offline.analysis.psth import compute_psth
    from offline.analysis.sta import compute_sta
    from offline.analysis.tuning import compute_tuning

    doc = _Html(dpi)
    stats = unit_stats(u)
    head = ", ".join(f"{v} {k}" if k == "spikes" else f"{k} {v}" for k, v in stats)
    doc.page(f"unit {u.id}: {head}")
    doc.add(f'<section class="unit" id="unit-{u.id}"><h2>Unit {u.id}</h2>')
    doc.add('<p class="unit-stats">' + " · ".join(
        f'<span data-q="{html.escape(k)}">{html.escape(v if k == "spikes" else k + " " + v)}'
        f'{" spikes" if k == "spikes" else ""}</span>' for k, v in stats) + "</p>")
    t = u.times_s

    def template():
        ax = _report_axes((2.6, 3.4), left=0.6, bottom=0.45)
        return plot_template(u, ax, positions_um=positions_um)

    def acg():
        res = compute_autocorrelograms([u.spike_samples], unit_ids=[u.id],
                                       sample_rate_hz=u.sample_rate_hz, bin_ms=1.0,
                                       window_ms=50.0)
        return res.plot_pair(u.id, ax=_report_axes((3.0, 2.2), left=0.55))

    def isi():
        res = compute_isi(t, log_bins=True, max_ms=1000.0)
        return res.plot(ax=_report_axes((3.2, 2.5), left=0.55, bottom=0.55))

    doc.figure("template", "template on the probe", template)
    doc.figure("acg", "autocorrelogram", acg)
    doc.figure("isi", "ISI (log bins)", isi)
    for e in experiments:
        doc.add(f"<h3>e{e.index} {html.escape(e.name)} ({e.stimulus})</h3>")
        if e.movie is not None:
            def sta(e=e):
                res = compute_sta(t, e.movie)
                axes = _report_axes((6.6, 2.6), 1, 2, left=0.6, right=0.8, bottom=0.5,
                                    top=0.25, wspace=0.12,
                                    gridspec_kw={"width_ratios": (1, 3.2)})[0]
                return res.plot_summary(ax=axes, max_lags=8, extent_deg=e.extent_deg)

            rot = f", grid rotated {e.ori_deg:g}°" if e.ori_deg else ""
            doc.figure("sta", f"STA e{e.index} (axes: degrees of visual angle{rot})", sta)
            continue
        by = e.params[0] if len(e.params) == 1 else "sweep_index"

        def psth(e=e, by=by):
            res = compute_psth(t, e.presentations, by=by, bin_ms=20.0)
            axes = _report_axes((4.6, 4.4), 2, 1, left=0.6, right=0.9, bottom=0.45, top=0.1,
                                gridspec_kw={"height_ratios": (1, 1)})[:, 0]
            return res.plot_heatmap(ax=axes)

        doc.figure("psth", f"raster + PSTH heat map e{e.index} by {by}", psth)
        for p in e.params:
            def tune(e=e, p=p):
                res = compute_tuning(t, e.presentations, p)
                return res.plot(ax=_report_axes((3.6, 2.8), left=0.55))

            doc.figure("tuning", f"tuning e{e.index} {p}", tune)
    doc.add("</section>")
    return "".join(doc.parts), doc.pages[0], doc.n_figures, doc.n_errors


def _warm_up() -> None:
    """Import and load once, before forking, what every unit page needs (matplotlib's fonts,
    the fitting and the numba-compiled ACG), instead of once per worker."""
    import scipy.optimize  # noqa: F401 - tuning fits

    from offline.analysis.correlograms import compute_autocorrelograms

    compute_autocorrelograms([np.arange(3, dtype=np.int64)], sample_rate_hz=30000.0)
    png_bytes(_report_axes((1.0, 1.0)).figure, dpi=10)


def _pool_context():
    """Worker processes: forked on Linux (fast; made before the report runs any threads),
    spawned elsewhere (macOS and Windows cannot fork safely)."""
    import multiprocessing as mp

    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def write_report(recording, out, *, sort=None, units=None, dpi: int = 80,
                 max_ising_units: int = 10, log=None, jobs: int | None = None,
                 progress: bool = False) -> dict:
    """Write the HTML report of ``recording`` (a :class:`~offline.analysis.model.Recording`).

    Parameters
    ----------
    sort : sort name (default: the recording's default sort).
    units : unit ids to include (default: all).
    jobs : worker processes for the unit pages (default: the CPU count; 1 = in this process).
        The pages are the same whatever the number of jobs.
    progress : a tqdm progress bar over the unit pages (on stderr).
    log : called with a message per step (population page, unit pages).
    Returns a summary dict: ``path``, ``n_units``, ``n_figures``, ``n_errors``, ``seconds``.
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: None)
    the_sort = recording.sorts[sort] if sort is not None else recording.sort
    doc = _Html(dpi)
    title = f"sweepsort report — {recording.name}"
    doc.add(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>")
    doc.add(f"<p>{html.escape(str(recording.path))}<br>generated "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p>")
    experiments = recording.experiments
    neurons = {} if the_sort is None else the_sort.neurons
    ids = list(neurons) if units is None else [u for u in units if u in neurons]
    # -- unit pages first: started in worker processes, drawn while this one does the rest
    exp_inputs = _experiment_inputs(experiments)  # shared by every unit, computed once
    positions = None if the_sort is None else the_sort.data.channel_positions_um
    inputs = [_unit_input(neurons[u]) for u in ids]
    jobs = max(1, min(int(jobs or os.cpu_count() or 1), len(ids)))
    pool = futures = None
    if jobs > 1:
        _warm_up()  # forked workers inherit what is imported and loaded here
        pool = ProcessPoolExecutor(jobs, mp_context=_pool_context(), initializer=_init_worker,
                                   initargs=(exp_inputs, positions, dpi))
        futures = [pool.submit(_worker_unit, x) for x in inputs]
    try:
        # -- population page
        log("population page")
        doc.page(f"{recording.name}: population")
        doc.add('<section class="population" id="population"><h2>Population</h2>')
        doc.add("<table><tr><th>sort</th><th>kind</th><th>path</th></tr>" + "".join(
            f"<tr><td>{html.escape(s.name)}</td><td>{s.kind}</td><td>"
            f"{html.escape(str(s.path))}</td></tr>" for s in recording.sorts.values())
            + "</table>")
        doc.add(f"<p>Units below: sort <b>{html.escape(the_sort.name if the_sort else 'none')}"
                f"</b>, {len(ids)} units.</p>")
        doc.add("<h3>Experiments</h3><table><tr><th>#</th><th>name</th><th>stimulus</th>"
                "<th>conditions</th><th>varying</th><th>refreshes</th><th>duration (s)</th>"
                "</tr>" + "".join(
                    f"<tr><td>e{e.index}</td><td>{html.escape(e.name)}</td><td>{e.stimulus}"
                    f"</td><td>{len(e.conditions)}</td><td>"
                    f"{html.escape(', '.join(e.parameters))}</td><td>{e.refreshes.size}</td>"
                    f"<td>{e.duration_s:.1f}</td></tr>" for e in experiments) + "</table>")
        motion = load_motion_arrays(the_sort.path) if the_sort is not None and \
            the_sort.kind == "offline" else None
        if motion is not None:
            doc.figure("motion", "probe motion: detected peaks by depth, and the estimate per "
                       "depth window (red)", lambda: plot_motion(motion))
        if ids:
            sub = {u: neurons[u] for u in ids}
            doc.figure("rates", "mean firing rates (sorted)", lambda: _rates_plot(sub))
            doc.figure("correlograms", "auto/cross-correlograms (first 8 units, 1 ms bins)",
                       lambda: _correlogram_grid(the_sort.correlograms(
                           tuple(ids[:8]), bin_ms=1.0, window_ms=50.0), max_units=8))
            if len(ids) >= 2:
                doc.figure("pairwise_correlations", "pairwise correlations of 20 ms binary "
                           "codes", lambda: the_sort.pairwise_correlations(
                               tuple(ids), bin_ms=20.0).plot())
            if len(ids) >= 2:
                top = sorted(ids, key=lambda u: -neurons[u].n_spikes)[:max_ising_units]
                doc.figure("ising", f"pairwise maximum-entropy model, units {top} (20 ms bins)",
                           lambda: the_sort.ising(tuple(top), bin_ms=20.0).plot())
        doc.add("<nav>" + "".join(f'<a href="#unit-{u}">unit {u}</a>' for u in ids) + "</nav>")
        doc.add("</section>")
        # -- one section per unit, in unit order
        log(f"{len(ids)} unit pages ({jobs} process{'es' if jobs > 1 else ''})")
        bar = tqdm(total=len(ids), desc="unit pages", unit="unit", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        with bar:
            for k, x in enumerate(inputs):
                try:
                    if futures is None:
                        raise BrokenProcessPool
                    text, page, n_fig, n_err = futures[k].result()
                except BrokenProcessPool:  # no pool, or a worker died: draw it here
                    text, page, n_fig, n_err = _render_unit(x, exp_inputs, positions, dpi)
                doc.add(text)
                doc.pages.append((f"{recording.name}: {page[0]}", page[1]))
                doc.n_figures += n_fig
                doc.n_errors += n_err
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    doc.add("</body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix.lower() == ".pdf":
        _write_pdf(tmp, doc.pages)
    else:
        tmp.write_text("".join(doc.parts), encoding="utf-8")
    tmp.replace(out)
    return {"path": out, "n_units": len(ids), "n_figures": doc.n_figures,
            "n_errors": doc.n_errors, "seconds": time.perf_counter() - t0}


def _write_pdf(path: Path, pages) -> None:
    """One A4 page per report page: its title and its figures (as rendered) in a grid."""
    import io

    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    with PdfPages(path) as pdf:
        for title, figs in pages:
            fig = Figure(figsize=(8.27, 11.69))
            fig.suptitle(title, fontsize=10)
            n = max(len(figs), 1)
            cols = 2 if n <= 6 else 3
            rows = int(np.ceil(n / cols))
            for k, (caption, png) in enumerate(figs):
                ax = fig.add_subplot(rows, cols, k + 1)
                ax.imshow(imread(io.BytesIO(png), format="png"))
                ax.set_axis_off()
                ax.set_title(caption, fontsize=7)
            pdf.savefig(fig)
