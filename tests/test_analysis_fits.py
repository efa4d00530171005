"""Tuning-curve fits (grid start + refinement): at least as good as a least-squares fit started
at the true parameters, on noisy curves of every model, and a known curve recovered exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime, curve_fit

from offline.analysis import fits

CASES = {
    "von_mises": (np.arange(0, 180, 15.0),
                  lambda r: [r.uniform(0, 10), r.uniform(5, 40), r.uniform(0.3, 5),
                             r.uniform(0, 180)]),
    "von_mises_direction": (np.arange(0, 360, 30.0),
                            lambda r: [r.uniform(0, 10), r.uniform(5, 40), r.uniform(0, 20),
                                       r.uniform(0.5, 5), r.uniform(0, 360)]),
    "gaussian": (np.array([0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]),
                 lambda r: [r.uniform(0, 5), r.uniform(5, 30), r.uniform(0.1, 0.9),
                            r.uniform(0.1, 0.5)]),
    "log_gaussian": (np.array([0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]),
                     lambda r: [r.uniform(0, 5), r.uniform(5, 30), r.uniform(0.05, 0.8),
                                r.uniform(0.5, 2)]),
}


@pytest.mark.parametrize("model", sorted(CASES))
def test_fit_is_no_worse_than_a_fit_started_at_the_truth(model):
    fn, names = fits.MODELS[model]
    x, draw = CASES[model]
    rng = np.random.default_rng(sum(map(ord, model)))
    for _ in range(25):
        true = draw(rng)
        y = fn(x, *true) + rng.normal(0, rng.uniform(0.5, 6), x.size)
        got = fits.fit_tuning(x, y, model)
        assert got is not None and got.model == model
        sse = float(np.sum((got(x) - y) ** 2))
        try:
            ref, _ = curve_fit(fn, x, y, p0=true, bounds=fits.bounds_for(model, x),
                               maxfev=20000)
        except RuntimeError:
            continue
        ref_sse = float(np.sum((fn(x, *ref) - y) ** 2))
        assert sse <= ref_sse * (1 + 1e-3) + 1e-9, (true, got.params, sse, ref_sse)
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        assert got.r2 == pytest.approx(1 - sse / ss_tot)


@pytest.mark.parametrize("model", sorted(CASES))
def test_noise_free_curve_recovered(model):
    fn, names = fits.MODELS[model]
    x, draw = CASES[model]
    true = draw(np.random.default_rng(3))
    got = fits.fit_tuning(x, fn(x, *true), model)
    assert got.r2 > 1 - 1e-6
    np.testing.assert_allclose(got(x), fn(x, *true), atol=1e-3)


@pytest.mark.parametrize("model", sorted(CASES))
def test_analytical_jacobian_matches_finite_differences(model):
    fn, _ = fits.MODELS[model]
    x, draw = CASES[model]
    p = np.asarray(draw(np.random.default_rng(5)), np.float64)
    jac = fits._JACOBIANS[model](x, *p)
    num = np.array([approx_fprime(p, lambda q, i=i: fn(x, *q)[i], 1e-7) for i in range(x.size)])
    np.testing.assert_allclose(jac, num, rtol=1e-4, atol=1e-4 * np.abs(num).max())
