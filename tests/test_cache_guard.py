"""numba cache files are dropped when a kernel source changes (oe_plugin.kernels.cache_guard)."""

from __future__ import annotations

from oe_plugin.kernels.cache_guard import clear_if_changed


def test_cache_cleared_only_when_a_source_changes(tmp_path):
    a, b = tmp_path / "kernels", tmp_path / "online"
    for d in (a, b):
        (d / "__pycache__").mkdir(parents=True)
        (d / "mod.py").write_text("x = 1\n")
    stamp = a / "__pycache__" / "stamp"

    def cache_files():
        return sorted(p.name for d in (a, b) for p in (d / "__pycache__").glob("*.nb*"))

    def fill():
        for d in (a, b):
            (d / "__pycache__" / "mod.f-1.py310.nbi").write_bytes(b"i")
            (d / "__pycache__" / "mod.f-1.py310.1.nbc").write_bytes(b"c")

    fill()
    assert clear_if_changed([a, b], stamp)  # no stamp yet: cleared, stamped
    assert cache_files() == []
    fill()
    assert not clear_if_changed([a, b], stamp)  # same sources: kept
    assert len(cache_files()) == 4
    (b / "mod.py").write_text("x = 2\n")  # a change in the other package
    assert clear_if_changed([a, b], stamp)
    assert cache_files() == []
    (a / "__pycache__" / "keep.pyc").write_bytes(b"p")  # Python's own cache is not touched
    (a / "new.py").write_text("y = 1\n")
    assert clear_if_changed([a, b], stamp)
    assert (a / "__pycache__" / "keep.pyc").exists()
