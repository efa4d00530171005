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
import time
from pathlib import Path

import numpy as np

from offline.analysis._plot import new_axes, png_bytes
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


def plot_template(neuron, ax=None):
    """The unit's template on the probe layout: each channel's waveform at its position."""
    ax = new_axes(ax, figsize=(2.6, 3.4))
    tpl, chans = neuron.template_uv, neuron.template_channels
    if tpl is None or chans is None or not len(chans):
        ax.text(0.5, 0.5, "no template", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return ax
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
    for k in range(len(chans)):
        color = "C3" if chans[k] == neuron.channel else "k"
        ax.plot(xy[k, 0] + t, xy[k, 1] + tpl[k] / peak * 0.9 * dy, color=color, lw=0.8)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("depth (µm)")
    ax.set_title(f"template, peak {peak:.0f} µV on ch {neuron.channel}", fontsize=8)
    return ax


def _rates_plot(neurons, ax=None):
    ax = new_axes(ax, figsize=(4, 2.6))
    ids = list(neurons)
    ax.bar(range(len(ids)), [neurons[u].mean_rate_hz for u in ids], color="0.3")
    ax.set_xticks(range(len(ids)), [str(u) for u in ids], fontsize=6, rotation=90)
    ax.set_xlabel("unit")
    ax.set_ylabel("mean rate (Hz)")
    return ax


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
            png = png_bytes(draw(), dpi=self.dpi)
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


def write_report(recording, out, *, sort=None, units=None, dpi: int = 80,
                 max_ising_units: int = 10, log=None) -> dict:
    """Write the HTML report of ``recording`` (a :class:`~offline.analysis.model.Recording`).

    Parameters
    ----------
    sort : sort name (default: the recording's default sort).
    units : unit ids to include (default: all).
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
    # -- population page
    doc.page(f"{recording.name}: population")
    doc.add('<section class="population" id="population"><h2>Population</h2>')
    doc.add("<table><tr><th>sort</th><th>kind</th><th>path</th></tr>" + "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{s.kind}</td><td>{html.escape(str(s.path))}"
        "</td></tr>" for s in recording.sorts.values()) + "</table>")
    doc.add(f"<p>Units below: sort <b>{html.escape(the_sort.name if the_sort else 'none')}"
            f"</b>, {len(ids)} units.</p>")
    doc.add("<h3>Experiments</h3><table><tr><th>#</th><th>name</th><th>stimulus</th>"
            "<th>conditions</th><th>varying</th><th>refreshes</th><th>duration (s)</th></tr>"
            + "".join(f"<tr><td>e{e.index}</td><td>{html.escape(e.name)}</td><td>{e.stimulus}"
                      f"</td><td>{len(e.conditions)}</td><td>{html.escape(', '.join(e.parameters))}"
                      f"</td><td>{e.refreshes.size}</td><td>{e.duration_s:.1f}</td></tr>"
                      for e in experiments) + "</table>")
    motion = load_motion_arrays(the_sort.path) if the_sort is not None and \
        the_sort.kind == "offline" else None
    if motion is not None:
        doc.figure("motion", "probe motion: detected peaks by depth, and the estimate per depth "
                   "window (red)", lambda: plot_motion(motion))
    if ids:
        sub = {u: neurons[u] for u in ids}
        doc.figure("rates", "mean firing rates", lambda: _rates_plot(sub))
        doc.figure("correlograms", "auto/cross-correlograms (first 8 units, 1 ms bins)",
                   lambda: the_sort.correlograms(tuple(ids[:8]), bin_ms=1.0, window_ms=50.0)
                   .plot(max_units=8))
        if len(ids) >= 2:
            doc.figure("pairwise_correlations", "pairwise correlations of 20 ms binary codes",
                       lambda: the_sort.pairwise_correlations(tuple(ids), bin_ms=20.0).plot())
        if len(ids) >= 2:
            top = sorted(ids, key=lambda u: -neurons[u].n_spikes)[:max_ising_units]
            doc.figure("ising", f"pairwise maximum-entropy model, units {top} (20 ms bins)",
                       lambda: the_sort.ising(tuple(top), bin_ms=20.0).plot())
    doc.add("<nav>" + "".join(f'<a href="#unit-{u}">unit {u}</a>' for u in ids) + "</nav>")
    doc.add("</section>")
    # -- one section per unit
    for u in ids:
        n = neurons[u]
        log(f"unit {u}")
        doc.page(f"{recording.name}: unit {u} ({n.n_spikes} spikes, {n.mean_rate_hz:.2f} Hz, "
                 f"channel {n.channel})")
        doc.add(f'<section class="unit" id="unit-{u}"><h2>Unit {u}</h2>')
        metrics = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in n.metrics.items() if k != "unit")
        doc.add(f"<p>{n.n_spikes} spikes, {n.mean_rate_hz:.2f} Hz, channel {n.channel}"
                f"{', ' + html.escape(metrics) if metrics else ''}</p>")
        doc.figure("template", "template on the probe", lambda n=n: plot_template(n))
        doc.figure("acg", "autocorrelogram", lambda n=n: n.acg(bin_ms=1.0, window_ms=50.0)
                   .plot_pair(n.id))
        doc.figure("isi", "ISI (log bins)", lambda n=n: n.isi(log_bins=True, max_ms=1000.0)
                   .plot())
        for e in experiments:
            if not e.refreshes.size:
                continue
            doc.add(f"<h3>e{e.index} {html.escape(e.name)} ({e.stimulus})</h3>")
            params = _numeric_varying(e)
            if e.has_sta:
                doc.figure("sta", f"STA e{e.index}", lambda n=n, e=e: n.sta(e).plot())
                continue
            by = params[0] if len(params) == 1 else "sweep_index"
            doc.figure("psth", f"raster + PSTH e{e.index} by {by}",
                       lambda n=n, e=e, by=by: n.psth(e, by=by, bin_ms=20.0).plot())
            for p in params:
                doc.figure("tuning", f"tuning e{e.index} {p}",
                           lambda n=n, e=e, p=p: n.tune(e, p).plot())
        doc.add("</section>")
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
