"""Where a block's time goes in the online sorter's kernel (``OnlineSorter.process_online``).

Runs :mod:`bench_online_sorter`'s case (every unit at 10 Hz, drift stage and live motion
tracking on) through the kernel alone, ``--repeat`` passes, and prints per block (minimum over
passes, first 2 s skipped): p50 / p99, a least-squares fit ``ms = fixed + per_spike * spikes``
over the blocks without a tracker piece, and the p50 / p99 of the blocks with one.

For a profile by function, run it under ``perf`` with an empty numba cache: at the end it
writes ``/tmp/perf-<pid>.map`` naming every compiled function of ``oe_plugin.kernels`` (the
symbols come from the LLVM modules, which a cached load does not have)::

    NUMBA_CACHE_DIR=$(mktemp -d) perf record -F 4000 -o /tmp/k.data \\
        .venv/bin/python benchmarks/profile_online_sorter.py --repeat 200
    perf report -i /tmp/k.data --no-children --sort sym
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_online_sorter as B  # noqa: E402


def _readable(name: str) -> str:
    """``_ZN9oe_plugin7kernels5match9_productsB...`` -> ``oe_plugin.kernels.match._products``."""
    parts, i = [], name.find("N") + 1
    while 0 < i < len(name) and name[i].isdigit():
        j = i
        while name[j].isdigit():
            j += 1
        k = int(name[i:j])
        parts.append(name[j:j + k])
        i = j + k
    return ".".join(parts) or name[:60]


def write_perf_map() -> int:
    """``/tmp/perf-<pid>.map`` of the compiled functions of ``oe_plugin.kernels``; their count."""
    import numba

    from oe_plugin import kernels

    symbols = set()
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"oe_plugin.kernels.{info.name}")
        for obj in vars(module).values():
            if not isinstance(obj, numba.core.registry.CPUDispatcher):
                continue
            for cres in obj.overloads.values():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "inspection disabled for cached code"
                    try:
                        ir = cres.library.get_llvm_str()
                    except Exception:
                        continue
                if "define" not in ir:  # loaded from the cache: no IR, no names
                    continue
                for name in set(re.findall(r'define [^@]*@"?([^"(]+)"?\(', ir)):
                    try:
                        address = cres.library.get_pointer_to_function(name)
                    except Exception:
                        address = 0
                    if address:
                        symbols.add((address, _readable(name)))
    ordered = sorted(symbols)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as f:
        for i, (address, name) in enumerate(ordered):
            size = ordered[i + 1][0] - address if i + 1 < len(ordered) else 0x10000
            f.write(f"{address:x} {min(size, 0x100000):x} {name}\n")
    return len(ordered)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--templates", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from oe_plugin.host.session import config_env
    from oe_plugin.host.simulator import Host
    from oe_plugin.kernels import motion_track as TR

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = B.make_case(tmp / "sort", args.channels, args.templates, args.seconds,
                           rate_hz=10.0, motion=True, track=True)
        cfg = tmp / "p.toml"
        cfg.write_text(f'[match]\nsort_dir = "{tmp / "sort"}"\ntrack_motion = true\n')
        with config_env(cfg):
            host = Host(B.MODULE, args.channels, B.FS)
        core = host.instance.sorter.sorter
        state = core.tracker.tstate
        blocks = [np.ascontiguousarray(data[:, s:s + B.BLOCK])
                  for s in range(0, data.shape[1] - B.BLOCK + 1, B.BLOCK)]
        times, pieces, spikes = [], [], []
        for _ in range(args.repeat):
            core.reset()
            t_pass, p_pass, n_pass = [], [], []
            for block in blocks:
                t0 = time.perf_counter()
                n = core.process_online(block)
                t_pass.append(time.perf_counter() - t0)
                p_pass.append(state[TR.TS_PIECE_DONE] != 0.0)
                n_pass.append(n)
            times.append(t_pass)
            pieces.append(p_pass)
            spikes.append(n_pass)
    skip = int(2 * B.FS / B.BLOCK)
    ms = np.min(np.array(times), axis=0)[skip:] * 1e3
    piece = np.array(pieces[0])[skip:]
    n = np.array(spikes[0])[skip:]
    print(f"{args.channels} ch x {args.templates} templates, {len(ms)} blocks of {B.BLOCK}, "
          f"minimum of {args.repeat} passes: p50 {np.percentile(ms, 50):.3f} ms, "
          f"p99 {np.percentile(ms, 99):.3f} ms; spikes per block mean {n.mean():.1f}, "
          f"p99 {np.percentile(n, 99):.0f}")
    per_spike, fixed = np.polyfit(n[~piece], ms[~piece], 1)
    print(f"blocks without a tracker piece: ms = {fixed:.3f} + {per_spike * 1e3:.2f} µs x spikes")
    if piece.any():
        print(f"blocks with a tracker piece ({piece.sum()} of {len(piece)}): p50 "
              f"{np.percentile(ms[piece], 50):.3f}, p99 {np.percentile(ms[piece], 99):.3f} ms; "
              f"without: p50 {np.percentile(ms[~piece], 50):.3f}, "
              f"p99 {np.percentile(ms[~piece], 99):.3f} ms")
    print(f"perf map: {write_perf_map()} compiled functions named")


if __name__ == "__main__":
    main()
