"""``sweepsort report`` without a sort: a one-line error with a hint (exit status 2), not an
empty report."""

from __future__ import annotations

from test_cli_probe import _session

from offline.cli import main as cli_main


def test_report_needs_a_sort_and_says_where_to_find_one(tmp_path, capsys):
    session = _session(tmp_path)  # tmp/s: a recording, no sort inside it
    html = tmp_path / "r.html"
    empty = tmp_path / "empty"
    empty.mkdir()
    # an empty folder
    assert cli_main(["report", str(empty), "--out", str(html), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sweepsort report: no sort of ")
    assert "pass --sort SORT_DIR" in err
    assert not html.exists()
    # a recording whose sort was written next to it: the hint names that folder
    sort_dir = tmp_path / "sort"
    assert cli_main(["sort", str(session), "--out", str(sort_dir), "--probe", "single",
                     "--jobs", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["report", str(session), "--out", str(html), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"sorts of this recording next to it: {sort_dir}; pass --sort {sort_dir}" in err
    assert not html.exists()
    # --sort naming something that is not a sort folder
    assert cli_main(["report", str(session), "--sort", str(empty), "--out", str(html)]) == 2
    err = capsys.readouterr().err
    assert f"--sort {empty}: not a complete sort folder" in err
    # with --sort it reports that sort (no unit pages asked for: quick)
    assert cli_main(["report", str(session), "--sort", str(sort_dir), "--out", str(html),
                     "--units", "999999", "--quiet"]) == 0
    assert f"sort: sort (offline, {sort_dir})" in capsys.readouterr().out
    assert html.is_file()
