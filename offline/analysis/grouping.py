"""Animal / Track / Recording grouping (neuropy's hierarchy) without a rigid folder scheme.

Each recording directory says where it belongs, first found wins:

1. a ``sweepsort-meta.json`` file in it: ``{"animal": "ptc22", "track": "tr1"}``;
2. a ``key(path) -> (animal, track)`` function given by the caller (e.g. a regex on the name);
3. its folders: the track is the parent folder's name, the animal the grandparent's.

::

    animals = group_recordings(find_recordings("/data"))
    animals["ptc22"].tracks["tr1"].recordings      # [Recording, ...] in name order
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from offline.analysis.model import Recording

META_FILE = "sweepsort-meta.json"


@dataclass
class Track:
    """Recordings made along one electrode track (one probe insertion)."""

    name: str
    recordings: list = field(default_factory=list)

    def __getitem__(self, i):
        return self.recordings[i]

    def __repr__(self) -> str:
        return f"<Track {self.name!r}: {len(self.recordings)} recordings>"


@dataclass
class Animal:
    name: str
    tracks: dict = field(default_factory=dict)

    @property
    def recordings(self) -> list:
        return [r for t in self.tracks.values() for r in t.recordings]

    def __repr__(self) -> str:
        return f"<Animal {self.name!r}: tracks {list(self.tracks)}>"


def is_recording_dir(path: Path) -> bool:
    """An Open Ephys session folder (``settings.xml`` or a ``Record Node``), or a folder with
    sweepsort outputs (``sweepsort/``, ``*.session.json``) or a ``sweepsort-meta.json``."""
    p = Path(path)
    if not p.is_dir():
        return False
    return ((p / META_FILE).exists() or (p / "settings.xml").exists()
            or any(c.name.startswith("Record Node") for c in p.iterdir() if c.is_dir())
            or (p / "sweepsort").is_dir() or any(p.glob("*.session.json")))


def find_recordings(root, max_depth: int = 4) -> list[Path]:
    """Recording directories under ``root`` (the top-most match on each branch)."""
    root = Path(root)
    out: list[Path] = []

    def walk(p: Path, depth: int):
        if is_recording_dir(p):
            out.append(p)
            return
        if depth >= max_depth:
            return
        for c in sorted(x for x in p.iterdir() if x.is_dir() and not x.name.startswith(".")):
            walk(c, depth + 1)

    walk(root, 0)
    return out


def identity(path: Path, key: Callable | None = None) -> tuple[str, str]:
    """(animal, track) of a recording directory (see the module docstring)."""
    path = Path(path)
    meta = path / META_FILE
    if meta.exists():
        d = json.loads(meta.read_text())
        return str(d.get("animal", "unknown")), str(d.get("track", "unknown"))
    if key is not None:
        animal, track = key(path)
        return str(animal), str(track)
    return path.resolve().parent.parent.name, path.resolve().parent.name


def group_recordings(paths, key: Callable | None = None, **recording_kw) -> dict:
    """animal name -> :class:`Animal` for recording directories (or Recording objects)."""
    animals: dict[str, Animal] = {}
    for p in paths:
        rec = p if isinstance(p, Recording) else Recording(p, **recording_kw)
        a, t = identity(rec.path, key)
        animal = animals.setdefault(a, Animal(a))
        animal.tracks.setdefault(t, Track(t)).recordings.append(rec)
    for animal in animals.values():
        for track in animal.tracks.values():
            track.recordings.sort(key=lambda r: r.name)
    return animals
