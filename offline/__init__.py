"""sweepsort offline: read recordings and online outputs, re-sort, analyse."""

from offline.online_spikes import read_online_spikes

__all__ = ["read_online_spikes"]
from offline.online_sweeps import read_online_sweeps as read_online_sweeps  # noqa: E402
