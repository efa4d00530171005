"""The sweep table: conditions (parameter combinations) and the order they are shown in.

Rules (dimstim's, made reproducible):

- **Conditions.** Variables sharing a dimension co-vary (zipped); dimensions combine
  combinatorially in nested-loop order, the lowest dimension the outermost loop (it changes
  least often). Condition ``i`` is row ``i`` of that nested loop; ``i`` is the *sweep index*
  sent on the TTL lines. Dimension numbers are renumbered 0..D-1 in sorted order. A table
  with no variables has one condition.
- **Shuffling.** If every dimension is shuffled, each run is a random permutation of all
  conditions. Otherwise each shuffled dimension is permuted independently within every
  combination of the other dimensions' slots: unshuffled dimensions stay in their nested-loop
  places, and every run still holds every condition exactly once (the permutations move whole
  conditions, one shuffled axis after the other).
- **Runs.** The order is repeated ``runs.n`` times: the same order, or (``reshuffle``) a fresh
  draw per run.
- **Blanks.** After the runs are joined, every ``every``-th sweep is a blank (T-1 stimulus
  sweeps then a blank), or, with ``shuffle``, the same number of blanks at random positions.
  Blanks are :data:`SWEEP_NONE` (65535) in the order.
- **Seed.** One ``numpy.random.Generator(PCG64(seed))`` draws, in this order, each run's
  shuffles then the blank positions: the same variables and seed give the same table, bit
  for bit.

The table is built with array code (``numpy.indices``), never by generating and running loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oe_plugin.protocol.spec import SWEEP_NONE
from stimulus.script import Blanks, Runs, ScriptError, Variable


@dataclass(frozen=True)
class Dimension:
    """One dimension: the co-varying variables, their common length and shuffle flag."""

    index: int
    script_dim: int
    names: tuple[str, ...]
    n: int
    shuffle: bool

    def to_dict(self) -> dict:
        return {"index": self.index, "script_dim": self.script_dim, "names": list(self.names),
                "n": self.n, "shuffle": self.shuffle}


@dataclass(frozen=True)
class SweepTable:
    """Conditions and presentation order.

    Attributes
    ----------
    dims : tuple of Dimension
    dim_index : np.ndarray int32, shape (n_conditions, n_dims)
        Value index of each dimension for each condition.
    conditions : tuple of dict
        Per condition (= sweep index): every dynamic parameter's value.
    order : np.ndarray int32, shape (n_presented,)
        Sweep index of each presented sweep in order; :data:`SWEEP_NONE` for a blank.
    run : np.ndarray int32, shape (n_presented,)
        The run each presented sweep belongs to (blanks: the run of the sweep before them).
    """

    dims: tuple[Dimension, ...]
    dim_index: np.ndarray
    conditions: tuple[dict, ...]
    order: np.ndarray
    run: np.ndarray
    seed: int

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def n_blanks(self) -> int:
        return int(np.count_nonzero(self.order == SWEEP_NONE))

    @property
    def n_stimulus_sweeps(self) -> int:
        return int(self.order.size - self.n_blanks)

    def column(self, name: str) -> list:
        """One parameter's value for every condition."""
        return [c[name] for c in self.conditions]

    def structure(self) -> dict:
        """JSON-ready description of dimensions and variables (for the session file)."""
        return {"dims": [d.to_dict() for d in self.dims],
                "dim_index": self.dim_index.tolist()}


def build_table(dynamic: dict, runs: Runs | None = None, blanks: Blanks | None = None,
                seed: int = 0) -> SweepTable:
    """Build the sweep table from dynamic parameters (values or :class:`Variable`).

    Raises ScriptError naming the parameter when co-varying variables disagree in length or
    shuffle flag.
    """
    runs = runs or Runs()
    variables = {k: v for k, v in dynamic.items() if isinstance(v, Variable)}
    constants = {k: v for k, v in dynamic.items() if not isinstance(v, Variable)}
    dims = _dimensions(variables)
    shape = tuple(d.n for d in dims)
    n_cond = int(np.prod(shape)) if dims else 1
    dim_index = (np.indices(shape).reshape(len(dims), -1).T.astype(np.int32) if dims
                 else np.zeros((1, 0), np.int32))
    conditions = []
    for row in dim_index:
        cond = dict(constants)
        for d, dim in enumerate(dims):
            for name in dim.names:
                cond[name] = variables[name].values[int(row[d])]
        conditions.append({k: cond[k] for k in dynamic})  # the script's key order
    rng = np.random.default_rng(seed)
    per_run = []
    first = None
    for _ in range(runs.n):
        if first is None or runs.reshuffle:
            first = _run_order(dims, shape, n_cond, rng)
        per_run.append(first)
    order = np.concatenate(per_run).astype(np.int64)
    run = np.repeat(np.arange(runs.n), n_cond)
    if blanks is not None:
        order, run = _insert_blanks(order, run, blanks, rng)
    return SweepTable(tuple(dims), dim_index, tuple(conditions), order.astype(np.int32),
                      run.astype(np.int32), int(seed))


def _dimensions(variables: dict[str, Variable]) -> list[Dimension]:
    by_dim: dict[int, list[str]] = {}
    for name, var in variables.items():
        by_dim.setdefault(var.dim, []).append(name)
    dims = []
    for i, script_dim in enumerate(sorted(by_dim)):
        names = by_dim[script_dim]
        first = variables[names[0]]
        for name in names[1:]:
            var = variables[name]
            if len(var.values) != len(first.values):
                raise ScriptError(
                    f"dynamic.{name}: {len(var.values)} values but '{names[0]}' in the same "
                    f"dimension (dim={script_dim}) has {len(first.values)}: variables in one "
                    f"dimension co-vary and need the same length")
            if var.shuffle != first.shuffle:
                raise ScriptError(
                    f"dynamic.{name}: shuffle={var.shuffle} but '{names[0]}' in the same "
                    f"dimension (dim={script_dim}) has shuffle={first.shuffle}")
        dims.append(Dimension(i, script_dim, tuple(names), len(first.values), first.shuffle))
    return dims


def _run_order(dims: list[Dimension], shape: tuple, n_cond: int,
               rng: np.random.Generator) -> np.ndarray:
    """One run's condition order (length n_conditions)."""
    if not dims or not any(d.shuffle for d in dims):
        return np.arange(n_cond)
    if all(d.shuffle for d in dims):
        return rng.permutation(n_cond)
    # permute whole conditions along each shuffled axis, independently for every position of
    # the other axes: each run still holds every condition once, and an unshuffled dimension
    # keeps its nested-loop value in every slot (all moves stay inside lines where it is fixed)
    cond = np.arange(n_cond).reshape(shape)
    for d in dims:
        if d.shuffle:
            along = np.arange(d.n).reshape([-1 if a == d.index else 1 for a in range(len(shape))])
            idx = rng.permuted(np.broadcast_to(along, shape), axis=d.index)
            cond = np.take_along_axis(cond, idx, axis=d.index)
    return cond.ravel()


def _insert_blanks(order: np.ndarray, run: np.ndarray, blanks: Blanks,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = order.size
    step = blanks.every - 1
    n_blanks = len(range(step, n, step))
    if n_blanks == 0:
        return order, run
    if blanks.shuffle:
        pos = np.sort(rng.choice(n + n_blanks, size=n_blanks, replace=False))
    else:
        pos = np.arange(1, n_blanks + 1) * blanks.every - 1
    is_blank = np.zeros(n + n_blanks, bool)
    is_blank[pos] = True
    out = np.full(n + n_blanks, SWEEP_NONE, np.int64)
    out[~is_blank] = order
    out_run = np.zeros(n + n_blanks, np.int64)
    out_run[~is_blank] = run
    # a blank belongs to the run of the sweep before it (the first run if it leads)
    idx = np.where(~is_blank, np.arange(n + n_blanks), -1)
    last = np.maximum.accumulate(idx)
    out_run[is_blank] = np.where(last[is_blank] >= 0, out_run[np.maximum(last[is_blank], 0)],
                                 run[0])
    return out, out_run
