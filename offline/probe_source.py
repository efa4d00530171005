"""Which probe a command uses, and where it came from.

In order: the command line's ``--probe``; the ``[detect] probe`` of the settings TOML when the
file sets it; the probe recorded with the data (an Open Ephys ``settings.xml`` holding
Neuropixels electrode positions, read with probeinterface); a one-channel stream needs none.
Otherwise a multi-channel *sort* stops with :class:`~oe_plugin.probe.ProbeError` asking for
``--probe`` (``--probe single`` sorts every channel alone, on purpose); detection falls back to
``single`` and says so.

:func:`resolve_probe` returns the probe and a short origin that the commands print
(``probe ProbeA (PRB_1_4_0480_1, 384 channels) from …/settings.xml``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from oe_plugin.probe import (
    SINGLE,
    Probe,
    ProbeError,
    list_probes,
    load_probe,
    probe_from_probegroup,
    single_probe,
)

_NP_ELEMENTS = ("<NP_PROBE", "<NEUROPIXELSV1E", "<NEUROPIXELSV1F", "<NEUROPIXELSV2E")


def settings_file_of(rec) -> Path | None:
    """The GUI's ``settings.xml`` that describes an open stream's experiment, if any.

    Binary: ``Record Node …/settings.xml`` for experiment 1, ``settings_N.xml`` for
    experiment N; legacy (``*.continuous``) and NWB: ``settings.xml`` beside the data.
    """
    fmt = getattr(rec, "format", "")
    if fmt == "flat-binary":
        return None
    if fmt == "binary":
        rec_dir = Path(getattr(rec, "_recording_dir", Path(rec.path).parent.parent))
        node = rec_dir.parent.parent
        m = re.search(r"(\d+)$", rec_dir.parent.name)
        n = int(m.group(1)) if m else 1
        candidates = [node / ("settings.xml" if n <= 1 else f"settings_{n}.xml"),
                      node / "settings.xml"]
    else:
        folder = Path(rec.path)
        candidates = [folder / "settings.xml", folder.parent / "settings.xml"]
    return next((c for c in candidates if c.is_file()), None)


def _stream_key(rec) -> str:
    """What probeinterface matches probe names against: the Binary folder name
    (``Neuropix-PXI-100.ProbeA-AP``) or the stream name."""
    return str(getattr(rec, "_folder", "") or getattr(rec, "stream_name", "") or "")


def probe_in_recording(rec) -> tuple[Probe, str] | None:
    """The probe the recording carries (Neuropixels positions in settings.xml), or None.

    Raises
    ------
    ProbeError
        The settings file describes a Neuropixels probe for this stream but it cannot be read
        or does not match the stream's channel count (the message names the file).
    """
    settings = settings_file_of(rec)
    if settings is None:
        return None
    try:
        text = settings.read_text(errors="replace")
    except OSError:
        return None
    if not any(tag in text for tag in _NP_ELEMENTS):
        return None
    import probeinterface as pi

    stream = _stream_key(rec)
    reader = getattr(pi, "read_openephys_neuropixels", None) or pi.read_openephys
    try:
        has = getattr(pi, "has_neuropixels_probes", None)
        if has is not None and stream and not has(settings, stream_name=stream):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pi_probe = reader(settings, stream_name=stream or None)
    except Exception as exc:  # probeinterface raises bare Exception / AssertionError
        if "not associated" in str(exc) or "Inconsistency" in str(exc):
            return None  # the probes in the file belong to other streams (NI-DAQ, ADC…)
        raise ProbeError(f"{settings}: cannot read the Neuropixels probe of stream "
                         f"{stream!r}: {exc}; pass --probe") from None
    ann = getattr(pi_probe, "annotations", {}) or {}
    label = str(ann.get("name") or "probe")
    model = str(ann.get("model_name") or ann.get("part_number") or "Neuropixels")
    probe = probe_from_probegroup(pi_probe, int(rec.n_channels), f"{model}:{label}", settings)
    return probe, f"{label} ({model}, {probe.n_channels} channels) from {settings}"


def resolve_probe(cli_probe: str | None, config_probe: str | None, rec, *,
                  require: bool) -> tuple[Probe, str]:
    """The probe a command uses and a one-line description of it (name + origin).

    Parameters
    ----------
    cli_probe : ``--probe`` (None when not given).
    config_probe : ``[detect] probe`` when the settings file sets it (None otherwise).
    rec : the open stream.
    require : True for sorting: a multi-channel stream without a probe is an error.
    """
    n = int(rec.n_channels)
    for spec, origin in ((cli_probe, "--probe"), (config_probe, "[detect] probe")):
        if spec is not None:
            probe = load_probe(spec, n)
            return probe, f"{probe.name} ({n} channels) from {origin}"
    found = probe_in_recording(rec)
    if found is not None:
        return found
    if n == 1:
        return single_probe(1), "single (one channel)"
    if require:
        where = settings_file_of(rec)
        why = (f"{where.name} has no Neuropixels electrode positions" if where is not None
               else "no settings.xml")
        raise ProbeError(
            f"{n} channels and no probe geometry in the recording ({why}): pass --probe NAME "
            f"or a probeinterface JSON file (built in: {', '.join(list_probes()[1:])}), or "
            f"--probe {SINGLE} to sort every channel on its own")
    return single_probe(n), (f"{SINGLE} ({n} channels, no spatial coupling): no --probe and "
                             "no probe geometry in the recording")
