"""Block-size policies: how a session cuts its source into the blocks given to ``process()``.

The real GUI uses one block size per run: ``int(audio_buffer_size × fs / 44100)`` samples —
**696 at 30 kHz** with the default 1024-sample audio buffer (174 at 256, 1393 at 2048), see
:func:`gui_block_size`. Modules must nevertheless work for any size, so sessions can also use
seeded random sizes (1-sample blocks, odd sizes, large blocks) or an explicit list (adversarial
tests: empty blocks, single samples, ...).

Every policy has ``sizes(n_samples) -> Iterator[int]`` (sizes >= 0 that sum to at most
``n_samples``; the last block is cut to fit) and a JSON-able ``to_spec()`` that
:func:`policy_from_spec` turns back into the policy (the native runner's job file uses it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

GUI_DEFAULT_AUDIO_BUFFER = 1024
GUI_AUDIO_RATE_HZ = 44100.0


def gui_block_size(sample_rate_hz: float, audio_buffer: int = GUI_DEFAULT_AUDIO_BUFFER) -> int:
    """The GUI's block size: ``int(audio_buffer × fs / 44100)`` (696 at 30 kHz, buffer 1024)."""
    return max(1, int(audio_buffer * float(sample_rate_hz) / GUI_AUDIO_RATE_HZ))


@dataclass(frozen=True)
class FixedBlocks:
    """Every block ``size`` samples (the last one shorter)."""

    size: int = 696

    def __post_init__(self):
        if int(self.size) <= 0:
            raise ValueError(f"block size must be positive, got {self.size}")

    def sizes(self, n_samples: int) -> Iterator[int]:
        for start in range(0, int(n_samples), int(self.size)):
            yield min(int(self.size), int(n_samples) - start)

    def to_spec(self) -> dict:
        return {"kind": "fixed", "size": int(self.size)}


@dataclass(frozen=True)
class RandomBlocks:
    """Seeded random sizes: a mix of 1-sample blocks (``p_one``), empty blocks (``p_empty``,
    which the host skips like the GUI), the GUI's 696, and sizes log-uniform in
    ``[2, max_size]`` — small odd sizes and large blocks alike."""

    seed: int = 0
    max_size: int = 8192
    p_one: float = 0.1
    p_empty: float = 0.0
    p_gui: float = 0.1

    def __post_init__(self):
        if int(self.max_size) < 2:
            raise ValueError("max_size must be at least 2")
        if min(self.p_one, self.p_empty, self.p_gui) < 0 or (
                self.p_one + self.p_empty + self.p_gui > 1):
            raise ValueError("p_one, p_empty, p_gui must be >= 0 and sum to <= 1")

    def sizes(self, n_samples: int) -> Iterator[int]:
        rng = np.random.default_rng(self.seed)
        left = int(n_samples)
        log_max = np.log(int(self.max_size))
        while left > 0:
            u = rng.random()
            if u < self.p_empty:
                n = 0
            elif u < self.p_empty + self.p_one:
                n = 1
            elif u < self.p_empty + self.p_one + self.p_gui:
                n = min(696, int(self.max_size))
            else:
                n = int(np.exp(rng.uniform(np.log(2), log_max)))
            n = min(n, left)
            left -= n
            yield n

    def to_spec(self) -> dict:
        return {"kind": "random", "seed": int(self.seed), "max_size": int(self.max_size),
                "p_one": float(self.p_one), "p_empty": float(self.p_empty),
                "p_gui": float(self.p_gui)}


@dataclass(frozen=True)
class ExplicitBlocks:
    """The given sizes in order (0 allowed); then, if ``then`` > 0, blocks of ``then`` until the
    source ends, else the session ends with the list. ``cycle`` repeats the list instead."""

    sizes_list: tuple[int, ...]
    then: int = 0
    cycle: bool = False

    def __post_init__(self):
        object.__setattr__(self, "sizes_list", tuple(int(n) for n in self.sizes_list))
        if any(n < 0 for n in self.sizes_list):
            raise ValueError("block sizes must be >= 0")
        if self.cycle and not any(self.sizes_list):
            raise ValueError("cycling a list of empty blocks never ends")

    def sizes(self, n_samples: int) -> Iterator[int]:
        left = int(n_samples)
        while True:
            for n in self.sizes_list:
                if left <= 0:
                    return
                n = min(n, left)
                left -= n
                yield n
            if not self.cycle:
                break
        if self.then > 0:
            yield from FixedBlocks(self.then).sizes(left)

    def to_spec(self) -> dict:
        return {"kind": "list", "sizes": list(self.sizes_list), "then": int(self.then),
                "cycle": bool(self.cycle)}


BlockPolicy = FixedBlocks | RandomBlocks | ExplicitBlocks


def as_block_policy(blocks, sample_rate_hz: float) -> BlockPolicy:
    """None -> the GUI's size for ``sample_rate_hz``; int -> fixed; sequence -> explicit list;
    a dict -> :func:`policy_from_spec`; a policy -> itself."""
    if blocks is None:
        return FixedBlocks(gui_block_size(sample_rate_hz))
    if isinstance(blocks, (FixedBlocks, RandomBlocks, ExplicitBlocks)):
        return blocks
    if isinstance(blocks, dict):
        return policy_from_spec(blocks)
    if isinstance(blocks, (int, np.integer)):
        return FixedBlocks(int(blocks))
    if isinstance(blocks, Sequence) or isinstance(blocks, np.ndarray):
        return ExplicitBlocks(tuple(blocks))
    raise TypeError(f"cannot use {blocks!r} as a block policy")


def policy_from_spec(spec: dict) -> BlockPolicy:
    kind = spec.get("kind")
    args = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "fixed":
        return FixedBlocks(**args)
    if kind == "random":
        return RandomBlocks(**args)
    if kind == "list":
        return ExplicitBlocks(tuple(args.pop("sizes")), **args)
    raise ValueError(f"unknown block policy kind {kind!r} (fixed, random, list)")
