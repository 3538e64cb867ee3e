"""Arms restricted to some teachers (`arms.N.teachers`): their pool, their own random arm, preflight, provenance."""

import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.runs.config import load_run_config
from heirloom.runs.runner import run_config


def _config(tmp_path, tiny_model_dir, shared_data, teachers):
    outputs = sorted(str(p) for p in (shared_data / "alpaca_eval_outputs").glob("[CEF]*.json"))
    path = tmp_path / "restricted.yaml"
    path.write_text(textwrap.dedent(f"""
        name: restricted
        prompts: {{source: {outputs[0]}, column: instruction, limit: 3}}
        teachers:
          - outputs: [{", ".join(outputs)}]
          - model: {tiny_model_dir}
        generation: {{k: 1, max_new_tokens: 6}}
        scoring: {{metrics: [length, mtld]}}
        arms:
          - {{name: long, objective: "max:length"}}
          - {{name: conifer_long, objective: "max:length", teachers: {teachers}}}
        student: {{model: {tiny_model_dir}}}
    """))
    return path


def test_an_arm_with_teachers_gets_its_own_random_arm(tmp_path, tiny_model_dir, shared_data):
    cfg = load_run_config(_config(tmp_path, tiny_model_dir, shared_data, "[Conifer-7B-DPO]"))
    names = [a.name for a in cfg.arms]
    assert names == ["long", "conifer_long", "random", "random.Conifer-7B-DPO"]
    assert cfg.random_arm().name == "random" and cfg.random_arm().teachers is None
    assert cfg.random_arm(cfg.arms[1]).teachers == ["Conifer-7B-DPO"]
    assert "teachers" not in cfg.arms[0].model_dump() and "teachers" not in cfg.arms[2].model_dump()


def test_an_arm_restricted_to_one_imported_teacher(tmp_path, tiny_model_dir, shared_data):
    cfg = load_run_config(_config(tmp_path, tiny_model_dir, shared_data, "[Conifer-7B-DPO]"))
    run_dir = tmp_path / "run"
    run_config(cfg, run_dir, progress=False, until="select", log=lambda *_: None)
    for arm in ("conifer_long", "random.Conifer-7B-DPO"):
        selected = pd.read_json(run_dir / "arms" / arm / "selected.jsonl", lines=True)
        assert len(selected) == 3 and set(selected["teacher"]) == {"Conifer-7B-DPO"}
        summary = json.loads((run_dir / "arms" / arm / "summary.json").read_text())
        assert [t["teacher"] for t in summary["teachers"]] == ["Conifer-7B-DPO"]  # who won, in this pool
        assert summary["arm_teachers"] == ["Conifer-7B-DPO"]
        assert summary["random_arm"] == "random.Conifer-7B-DPO"
        assert summary["teacher_family"] == {"Conifer-7B-DPO": "unknown"}  # its name states no base
        assert summary["teacher_model_family"] == {"Conifer-7B-DPO": None}
        assert summary["teacher_architecture"] == {"Conifer-7B-DPO": None}  # imported: no config at hand
        assert summary["student_architecture"] == "llama"
    # the unrestricted arms are as before: the whole pool, no teachers recorded
    whole = json.loads((run_dir / "arms" / "long" / "summary.json").read_text())
    assert "arm_teachers" not in whole and "teacher_family" not in whole and len(whole["teachers"]) == 6
    random = pd.read_json(run_dir / "arms" / "random" / "selected.jsonl", lines=True)
    assert len(random) == 3
    # the report reads active arms against the whole pool's random arm, and shows every arm
    from heirloom.report import write_report

    write_report(run_dir, n_boot=0)
    assert "random.Conifer-7B-DPO" in (run_dir / "report" / "index.html").read_text()
    # rerun: the config as written (auto random arm included) gives the same arms, nothing redone
    again = run_config(load_run_config(run_dir / "config.yaml"), run_dir, progress=False, until="select",
                       log=lambda *_: None)
    assert "select:arms/random.Conifer-7B-DPO" in again.skipped


def test_a_live_teacher_that_is_the_student_is_the_same_family(tmp_path, tiny_model_dir, shared_data):
    from heirloom.runs.runner import teacher_families

    cfg = load_run_config(_config(tmp_path, tiny_model_dir, shared_data, f"['{tiny_model_dir}']"))
    assert teacher_families(cfg, [str(tiny_model_dir)], str(tiny_model_dir)) == {str(tiny_model_dir): "same"}


def test_an_unknown_teacher_fails_in_preflight(tmp_path, tiny_model_dir, shared_data):
    cfg = load_run_config(_config(tmp_path, tiny_model_dir, shared_data, "[Conifer-7B]"))
    run_dir = tmp_path / "run"
    with pytest.raises(HeirloomError) as e:
        run_config(cfg, run_dir, progress=False, until="select", log=lambda *_: None)
    msg = str(e.value)
    assert "\n" not in msg and "arms.1.teachers" in msg and "'conifer_long'" in msg and "Conifer-7B" in msg
    assert "Conifer-7B-DPO" in msg and str(tiny_model_dir) in msg  # the known names
    assert not (run_dir / "candidates").exists()


def test_the_report_reads_a_restricted_arm_against_its_own_random_arm(tmp_path):
    from heirloom.report.analysis import comparisons, random_arm_of
    from heirloom.report.collect import RunData, _random_arm

    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import make_profile  # a profile with every kind of attribute

    summaries = {"long": {"objective_kind": "metric"}, "random": {"objective_kind": "random"},
                 "c_long": {"objective_kind": "metric", "arm_teachers": ["C"], "random_arm": "random.C"},
                 "random.C": {"objective_kind": "random", "arm_teachers": ["C"], "random_arm": "random.C"}}
    config = {"arms": [{"name": a} for a in summaries]}
    assert _random_arm(config, {"random.C": summaries["random.C"], **summaries}) == "random"
    profiles = {a: make_profile(a, shift=i, seed=i) for i, a in enumerate(summaries)}
    data = RunData(tmp_path, config, {}, list(summaries), "random", summaries=summaries, profiles=profiles)
    assert random_arm_of(data, "c_long") == "random.C" and random_arm_of(data, "long") == "random"
    _, vs_random = comparisons(data, n_boot=0)
    assert set(vs_random["arm"]) == {"long", "c_long"}  # no random arm against itself
    mine = vs_random[vs_random["arm"] == "c_long"].iloc[0]
    from heirloom.profiling.compare import compare

    expected = compare(profiles["random.C"], [profiles["c_long"]], n_boot=0)
    assert mine["pct_change"] == expected[expected["attribute"] == mine["attribute"]].iloc[0]["pct_change"]


def test_model_type_is_read_from_config_json_without_loading(tiny_model_dir, tmp_path):
    from heirloom.models.family import model_type

    assert model_type(str(tiny_model_dir)) == "llama"
    assert model_type(f"ray:{tiny_model_dir}") == "llama"
    assert model_type("openai:m@http://127.0.0.1:9/v1") is None  # a server: not at hand
    assert model_type(str(tmp_path / "nowhere")) is None
