"""Stage markers: stale work is moved aside, never deleted, and comes back with its config."""

from __future__ import annotations

from heirloom.runs.layout import STALE
from heirloom.runs.markers import Stage, retire_others


def test_a_changed_config_moves_work_aside_and_changing_back_restores_it(tmp_path):
    notes = []
    a = Stage.of(tmp_path / "candidates", "generate", {"k": 4}, log=notes.append)
    a.begin({"k": 4})
    (a.directory / "candidates.jsonl").write_text("hours of work\n")
    a.finish()
    assert Stage.of(tmp_path / "candidates", "generate", {"k": 4}).is_done()

    b = Stage.of(tmp_path / "candidates", "generate", {"k": 8}, log=notes.append)
    assert not b.is_done()
    b.begin({"k": 8})
    assert list(b.directory.iterdir()) == [b.directory / ".stage.json"]  # new work never mixes with old
    kept = tmp_path / STALE / f"candidates-{a.key}" / "candidates.jsonl"
    assert kept.read_text() == "hours of work\n" and "moved aside" in notes[-1]
    (b.directory / "candidates.jsonl").write_text("other work\n")  # b is started, not finished

    again = Stage.of(tmp_path / "candidates", "generate", {"k": 4}, log=notes.append)
    assert again.is_done() and "restored" in notes[-1]
    assert (again.directory / "candidates.jsonl").read_text() == "hours of work\n"
    assert (tmp_path / STALE / f"candidates-{b.key}" / "candidates.jsonl").read_text() == "other work\n"


def test_a_directory_without_a_marker_is_left_alone(tmp_path):
    a = Stage.of(tmp_path / "arm", "select", {"x": 1})
    a.begin()
    a.finish()
    b = Stage.of(tmp_path / "arm", "select", {"x": 2})
    b.begin()
    (b.directory / ".stage.json").unlink()  # someone's own files, no stage marker
    (b.directory / "mine.txt").write_text("keep")
    assert not Stage.of(tmp_path / "arm", "select", {"x": 1}).is_done()
    assert (tmp_path / "arm" / "mine.txt").read_text() == "keep"


def test_arms_a_config_dropped_are_moved_aside_and_the_users_files_stay(tmp_path):
    for name in ("kept", "dropped"):
        stage = Stage.of(tmp_path / "arms" / name, "select", {"arm": name})
        stage.begin()
        stage.finish()
    (tmp_path / "arms" / "mine").mkdir()  # no marker: not ours
    notes = []
    moved = retire_others(tmp_path / "arms", ["kept"], log=notes.append)
    dropped_key = Stage.of(tmp_path, "select", {"arm": "dropped"}).key
    assert moved == [tmp_path / "arms" / STALE / f"dropped-{dropped_key}"]
    assert sorted(p.name for p in (tmp_path / "arms").iterdir()) == [STALE, "kept", "mine"]
    assert (moved[0] / ".done.json").is_file() and "not in the config" in notes[0]
    assert retire_others(tmp_path / "arms", ["kept"]) == []  # .stale itself is never an arm
