"""Sweep-table rules: counts, covariation, combinatorial order, shuffling, runs, blanks, seed."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oe_plugin.protocol.spec import SWEEP_NONE
from stimulus.plan import BLANK, POST, POST_SWEEP, PRE, STIMULUS, build_plan
from stimulus.script import Blanks, Runs, ScriptError, Variable
from stimulus.sweeptable import build_table


def test_no_variables_one_condition():
    t = build_table({"sweep_s": 2.0, "x_deg": 1.0})
    assert t.n_conditions == 1 and t.conditions == ({"sweep_s": 2.0, "x_deg": 1.0},)
    assert t.order.tolist() == [0]


def test_covarying_and_combinatorial_nested_order():
    dyn = {"a": Variable([1, 2, 3], dim=5), "b": Variable(["x", "y", "z"], dim=5),
           "c": Variable([10, 20], dim=-1), "k": 7}
    t = build_table(dyn)
    # dims renumbered in sorted order: c (dim -1) is dimension 0, the outer loop
    assert [d.names for d in t.dims] == [("c",), ("a", "b")]
    assert t.n_conditions == 6
    rows = [(c["c"], c["a"], c["b"], c["k"]) for c in t.conditions]
    assert rows == [(10, 1, "x", 7), (10, 2, "y", 7), (10, 3, "z", 7),
                    (20, 1, "x", 7), (20, 2, "y", 7), (20, 3, "z", 7)]
    assert t.order.tolist() == list(range(6))  # nothing shuffled: nested-loop order
    assert list(t.conditions[0]) == ["a", "b", "c", "k"]  # the script's key order


def test_covariation_mismatch_is_an_error_naming_the_variable():
    with pytest.raises(ScriptError, match=r"dynamic\.b: 2 values .* 'a'"):
        build_table({"a": Variable([1, 2, 3], dim=0), "b": Variable([1, 2], dim=0)})
    with pytest.raises(ScriptError, match=r"dynamic\.b: shuffle=True"):
        build_table({"a": Variable([1, 2], dim=0), "b": Variable([1, 2], dim=0, shuffle=True)})


def test_all_dims_shuffled_permutes_every_condition():
    dyn = {"a": Variable(range(4), dim=0, shuffle=True), "b": Variable(range(5), dim=1,
                                                                        shuffle=True)}
    t = build_table(dyn, seed=3)
    assert sorted(t.order.tolist()) == list(range(20))
    assert t.order.tolist() != list(range(20))
    # a full permutation mixes the outer dimension (not blocks of 5 of one 'a')
    outer = [t.conditions[i]["a"] for i in t.order]
    assert any(len(set(outer[k:k + 5])) > 1 for k in range(0, 20, 5))


def test_one_shuffled_dim_permuted_within_each_combination_of_the_others():
    dyn = {"ori": Variable(range(6), dim=0, shuffle=True), "lum": Variable([0, 1], dim=1)}
    t = build_table(dyn, seed=11)
    seq = [(t.conditions[i]["ori"], t.conditions[i]["lum"]) for i in t.order]
    # the unshuffled inner dimension keeps its nested-loop places: 0, 1, 0, 1, ...
    assert [lum for _o, lum in seq] == [0, 1] * 6
    # the shuffled dimension is a permutation in the lum=0 slots and another in the lum=1 slots
    for lum in (0, 1):
        oris = [o for o, lv in seq if lv == lum]
        assert sorted(oris) == list(range(6))
    slots0 = [o for o, lv in seq if lv == 0]
    slots1 = [o for o, lv in seq if lv == 1]
    assert slots0 != list(range(6)) and slots0 != slots1  # independently permuted (seed 11)


def test_runs_repeat_or_reshuffle():
    dyn = {"a": Variable(range(8), dim=0, shuffle=True)}
    same = build_table(dyn, Runs(3), seed=5)
    runs = same.order.reshape(3, 8)
    assert (runs == runs[0]).all()
    assert same.run.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    fresh = build_table(dyn, Runs(3, reshuffle=True), seed=5)
    runs = fresh.order.reshape(3, 8)
    assert all(sorted(r) == list(range(8)) for r in runs.tolist())
    assert not (runs == runs[0]).all()
    assert np.array_equal(runs[0], same.order[:8])  # the first run is the same draw


def test_blank_every_t_th_sweep():
    t = build_table({"a": Variable(range(288), dim=0)}, blanks=Blanks(every=20, duration_s=2.0))
    pos = np.flatnonzero(t.order == SWEEP_NONE)
    # the seed's rule: T-1 stimulus sweeps then a blank -> 15 blanks at 19, 39, 59, ...
    assert pos.tolist() == [19 + 20 * k for k in range(15)]
    assert t.n_stimulus_sweeps == 288
    assert t.order[t.order != SWEEP_NONE].tolist() == list(range(288))


def test_shuffled_blanks_same_count_random_places():
    dyn = {"a": Variable(range(50), dim=0)}
    fixed = build_table(dyn, blanks=Blanks(every=10))
    rand = build_table(dyn, blanks=Blanks(every=10, shuffle=True), seed=2)
    assert fixed.n_blanks == rand.n_blanks == 5
    assert (np.flatnonzero(rand.order == SWEEP_NONE).tolist()
            != np.flatnonzero(fixed.order == SWEEP_NONE).tolist())
    assert rand.order[rand.order != SWEEP_NONE].tolist() == list(range(50))


def test_headline_experiment_builds_instantly_with_its_duration():
    dyn = {"ori_deg": Variable(range(0, 360, 30), dim=0, shuffle=True),
           "sf_cpd": Variable([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], dim=1, shuffle=True),
           "tf_hz": Variable([0.5, 1, 2, 5], dim=2, shuffle=True),
           "sweep_s": 4.0, "postsweep_s": 0.0}
    t0 = time.perf_counter()
    t = build_table(dyn, Runs(4, reshuffle=True), Blanks(every=10, duration_s=4.0), seed=1)
    plan = build_plan(t, 200.0, preexp_s=1.0, postexp_s=1.0, blank_s=4.0)
    took = time.perf_counter() - t0
    assert t.n_conditions == 288 and t.n_stimulus_sweeps == 1152
    assert t.n_blanks == len(range(9, 1152, 9)) == 127
    counts = Counter(t.order[t.order != SWEEP_NONE].tolist())
    assert set(counts.values()) == {4}  # every condition once per run
    # 1152 sweeps x 4 s = 76.8 min of stimulus (the issue's ~77 min), + blanks and pre/post
    assert np.count_nonzero(plan.phase == STIMULUS) == 1152 * 800
    assert plan.duration_s == pytest.approx(1152 * 4 + 127 * 4 + 2)
    assert took < 1.0


def test_plan_layout_and_codes():
    dyn = {"a": Variable([0, 1], dim=0), "sweep_s": Variable([0.02, 0.01], dim=0),
           "postsweep_s": 0.005}
    t = build_table(dyn, Runs(2), Blanks(every=3, duration_s=0.01))
    plan = build_plan(t, 200.0, preexp_s=0.01, postexp_s=0.015, blank_s=0.01)
    # order: 0, 1, blank, 0, 1
    assert t.order.tolist() == [0, 1, SWEEP_NONE, 0, 1]
    want_phase = ([PRE] * 2 + [STIMULUS] * 4 + [POST_SWEEP] + [STIMULUS] * 2 + [POST_SWEEP]
                  + [BLANK] * 2 + [STIMULUS] * 4 + [POST_SWEEP] + [STIMULUS] * 2
                  + [POST_SWEEP] + [POST] * 3)
    assert plan.phase.tolist() == want_phase
    want_code = [SWEEP_NONE if ph != STIMULUS else None for ph in want_phase]
    it = iter([0] * 4 + [1] * 2 + [0] * 4 + [1] * 2)
    want_code = [next(it) if c is None else c for c in want_code]
    assert plan.code.tolist() == want_code
    assert plan.frame_in_sweep[2:6].tolist() == [0, 1, 2, 3]
    assert plan.presentation_start().tolist() == [2, 7, 10, 12, 17]


@st.composite
def experiments(draw):
    n_dims = draw(st.integers(0, 3))
    dyn = {}
    for d in range(n_dims):
        n = draw(st.integers(1, 5))
        shuffle = draw(st.booleans())
        for j in range(draw(st.integers(1, 2))):
            dyn[f"v{d}_{j}"] = Variable([d * 100 + j * 10 + k for k in range(n)],
                                        dim=draw(st.sampled_from([d * 10 - 5])), shuffle=shuffle)
    runs = Runs(draw(st.integers(1, 3)), draw(st.booleans()))
    blanks = draw(st.one_of(st.none(), st.builds(Blanks, every=st.integers(2, 6),
                                                 shuffle=st.booleans())))
    return dyn, runs, blanks


@settings(max_examples=60, deadline=None)
@given(experiments(), st.integers(0, 2**32 - 1))
def test_property_same_seed_same_table_and_invariants(exp, seed):
    dyn, runs, blanks = exp
    a = build_table(dyn, runs, blanks, seed)
    b = build_table(dyn, runs, blanks, seed)
    assert np.array_equal(a.order, b.order) and a.conditions == b.conditions
    assert np.array_equal(a.run, b.run)
    n_cond = int(np.prod([d.n for d in a.dims])) if a.dims else 1
    assert a.n_conditions == n_cond
    # every condition exactly once per run
    stim = a.order[a.order != SWEEP_NONE]
    assert stim.size == n_cond * runs.n
    for r in range(runs.n):
        assert sorted(stim[r * n_cond:(r + 1) * n_cond].tolist()) == list(range(n_cond))
    # co-varying variables stay zipped; conditions are the full Cartesian product
    for dim in a.dims:
        for name in dim.names[1:]:
            i0 = [dyn[dim.names[0]].values.index(c[dim.names[0]]) for c in a.conditions]
            i1 = [dyn[name].values.index(c[name]) for c in a.conditions]
            assert i0 == i1
    combos = {tuple(row) for row in a.dim_index.tolist()}
    assert combos == set(itertools.product(*[range(d.n) for d in a.dims]))
    # blanks: the count the rule gives
    if blanks is not None:
        assert a.n_blanks == len(range(blanks.every - 1, stim.size, blanks.every - 1))
        if not blanks.shuffle:
            assert np.all(a.order[blanks.every - 1::blanks.every][:a.n_blanks] == SWEEP_NONE)
    else:
        assert a.n_blanks == 0
