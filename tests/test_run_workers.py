"""`heirloom run --workers N`: independent stages in worker processes, the same files and keys as a
sequential run, a failed unit that keeps the others' work, and one run per directory."""

import json

import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.runs.config import load_run_config
from heirloom.runs.lock import run_lock
from heirloom.runs.parallel import Unit, plan, run_parallel
from heirloom.runs.runner import run_config

from test_runner import _config


def _quiet(*_):
    pass


def test_plan_orders_units_and_their_needs():
    units = plan(["long", "random"], until=None)
    names = [str(u) for u in units]
    assert names == ["generate", "score", "select", "train long", "train random",
                     "profile base", "profile long", "profile random"]
    by_name = {str(u): u for u in units}
    assert by_name["profile base"].needs == ()  # the base model needs no training: it starts at once
    assert [str(n) for n in by_name["profile long"].needs] == ["train long"]
    assert [str(n) for n in by_name["train random"].needs] == ["select"]
    assert [str(u) for u in plan(["long"], until="train")] == ["generate", "score", "select", "train long"]
    assert [str(u) for u in plan(["long"], until="generate")] == ["generate"]


def test_workers_write_what_a_sequential_run_then_reuses(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    logs = []
    first = run_config(cfg, run_dir, progress=False, log=logs.append, workers=2)
    assert first.skipped == []
    assert {"generate", "train long", "train random", "profile base", "profile long", "report"} <= set(first.seconds)
    pool = pd.read_parquet(run_dir / "candidates" / "pool.parquet")
    assert len(pool) == 5 * 2 and not pool.duplicated(["prompt_id", "sample_index"]).any()
    for arm in ("long", "random"):
        assert (run_dir / "students" / arm / "merged" / "config.json").exists()
        assert json.loads((run_dir / "profiles" / arm / "profile.json").read_text())["attributes"]
    assert (run_dir / "report" / "index.html").exists()
    assert json.loads((run_dir / "run.json").read_text())["workers"] == 2
    assert any("2 workers" in str(line) for line in logs)

    # Every unit was keyed as the sequential runner keys it: a plain rerun redoes nothing.
    again = run_config(cfg, run_dir, progress=False, log=_quiet)
    assert {"generate:candidates", "score:scores", "select:arms/long", "select:arms/random", "train:students/long",
            "train:students/random", "profile:profiles/base", "profile:profiles/long",
            "profile:profiles/random"} <= set(again.skipped)


def test_a_failed_unit_raises_its_error_and_the_others_keep_their_work(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    units = [Unit("train", "ghost"), Unit("profile", "base")]
    with pytest.raises(HeirloomError, match="train ghost: no arm named 'ghost' to train"):
        run_parallel(cfg, run_dir, units, workers=2, log=_quiet)
    assert (run_dir / "profiles" / "base" / ".done.json").exists()
    assert json.loads((run_dir / "profiles" / "base" / "profile.json").read_text())["attributes"]


def test_a_unit_waiting_on_a_failed_one_never_starts(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    ghost = Unit("train", "ghost")
    with pytest.raises(HeirloomError, match="train ghost"):
        run_parallel(cfg, run_dir, [ghost, Unit("profile", "base", needs=(ghost,))], workers=2, log=_quiet)
    assert not (run_dir / "profiles").exists()


def test_one_run_at_a_time_per_directory(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    with run_lock(run_dir):
        with pytest.raises(HeirloomError, match=r"another heirloom run is using this run directory \(pid \d+\)"):
            run_config(cfg, run_dir, progress=False, log=_quiet)
    assert not (run_dir / "candidates").exists()  # the refused run wrote nothing
    with run_lock(run_dir):  # released when the holder ends
        pass


def test_workers_must_be_positive(tmp_path, tiny_model_dir):
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    with pytest.raises(HeirloomError, match="--workers must be at least 1"):
        run_config(cfg, tmp_path / "run", progress=False, log=_quiet, workers=0)
