"""Pairwise maximum-entropy (Ising) model of a small population, fitted by exact enumeration.

Model over spins ``s_i`` in {-1, +1} (neuropy's convention: a spike in the bin = +1)::

    P(s) = exp(sum_i h_i s_i + sum_{i<j} J_ij s_i s_j) / Z

The fit maximises the likelihood of the observed words (equivalently: matches every mean
``<s_i>`` and pair mean ``<s_i s_j>``): a convex problem, solved with L-BFGS on the exact
gradient (model moments minus data moments) computed over all 2^N words, so N <= 20.
A small L2 penalty (``l2``) keeps the parameters finite when a word never occurs.

The enumeration is one numba pass in Gray-code order (each next word flips one spin, so its
energy costs O(N)), then one pass accumulating P(bit i) and P(bits i and j) over the set bits
of each word: about 0.1 s per likelihood evaluation at N = 20.
"""

from __future__ import annotations

import numba
import numpy as np

from offline.analysis._plot import new_axes
from offline.analysis.result import AnalysisResult

MAX_UNITS = 20


def all_words(n: int) -> np.ndarray:
    """Every word as spins: int8 (2^n, n), row w = bits of w (unit 0 = least significant)."""
    w = np.arange(1 << n, dtype=np.int64)
    bits = (w[:, None] >> np.arange(n)) & 1
    return (2 * bits - 1).astype(np.int8)


def ising_probabilities(h: np.ndarray, j: np.ndarray) -> np.ndarray:
    """P(word) for every word, float64 (2^N,) (order of :func:`all_words`)."""
    s = all_words(h.size).astype(np.float64)
    e = s @ h + 0.5 * np.einsum("wi,ij,wj->w", s, np.triu(j, 1) + np.triu(j, 1).T, s)
    e -= e.max()
    p = np.exp(e)
    return p / p.sum()


@numba.njit(cache=True, nogil=True)
def _enumerate(h, j):
    """All words' probabilities and the moments: (p (2^N,), log Z, P(b_i) (N,), P(b_i b_j))."""
    n = h.size
    n_words = 1 << n
    e = np.empty(n_words)
    s = -np.ones(n)
    energy = -h.sum()
    for a in range(n):
        for b in range(a + 1, n):
            energy += j[a, b]
    e[0] = energy
    for k in range(1, n_words):
        b = 0
        while not (k >> b) & 1:
            b += 1
        field = h[b]
        for c in range(n):
            if c != b:
                field += j[b, c] * s[c]
        energy -= 2.0 * s[b] * field
        s[b] = -s[b]
        e[k ^ (k >> 1)] = energy
    emax = e.max()
    z = 0.0
    for w in range(n_words):
        e[w] = np.exp(e[w] - emax)
        z += e[w]
    p1 = np.zeros(n)
    p2 = np.zeros((n, n))
    on = np.empty(n, np.int64)
    for w in range(n_words):
        pw = e[w] / z
        e[w] = pw
        m = 0
        for a in range(n):
            if (w >> a) & 1:
                on[m] = a
                m += 1
        for x in range(m):
            p1[on[x]] += pw
            for y in range(x + 1, m):
                p2[on[x], on[y]] += pw
    return e, np.log(z) + emax, p1, p2


class IsingResult(AnalysisResult):
    """A fitted pairwise maximum-entropy model.

    Attributes
    ----------
    h : float64 (N,) — fields. J : float64 (N, N) — couplings (symmetric, zero diagonal).
    p_observed, p_ising, p_independent : float64 (2^N,) — word probabilities (word w's bit i
        = unit i fired), observed and predicted by the Ising and the independent models.
    n_samples : int — bins used.
    converged : bool
    """

    compute = staticmethod(lambda **kw: fit_ising(**kw))

    def plot(self, ax=None):
        """Predicted vs observed word probabilities (log-log), Ising and independent."""
        ax = new_axes(ax, figsize=(3.6, 3.4))
        seen = self.p_observed > 0
        floor = 0.5 / self.n_samples
        ax.loglog(self.p_observed[seen], self.p_independent[seen], ".", ms=3, color="0.6",
                  label="independent")
        ax.loglog(self.p_observed[seen], self.p_ising[seen], ".", ms=3, color="C3",
                  label="pairwise (Ising)")
        lo = max(floor, float(self.p_observed[seen].min())) if seen.any() else floor
        ax.plot([lo, 1], [lo, 1], "k-", lw=0.6)
        ax.set_xlabel("observed P(word)")
        ax.set_ylabel("predicted P(word)")
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(f"{self.h.size} units, {self.n_samples} bins", fontsize=9)
        return ax


def fit_ising(codes, *, l2: float = 1e-6, max_iter: int = 2000, tol: float = 1e-9
              ) -> IsingResult:
    """Fit the pairwise maximum-entropy model to binary codes.

    Parameters
    ----------
    codes : int/bool (N, n_bins) — 1 = spike in the bin (e.g. ``compute_codes(...).codes``);
        N <= 20.
    l2 : L2 penalty on h and J (per sample).
    """
    from scipy.optimize import minimize

    x = np.asarray(codes).astype(bool)
    n, n_bins = x.shape
    if n > MAX_UNITS:
        raise ValueError(f"{n} units: exact enumeration is limited to {MAX_UNITS}")
    if n_bins == 0:
        raise ValueError("no bins")
    spins = np.where(x, 1.0, -1.0)
    m_data = spins.mean(axis=1)
    c_data = spins @ spins.T / n_bins
    iu = np.triu_indices(n, 1)
    target = np.concatenate([m_data, c_data[iu]])

    def unpack(theta):
        j = np.zeros((n, n))
        j[iu] = theta[n:]
        return theta[:n], j + j.T

    def objective(theta):
        h, j = unpack(theta)
        _p, log_z, p1, p2 = _enumerate(h, j)
        pi, pj = p1[iu[0]], p1[iu[1]]
        pair = 1.0 - 2.0 * (pi + pj - 2.0 * p2[iu])  # <s_i s_j> = 1 - 2 P(b_i != b_j)
        model = np.concatenate([2.0 * p1 - 1.0, pair])
        nll = log_z - theta @ target + 0.5 * l2 * theta @ theta
        return nll, model - target + l2 * theta

    res = minimize(objective, np.zeros(n + iu[0].size), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15})
    h, j = unpack(res.x)
    p_model = _enumerate(h, j)[0]
    s = all_words(n)
    words = (1 << np.arange(n, dtype=np.int64)) @ x.astype(np.int64)
    p_obs = np.bincount(words, minlength=1 << n) / n_bins
    rate = x.mean(axis=1)
    bits = (s > 0)
    p_ind = np.prod(np.where(bits, rate, 1 - rate), axis=1)
    settings = dict(l2=l2, max_iter=max_iter, tol=tol)
    return IsingResult({"codes": codes}, settings, h=h, J=j, p_observed=p_obs, p_ising=p_model,
                       p_independent=p_ind, n_samples=int(n_bins), converged=bool(res.success))
