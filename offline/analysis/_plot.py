"""Headless plotting helpers: figures built without pyplot, so no GUI backend is ever chosen.

Every ``.plot()`` in :mod:`offline.analysis` draws on a :class:`matplotlib.figure.Figure` with an
Agg canvas attached (works on a machine without a display, inside threads, under pytest).
"""

from __future__ import annotations

import io


def new_axes(ax=None, *, figsize=(4.0, 3.0), nrows: int = 1, ncols: int = 1, **subplot_kw):
    """``ax`` if given, else a fresh Agg figure's axes (an array of axes when nrows/ncols > 1)."""
    if ax is not None:
        return ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    if nrows == 1 and ncols == 1:
        return fig.add_subplot(1, 1, 1, **subplot_kw)
    return fig.subplots(nrows, ncols, squeeze=False, subplot_kw=subplot_kw or None)


def png_bytes(fig, dpi: int = 90) -> bytes:
    """Render a figure (or the figure of an axes / of an array of axes) to PNG bytes."""
    fig = figure_of(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_of(obj):
    """The Figure behind a Figure, an Axes or an array of Axes."""
    if hasattr(obj, "savefig"):
        return obj
    if hasattr(obj, "figure"):
        return obj.figure
    return obj.flat[0].figure
