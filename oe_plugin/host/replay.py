"""Replay a real recording through a module before trusting it in a live experiment.

``sweepsort replay RECORDING_DIR --module PATH [--config TOML] [--block-size N |
--random-blocks] [--native]`` wraps :func:`replay`.
"""

from __future__ import annotations

from .blocks import RandomBlocks
from .session import SessionReport, run_session
from .sources import RecordingSource


def replay(recording_path, module_path, config_path=None, block_size=None, random_blocks=False,
           native=False, node=None, recording=None, stream=None, recording_dir=None, *,
           seed: int = 0, keep_downstream: bool = False,
           hang_timeout_s: float = 10.0, allow_truncated: bool = False) -> SessionReport:
    """Play one stream of an Open Ephys recording through ``module_path``.

    ``block_size``: fixed block size (default: the GUI's, ``int(1024 × fs / 44100)``);
    ``random_blocks``: seeded random sizes instead (``seed``). ``native``: run under the
    plugin's real threading (:func:`~.native.run_native`; raises
    :class:`~.native.NativeRunnerError` on a hang or crash) instead of the pure-Python host
    (raises :class:`~.errors.HostCrash` etc.). ``recording_dir``: where the module writes its
    outputs — ``start_recording(recording_dir)`` is called at the start and
    ``stop_recording()`` at the end. ``node``/``recording``/``stream``: see
    :func:`offline.recording.open_recording`; ``allow_truncated``: play the complete frames of
    a file that ends mid-frame.

    The replay is a new acquisition that starts at the recording's first sample (sample number
    0, as when the GUI's File Reader plays a file): module outputs and emitted TTLs are numbered
    from there, i.e. in 0-based stream indices, and the recording's TTLs are shifted to match
    (``RecordingSource(rebase=True)``).
    """
    if random_blocks and block_size is not None:
        raise ValueError("give either block_size or random_blocks, not both")
    source = RecordingSource(recording_path, node=node, recording=recording, stream=stream,
                             rebase=True, allow_truncated=allow_truncated)
    blocks = RandomBlocks(seed=seed) if random_blocks else block_size
    if native:
        from .native import NativeJob, run_native

        return run_native(NativeJob(module_path, source, blocks, config_path=config_path,
                                    recording_dir=recording_dir,
                                    keep_downstream=keep_downstream,
                                    hang_timeout_s=hang_timeout_s))
    return run_session(module_path, source, blocks, recording_dir=recording_dir,
                       config_path=config_path, keep_downstream=keep_downstream)
