"""Where a detected peak sits on the probe, for the motion estimator.

The motion estimator (:mod:`oe_plugin.kernels.motion`) needs, for every detected peak, a depth
that moves with the probe, one for one. Two ways, both cheap, never raising and allocating
nothing per peak (scratch once per call), so that the online sorter can run them per event
(:func:`localize_event` is the one kernel: offline it runs over channel-major traces, online
over the sorter's time-major match ring, inside the GIL-free sort kernel):

- ``monopolar`` (default): the point source that best explains the peak's negative amplitudes
  on the channels around it, ``a_k = alpha / sqrt((x - x_k)^2 + (y - y_k)^2 + z^2)`` (the
  monopolar triangulation of Boussard et al. 2021, as in SpikeInterface's
  ``monopolar_triangulation``), fitted by Levenberg-Marquardt from the centre of mass. Its depth
  follows a unit that moves between contacts.
- ``com``: the amplitude-weighted centre of mass. It is pulled towards the peak channel by an
  amount that depends on where the unit sits between contact rows, so on a coarse probe it
  compresses motion: on the demo's 50 µm-row polytrode it saw about a third of a 15 µm drift.
"""

from __future__ import annotations

import numba
import numpy as np

METHODS = ("monopolar", "com")

_MAX_ITER = 40
_Z0_UM = 20.0     # initial distance of the source from the probe plane
_REACH_UM = 150.0  # the fitted source stays within this distance of the peak channel
WORK_SIZE = 48  # float64 scratch of monopolar_fit


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _solve4(h, g, lam, d, m):
    """Solve (h + lam diag(h)) d = g for the 4-vector d (Gaussian elimination with partial
    pivoting in the (4, 5) scratch ``m``). Returns False when the system is singular."""
    for i in range(4):
        for j in range(4):
            m[i, j] = h[i, j]
        m[i, i] += lam * h[i, i] + 1e-12
        m[i, 4] = g[i]
    for col in range(4):
        piv = col
        for r in range(col + 1, 4):
            if abs(m[r, col]) > abs(m[piv, col]):
                piv = r
        if abs(m[piv, col]) < 1e-300:
            return False
        if piv != col:
            for j in range(5):
                tmp = m[col, j]
                m[col, j] = m[piv, j]
                m[piv, j] = tmp
        for r in range(col + 1, 4):
            f = m[r, col] / m[col, col]
            for j in range(col, 5):
                m[r, j] -= f * m[col, j]
    for i in range(3, -1, -1):
        s = m[i, 4]
        for j in range(i + 1, 4):
            s -= m[i, j] * d[j]
        d[i] = s / m[i, i]
    return True


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _cost(a, px, py, n, x, y, z, alpha):
    s = 0.0
    for k in range(n):
        dx = x - px[k]
        dy = y - py[k]
        r = np.sqrt(dx * dx + dy * dy + z * z)
        e = a[k] - alpha / r
        s += e * e
    return s


@numba.njit(cache=True, error_model="numpy", nogil=True)
def monopolar_fit(a, px, py, n, x0, y0, cx, cy, out, work):
    """Fit ``a[:n] ~ alpha / sqrt((x - px)^2 + (y - py)^2 + z^2)`` from (x0, y0); the source is
    kept within _REACH_UM of (cx, cy) and z >= 1 µm. Writes (x, y) into ``out``. ``work``:
    float64 scratch of >= WORK_SIZE (nothing is allocated)."""
    out[0] = x0
    out[1] = y0
    if n < 3:
        return
    x, y, z = x0, y0, _Z0_UM
    num = 0.0
    den = 0.0
    for k in range(n):
        g = 1.0 / np.sqrt((x - px[k]) ** 2 + (y - py[k]) ** 2 + z * z)
        num += a[k] * g
        den += g * g
    alpha = num / den if den > 0 else 0.0
    if not alpha > 0:
        return
    cost = _cost(a, px, py, n, x, y, z, alpha)
    lam = 1e-2
    h = work[0:16].reshape((4, 4))
    m = work[16:36].reshape((4, 5))
    gv = work[36:40]
    d = work[40:44]
    jr = work[44:48]
    for _ in range(_MAX_ITER):
        h[:] = 0.0
        gv[:] = 0.0
        for k in range(n):
            dx = x - px[k]
            dy = y - py[k]
            r2 = dx * dx + dy * dy + z * z
            r = np.sqrt(r2)
            r3 = r2 * r
            e = a[k] - alpha / r
            jr[0] = -alpha * dx / r3
            jr[1] = -alpha * dy / r3
            jr[2] = -alpha * z / r3
            jr[3] = 1.0 / r
            for i in range(4):
                gv[i] += jr[i] * e
                for j in range(4):
                    h[i, j] += jr[i] * jr[j]
        improved = False
        while lam < 1e8:
            if not _solve4(h, gv, lam, d, m):
                lam *= 10.0
                continue
            nx = min(max(x + d[0], cx - _REACH_UM), cx + _REACH_UM)
            ny = min(max(y + d[1], cy - _REACH_UM), cy + _REACH_UM)
            nz = min(max(abs(z + d[2]), 1.0), _REACH_UM)
            na = max(alpha + d[3], 1e-9)
            c2 = _cost(a, px, py, n, nx, ny, nz, na)
            if c2 < cost:
                step = abs(nx - x) + abs(ny - y) + abs(nz - z)
                x, y, z, alpha = nx, ny, nz, na
                rel = (cost - c2) / max(cost, 1e-30)
                cost = c2
                lam = max(lam * 0.3, 1e-7)
                improved = step > 1e-3 and rel > 1e-9
                break
            lam *= 10.0
        if not improved:
            break
    out[0] = x
    out[1] = y


@numba.njit(cache=True, error_model="numpy", nogil=True)
def localize_event(traces, time_major, mask, t, c, nb_ptr, nb_idx, positions_um, half_window,
                   monopolar, amp, px, py, fit, work, out):
    """Position of one peak at time index ``t`` on channel ``c`` (the one kernel behind both
    :func:`localize_peaks`, offline, and the online sorter's motion tracking).

    traces : ``time_major`` False: (C, N) channel-major, the peak's column ``t`` (the caller
        checks that ``t ± half_window`` lies inside); True: a (R, C) ring, row ``s & mask`` for
        time index ``s`` (the caller guarantees those rows hold the samples).
    amp, px, py : float64 scratch of >= the widest neighbour list; ``fit`` (2,), ``work``
        (>= WORK_SIZE,) float64 scratch. Nothing is allocated, nothing raises.
    out : (3,) float64 <- (x_um, y_um, amplitude): the monopolar fit (or the centre of mass)
        of the channels' negative amplitudes (their most negative value within
        ``±half_window``), and the peak channel's negative amplitude (traces' unit). Without any
        negative amplitude: the peak channel's position and amplitude 0.
    """
    out[0] = positions_um[c, 0]
    out[1] = positions_um[c, 1]
    out[2] = 0.0
    sw = 0.0
    sx = 0.0
    sy = 0.0
    n = 0
    for q in range(nb_ptr[c], nb_ptr[c + 1]):
        k = nb_idx[q]
        a = 0.0
        for s in range(t - half_window, t + half_window + 1):
            if time_major:
                v = -traces[s & mask, k]
            else:
                v = -traces[k, s]
            if v > a:
                a = v
        if k == c:
            out[2] = a
        sw += a
        sx += a * positions_um[k, 0]
        sy += a * positions_um[k, 1]
        amp[n] = a
        px[n] = positions_um[k, 0]
        py[n] = positions_um[k, 1]
        n += 1
    if sw > 0:
        out[0] = sx / sw
        out[1] = sy / sw
        if monopolar:
            monopolar_fit(amp, px, py, n, sx / sw, sy / sw, positions_um[c, 0],
                          positions_um[c, 1], fit, work)
            out[0] = fit[0]
            out[1] = fit[1]


def neighbour_width(nb_ptr) -> int:
    """The widest neighbour list of CSR ``nb_ptr`` (scratch size of :func:`localize_event`)."""
    return max(1, int(np.max(np.diff(np.asarray(nb_ptr)), initial=1)))


@numba.njit(cache=True, error_model="numpy", nogil=True)
def localize_peaks(traces, first_index, sample_index, channel, nb_ptr, nb_idx, positions_um,
                   half_window, monopolar, out_x_um, out_y_um, out_amplitude):
    """Position of each peak from its negative amplitudes on its neighbourhood
    (:func:`localize_event` per peak).

    traces : (C, N) float32 (any unit; the noise-scaled traces offline); column 0 is stream
        sample ``first_index``.
    sample_index, channel : (n,) int64 / int32, peak sample (stream index) and peak channel.
    nb_ptr (C+1,), nb_idx : CSR neighbour lists (the channels around each peak channel).
    positions_um : (C, 2) float64 contact (x, y).
    half_window : a channel's amplitude is its most negative value within ±half_window samples.
    monopolar : True: the monopolar fit (started from the centre of mass); False: the centre of
        mass.
    out_x_um, out_y_um : (n,) float32 position; out_amplitude : (n,) float32, the peak
        channel's negative amplitude (traces' unit). Peaks whose window leaves ``traces`` get the
        peak channel's position and amplitude 0.
    """
    n_samples = traces.shape[1]
    width = 1
    for c in range(nb_ptr.shape[0] - 1):
        width = max(width, nb_ptr[c + 1] - nb_ptr[c])
    amp = np.empty(width)
    px = np.empty(width)
    py = np.empty(width)
    fit = np.empty(2)
    work = np.empty(WORK_SIZE)
    res = np.empty(3)
    for e in range(sample_index.shape[0]):
        c = channel[e]
        t = sample_index[e] - first_index
        out_x_um[e] = positions_um[c, 0]
        out_y_um[e] = positions_um[c, 1]
        out_amplitude[e] = 0.0
        if t - half_window < 0 or t + half_window >= n_samples:
            continue
        localize_event(traces, False, 0, t, c, nb_ptr, nb_idx, positions_um, half_window,
                       monopolar, amp, px, py, fit, work, res)
        out_x_um[e] = res[0]
        out_y_um[e] = res[1]
        out_amplitude[e] = res[2]


def localize(traces, first_index, sample_index, channel, neighbours, positions_um,
             half_window: int = 2, method: str = "monopolar"):
    """Numpy convenience over :func:`localize_peaks`: returns (x_um, y_um, amplitude) float32.
    ``method``: one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"localize method must be one of {', '.join(METHODS)}, got {method!r}")
    n = len(sample_index)
    x = np.zeros(n, np.float32)
    y = np.zeros(n, np.float32)
    a = np.zeros(n, np.float32)
    if n:
        localize_peaks(np.ascontiguousarray(traces, np.float32), int(first_index),
                       np.asarray(sample_index, np.int64), np.asarray(channel, np.int32),
                       neighbours[0], neighbours[1], np.asarray(positions_um, np.float64),
                       int(half_window), method == "monopolar", x, y, a)
    return x, y, a
