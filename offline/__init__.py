"""sweepsort offline: read recordings and online outputs, re-sort, analyse."""

from offline.online_spikes import read_online_spikes

__all__ = ["read_online_spikes"]
