"""Probe geometry: contact positions and electrode groups, indexed by data channel.

A :class:`Probe` tells the kernels where each channel of the Open Ephys stream sits (µm) and
which channels may interact spatially (same ``group``). Channels in different groups never do:
they belong to different probes of a probeinterface ``ProbeGroup`` (e.g. the 8 stereotrodes of
``stereotrodes16``) or to different shanks (``shank_ids``).

Geometry comes from probeinterface JSON files (the field's standard format). ``load_probe``
accepts ``None`` / ``"single"`` (every channel its own group: no spatial coupling, the default),
the name of a layout shipped in ``oe_plugin/probes/`` (see :func:`list_probes`) or a path to a
probeinterface JSON file. Contacts map to data channels through the file's
``device_channel_indices`` (contact order when the file has none; ``-1`` = not connected).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBES_DIR = Path(__file__).resolve().parent / "probes"
SINGLE = "single"
#: Vertical spacing given to ``single`` channels (only cosmetic: each is its own group).
SINGLE_PITCH_UM = 100.0
#: Slack on the radius comparison so that a site exactly ``radius_um`` away is a neighbour.
_RADIUS_SLACK_UM = 1e-6


class ProbeError(ValueError):
    """A probe specification cannot be used with the stream (bad file, wrong channel count...)."""


@dataclass(frozen=True, eq=False)
class Probe:
    """Channel geometry of one stream.

    Attributes
    ----------
    name : str
        Layout name (shipped layout name, file stem, or ``"single"``).
    positions_um : np.ndarray, shape (n_channels, 2), float64
        (x, y) of each data channel's contact, µm.
    groups : np.ndarray, shape (n_channels,), int64
        Electrode group of each data channel (probe and shank); channels in different groups
        never interact spatially.
    """

    name: str
    positions_um: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        positions = np.array(self.positions_um, dtype=np.float64, copy=True)
        groups = np.array(self.groups, dtype=np.int64, copy=True)
        if positions.ndim != 2 or positions.shape[1] != 2:
            raise ProbeError(f"probe {self.name!r}: positions_um must have shape (n, 2), "
                             f"got {positions.shape}")
        if groups.shape != (positions.shape[0],):
            raise ProbeError(f"probe {self.name!r}: groups must have shape "
                             f"({positions.shape[0]},), got {groups.shape}")
        if not np.all(np.isfinite(positions)):
            raise ProbeError(f"probe {self.name!r}: positions_um contains NaN or inf")
        positions.setflags(write=False)
        groups.setflags(write=False)
        object.__setattr__(self, "positions_um", positions)
        object.__setattr__(self, "groups", groups)

    @property
    def n_channels(self) -> int:
        """Number of data channels."""
        return int(self.positions_um.shape[0])


def list_probes() -> list[str]:
    """Names accepted by :func:`load_probe`: ``"single"`` and the shipped layouts, sorted."""
    shipped = sorted(p.stem for p in PROBES_DIR.glob("*.json"))
    return [SINGLE, *shipped]


def single_probe(n_channels: int) -> Probe:
    """``n_channels`` independent channels (one group each) on a vertical line."""
    _check_n_channels(n_channels)
    positions = np.zeros((n_channels, 2))
    positions[:, 1] = SINGLE_PITCH_UM * np.arange(n_channels)
    return Probe(name=SINGLE, positions_um=positions, groups=np.arange(n_channels))


def load_probe(spec: str | os.PathLike | None, n_channels: int) -> Probe:
    """The probe for a stream of ``n_channels`` data channels.

    Parameters
    ----------
    spec : None, str or path
        ``None`` or ``"single"``; a shipped layout name (:func:`list_probes`); or the path of a
        probeinterface JSON file.
    n_channels : int
        Channel count of the stream; the probe must map exactly this many contacts.

    Raises
    ------
    ProbeError
        Unknown name, unreadable file, channel count mismatch, duplicate or out-of-range
        ``device_channel_indices``. The message names the file and both counts.
    """
    _check_n_channels(n_channels)
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", SINGLE)):
        return single_probe(n_channels)
    text = os.fspath(spec)
    shipped = PROBES_DIR / f"{text}.json"
    if os.sep not in text and "/" not in text and shipped.is_file():
        return _probe_from_file(shipped, n_channels, name=text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ProbeError(
            f"probe {text!r}: no such shipped layout and no such file; shipped layouts: "
            f"{', '.join(list_probes())}"
        )
    return _probe_from_file(path, n_channels, name=path.stem)


def neighbour_mask(probe: Probe, radius_um: float) -> np.ndarray:
    """Which channel pairs are spatial neighbours.

    Returns
    -------
    np.ndarray, shape (n_channels, n_channels), uint8
        1 where both channels are in the same group and their Euclidean distance is
        <= ``radius_um`` (µm); the diagonal is 1. Symmetric.
    """
    radius_um = float(radius_um)
    if not radius_um >= 0.0:  # also refuses NaN
        raise ValueError(f"radius_um must be >= 0, got {radius_um}")
    pos = probe.positions_um
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1)
    limit = (radius_um + _RADIUS_SLACK_UM) ** 2
    same_group = probe.groups[:, None] == probe.groups[None, :]
    mask = (same_group & (d2 <= limit)).astype(np.uint8)
    np.fill_diagonal(mask, 1)
    return mask


def neighbour_lists(probe: Probe, radius_um: float) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour mask as compressed rows (CSR).

    Returns
    -------
    indptr : np.ndarray, shape (n_channels + 1,), int32
    indices : np.ndarray, shape (indptr[-1],), int32
        The neighbours of channel ``c`` (itself included, ascending) are
        ``indices[indptr[c]:indptr[c + 1]]``.
    """
    mask = neighbour_mask(probe, radius_um)
    indptr = np.zeros(probe.n_channels + 1, dtype=np.int32)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    indices = np.nonzero(mask)[1].astype(np.int32)
    return indptr, indices


def _check_n_channels(n_channels: int) -> None:
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)):
        raise ProbeError(f"n_channels must be an integer, got {n_channels!r}")
    if n_channels < 1:
        raise ProbeError(f"n_channels must be >= 1, got {n_channels}")


def _probe_from_file(path: Path, n_channels: int, name: str) -> Probe:
    """Read a probeinterface JSON file and map its contacts to data channels."""
    from probeinterface import read_probeinterface  # imported lazily: slow, rarely needed

    try:
        probegroup = read_probeinterface(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: cannot read probeinterface JSON: {exc}") from None
    except Exception as exc:  # probeinterface raises bare ValueError/KeyError/TypeError
        raise ProbeError(f"{path}: not a valid probeinterface file: "
                         f"{type(exc).__name__}: {exc}") from None
    return probe_from_probegroup(probegroup, n_channels, name, path)


def probe_from_probegroup(probegroup, n_channels: int, name: str, path) -> Probe:
    """Map the contacts of a probeinterface ``ProbeGroup`` (or ``Probe``) to data channels.

    ``path`` names where the geometry came from in error messages.
    """
    if not hasattr(probegroup, "probes"):  # a single probeinterface Probe
        from probeinterface import ProbeGroup

        group = ProbeGroup()
        group.add_probe(probegroup)
        probegroup = group
    if not probegroup.probes:
        raise ProbeError(f"{path}: the file holds no probe")

    channels, positions, groups = [], [], []
    group_ids: dict[tuple[int, str], int] = {}
    contact_offset = 0
    for k, pi_probe in enumerate(probegroup.probes):
        n_contacts = pi_probe.get_contact_count()
        dci = pi_probe.device_channel_indices
        if dci is None:  # no wiring: contact order across the file
            dci = np.arange(contact_offset, contact_offset + n_contacts)
        dci = np.asarray(dci, dtype=np.int64)
        shanks = pi_probe.shank_ids
        if shanks is None or len(shanks) != n_contacts:
            shanks = np.full(n_contacts, "")
        pos = np.asarray(pi_probe.contact_positions, dtype=np.float64)[:, :2]
        for i in range(n_contacts):
            if dci[i] < 0:  # probeinterface: -1 = contact not connected
                continue
            key = (k, str(shanks[i]))
            groups.append(group_ids.setdefault(key, len(group_ids)))
            channels.append(int(dci[i]))
            positions.append(pos[i])
        contact_offset += n_contacts

    channels_arr = np.asarray(channels, dtype=np.int64)
    n_mapped = channels_arr.size
    if n_mapped != n_channels:
        raise ProbeError(
            f"{path}: the probe maps {n_mapped} contacts to data channels but the stream has "
            f"{n_channels} channels; use a probe file made for this stream"
        )
    bad = channels_arr[(channels_arr < 0) | (channels_arr >= n_channels)]
    if bad.size:
        raise ProbeError(f"{path}: device_channel_indices out of range 0..{n_channels - 1}: "
                         f"{sorted(set(bad.tolist()))[:10]}")
    unique, counts = np.unique(channels_arr, return_counts=True)
    if np.any(counts > 1):
        raise ProbeError(f"{path}: device_channel_indices used by several contacts: "
                         f"{unique[counts > 1][:10].tolist()}")

    order = np.argsort(channels_arr)
    return Probe(
        name=name,
        positions_um=np.asarray(positions, dtype=np.float64).reshape(-1, 2)[order],
        groups=np.asarray(groups, dtype=np.int64)[order],
    )
