"""Where chunk tasks run: in this process, a local process pool, or a Dask cluster.

All three run the same top-level task functions with the same arguments and return their
results in submission order, so a sort is identical whichever runs it (tested). The interface
is one method, :meth:`Executor.run`, which calls ``on_result(i, result)`` as each task finishes
(the pipeline saves each chunk result there, which makes an interrupted sort resumable).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence


class Executor:
    name = "serial"

    def run(self, fn: Callable, arg_lists: Sequence[tuple], on_result=None, desc="",
            progress=False) -> list:
        bar = _bar(len(arg_lists), desc, progress)
        out = []
        try:
            for i, args in enumerate(arg_lists):
                r = fn(*args)
                if on_result is not None:
                    on_result(i, r)
                out.append(r)
                _tick(bar)
        finally:
            _close(bar)  # also on Ctrl-C: the message that follows gets a line of its own
        return out

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalPoolExecutor(Executor):
    """A ``concurrent.futures`` process pool of ``jobs`` workers (the default for jobs > 1)."""

    name = "local-pool"

    def __init__(self, jobs: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        self.jobs = int(jobs)
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=mp.get_context(method),
                                            initializer=_ignore_sigint)

    def run(self, fn, arg_lists, on_result=None, desc="", progress=False):
        import concurrent.futures as cf

        bar = _bar(len(arg_lists), desc, progress)
        futures = {self._pool.submit(fn, *args): i for i, args in enumerate(arg_lists)}
        out = [None] * len(arg_lists)
        try:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                if on_result is not None:
                    on_result(i, out[i])
                _tick(bar)
        except BaseException:  # Ctrl-C, or a failed task: drop the queued tasks now
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            _close(bar)
        return out

    def close(self):
        """Wait for the running tasks (workers ignore Ctrl-C: a worker killed mid-task could
        leave the pool's queues locked) and drop the queued ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a running ``dask.distributed`` scheduler (``--scheduler tcp://host:8786``) or a
    ``Client`` given directly. Workers need sweepsort installed and the recording at the same
    path (a shared file system)."""

    name = "dask"

    def __init__(self, scheduler=None, client=None):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise RuntimeError("the Dask executor needs the 'dask' extra: "
                               "pip install 'sweepsort[dask]'") from exc
        self._own = client is None
        self.client = client if client is not None else Client(scheduler)

    def run(self, fn, arg_lists, on_result=None, desc="", progress=False):
        from distributed import as_completed

        bar = _bar(len(arg_lists), desc, progress)
        futures = [self.client.submit(fn, *args, pure=False) for args in arg_lists]
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(arg_lists)
        for fut in as_completed(futures):
            i = index[fut.key]
            out[i] = fut.result()
            if on_result is not None:
                on_result(i, out[i])
            _tick(bar)
            fut.release()
        _close(bar)
        return out

    def close(self):
        if self._own:
            self.client.close()


def make_executor(jobs: int | None = None, scheduler: str | None = None) -> Executor:
    """Dask when ``scheduler`` is given; else a pool of ``jobs`` processes (default: all
    cores); ``jobs=1`` runs in this process."""
    if jobs is not None and int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if scheduler:
        return DaskExecutor(scheduler)
    jobs = int(jobs or os.cpu_count() or 1)
    return Executor() if jobs <= 1 else LocalPoolExecutor(jobs)


def _ignore_sigint():
    """Pool workers leave Ctrl-C to the main process (which stops them): no traceback from
    each worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _bar(total, desc, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", leave=False)


def _tick(bar):
    if bar is not None:
        bar.update(1)


def _close(bar):
    if bar is not None:
        bar.close()
