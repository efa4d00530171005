"""Population codes, pairwise correlations and the pairwise maximum-entropy (Ising) fit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from offline.analysis.ising import all_words, fit_ising, ising_probabilities  # noqa: E402
from offline.analysis.population import (  # noqa: E402
    compute_codes,
    compute_pairwise_correlations,
)


def test_codes_are_aligned_binary_words():
    trains = {"a": np.array([0.001, 0.005, 0.041]), "b": np.array([0.021, 0.039])}
    res = compute_codes(trains, bin_ms=20.0)
    assert res.bin_edges_s[0] == 0.0
    np.testing.assert_array_equal(res.codes, [[1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(res.words(), [1, 2, 1])
    assert res.recompute(bin_ms=50.0).codes.tolist() == [[1], [1]]


def test_pairwise_correlations_known_values():
    rng = np.random.default_rng(0)
    n_bins, bin_s = 20000, 0.02
    shared = rng.random(n_bins) < 0.1
    a = shared | (rng.random(n_bins) < 0.05)
    b = shared | (rng.random(n_bins) < 0.05)
    c = rng.random(n_bins) < 0.1
    to_times = lambda x: (np.flatnonzero(x) + 0.5) * bin_s  # noqa: E731
    res = compute_pairwise_correlations([to_times(a), to_times(b), to_times(c)], bin_ms=20.0,
                                        t_start_s=0.0, t_stop_s=n_bins * bin_s)
    assert res.matrix[0, 1] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
    assert res.matrix[0, 1] > 0.6
    assert abs(res.matrix[0, 2]) < 0.03 and abs(res.matrix[1, 2]) < 0.03
    assert res.pairs.size == 3
    assert res.plot().get_xlabel() == "correlation coefficient"


@pytest.mark.slow
def test_ising_fit_recovers_a_known_model():
    rng = np.random.default_rng(1)
    n = 6
    h = rng.normal(-0.7, 0.3, n)
    j = np.zeros((n, n))
    iu = np.triu_indices(n, 1)
    j[iu] = rng.normal(0.0, 0.3, iu[0].size)
    j += j.T
    p_true = ising_probabilities(h, j)
    words = rng.choice(1 << n, size=400_000, p=p_true)
    codes = (words[None, :] >> np.arange(n)[:, None]) & 1
    res = fit_ising(codes)
    assert res.converged
    np.testing.assert_allclose(res.h, h, atol=0.03)
    np.testing.assert_allclose(res.J, j, atol=0.03)
    # predicted vs observed word probabilities: Ising close, independent model not
    seen = res.p_observed > 1e-3
    rel_ising = np.abs(res.p_ising[seen] / res.p_observed[seen] - 1)
    rel_ind = np.abs(res.p_independent[seen] / res.p_observed[seen] - 1)
    assert rel_ising.max() < 0.1
    assert rel_ind.max() > 0.3
    np.testing.assert_allclose(res.p_ising, p_true, atol=2e-3)
    assert res.plot().get_xscale() == "log"


@pytest.mark.slow
def test_ising_on_independent_units_has_no_couplings():
    rng = np.random.default_rng(2)
    codes = rng.random((4, 100_000)) < np.array([0.05, 0.1, 0.2, 0.3])[:, None]
    res = fit_ising(codes)
    assert np.abs(res.J).max() < 0.05
    np.testing.assert_allclose(res.p_ising, res.p_independent, atol=2e-3)


def test_ising_limits():
    with pytest.raises(ValueError, match="limited to 20"):
        fit_ising(np.zeros((21, 10)))
    assert all_words(3).tolist()[5] == [1, -1, 1]
