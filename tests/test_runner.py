"""`heirloom run` end to end on a tiny random model: artifacts, reruns, stale work, resumption."""

import json
import textwrap

import pandas as pd
import pytest

from heirloom.cli import main
from heirloom.generation.base import Backend
from heirloom.runs.config import load_run_config
from heirloom.runs.runner import run_config


def _config(tmp_path, model, metrics="[length, mtld]", max_new_tokens=8):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""
        name: tiny
        prompts: {{source: quickstart, limit: 5}}
        teachers: [{{model: {model}}}]
        generation: {{k: 2, max_new_tokens: {max_new_tokens}, top_p: 0.9}}
        scoring: {{metrics: {metrics}}}
        arms:
          - {{name: long, objective: "max:length"}}
        student:
          model: {model}
          training: {{max_steps: 1, batch_size: 2, max_length: 128}}
        profiling:
          suites: [textual]
          textual: {{size: 2, max_new_tokens: 4}}
    """))
    return path


def test_run_end_to_end_then_reuse_then_redo_only_what_changed(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    first = run_config(cfg, run_dir, progress=False, log=lambda *_: None)
    assert first.skipped == []
    pool = pd.read_parquet(run_dir / "candidates" / "pool.parquet")
    assert len(pool) == 5 * 2 and not pool.duplicated(["prompt_id", "sample_index"]).any()
    scored = pd.read_parquet(run_dir / "scores" / "scored.parquet")
    assert {"length", "mtld"} <= set(scored.columns)
    for arm in ("long", "random"):  # the random arm is always added
        selected = pd.read_json(run_dir / "arms" / arm / "selected.jsonl", lines=True)
        assert len(selected) == 5
        assert (run_dir / "students" / arm / "merged" / "config.json").exists()
        assert json.loads((run_dir / "profiles" / arm / "profile.json").read_text())["attributes"]
    long = pd.read_json(run_dir / "arms" / "long" / "selected.jsonl", lines=True)
    best = scored.groupby("prompt_id")["length"].max()
    assert (long.set_index("prompt_id")["length"] == best.loc[long["prompt_id"]]).all()
    assert (run_dir / "report" / "index.html").exists()

    again = run_config(cfg, run_dir, progress=False, log=lambda *_: None)
    assert {"generate:candidates", "score:scores", "select:arms/long", "train:students/long",
            "profile:profiles/base"} <= set(again.skipped)

    # A new metric no objective uses: scoring and the (cheap) selection are redone, the candidates are
    # reused, and the students (trained on the same pairs) and their profiles are kept.
    changed = load_run_config(_config(tmp_path, tiny_model_dir, metrics="[length, mtld, words]"))
    third = run_config(changed, run_dir, progress=False, log=lambda *_: None)
    assert "generate:candidates" in third.skipped and "score:scores" not in third.skipped
    assert "select:arms/long" not in third.skipped
    assert {"train:students/long", "train:students/random", "profile:profiles/long"} <= set(third.skipped)
    summary = json.loads((run_dir / "arms" / "long" / "summary.json").read_text())
    assert "words" in [m["metric"] for m in summary["metrics"]]
    assert summary["objective_directions"] == {"length": "maximize"}
    assert "long" in pd.read_csv(run_dir / "report" / "targeted.csv")["arm"].tolist()
    assert "words" in pd.read_parquet(run_dir / "scores" / "scored.parquet").columns
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "candidates" / "pool.parquet"), pool)
    # The earlier scores were moved aside, not deleted.
    assert len(list((run_dir / ".stale").glob("scores-*/scored.parquet"))) == 1


def test_how_a_teacher_runs_is_not_part_of_the_generate_key(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    text = _config(tmp_path, tiny_model_dir).read_text()
    cfg = load_run_config(_config(tmp_path, tiny_model_dir))
    run_config(cfg, run_dir, progress=False, until="generate", log=lambda *_: None)
    served_otherwise = text.replace(f"teachers: [{{model: {tiny_model_dir}}}]",
                                    f"teachers: [{{model: {tiny_model_dir}, batch_size: 3, options: {{}}}}]")
    assert served_otherwise != text
    (tmp_path / "other.yaml").write_text(served_otherwise)
    again = run_config(load_run_config(tmp_path / "other.yaml"), run_dir, progress=False, until="generate",
                       log=lambda *_: None)
    assert "generate:candidates" in again.skipped


def test_run_killed_mid_generation_resumes_without_duplicates(tmp_path, tiny_model_dir, monkeypatch):
    import heirloom.candidates as candidates

    # float64: samples then depend only on their seeds, not on which prompts share a batch (in bf16 or
    # fp32 a near-tie can flip a token when the batch changes; see docs/backends.md), so a resumed pool
    # must equal the uninterrupted one exactly.
    path = _config(tmp_path, tiny_model_dir)
    path.write_text(path.read_text().replace(f"teachers: [{{model: {tiny_model_dir}}}]",
                                             f"teachers: [{{model: {tiny_model_dir}, options: {{dtype: float64}}}}]"))
    cfg = load_run_config(path)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    run_config(cfg, ref_dir, progress=False, until="generate", log=lambda *_: None)

    real = candidates._append
    calls = {"n": 0}

    def dies_after_first_batch(out, rows):
        if calls["n"] == 1:
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        real(out, rows)

    monkeypatch.setattr(Backend, "preferred_batch", 2)
    monkeypatch.setattr(candidates, "_append", dies_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        run_config(cfg, run_dir, progress=False, until="generate", log=lambda *_: None)
    before_kill = (run_dir / "candidates" / "candidates.jsonl").read_text().splitlines()
    assert len(before_kill) == 2 * 2
    monkeypatch.setattr(candidates, "_append", real)
    run_config(cfg, run_dir, progress=False, until="generate", log=lambda *_: None)
    assert (run_dir / "candidates" / "candidates.jsonl").read_text().splitlines()[:4] == before_kill  # kept as written
    resumed = pd.read_parquet(run_dir / "candidates" / "pool.parquet")
    reference = pd.read_parquet(ref_dir / "candidates" / "pool.parquet")
    pd.testing.assert_frame_equal(resumed, reference)


def test_cli_run_rejects_a_bad_config_before_doing_anything(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("arms: [{name: a, objective: 'max:nonsense'}]\n")
    with pytest.raises(SystemExit) as e:
        main(["run", str(bad), "--run-dir", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.yaml" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_multi_source_pool_mixes_imported_and_live_teachers(tmp_path, tiny_model_dir, shared_data):
    outputs = sorted(str(p) for p in (shared_data / "alpaca_eval_outputs").glob("[CEF]*.json"))
    config = tmp_path / "multi.yaml"
    config.write_text(textwrap.dedent(f"""
        name: multi
        prompts: {{source: {outputs[0]}, column: instruction, limit: 3}}
        teachers:
          - outputs: [{", ".join(outputs)}]
          - model: {tiny_model_dir}
        generation: {{k: 1, max_new_tokens: 6}}
        scoring: {{metrics: [length, mtld]}}
        arms: [{{name: long, objective: "max:length"}}]
    """))
    run_dir = tmp_path / "run"
    run_config(load_run_config(config), run_dir, progress=False, until="select", log=lambda *_: None)
    pool = pd.read_parquet(run_dir / "candidates" / "pool.parquet")
    assert pool["teacher"].nunique() == 6 and len(pool) == 3 * 6
    assert pool.groupby("prompt_id")["teacher"].nunique().eq(6).all()
    summary = json.loads((run_dir / "arms" / "long" / "summary.json").read_text())
    assert sum(t["chosen"] for t in summary["teachers"]) == 3  # who won how often
    selected = pd.read_json(run_dir / "arms" / "long" / "selected.jsonl", lines=True)
    scored = pd.read_parquet(run_dir / "scores" / "scored.parquet")
    assert (selected.set_index("prompt_id")["length"]
            == scored.groupby("prompt_id")["length"].max().loc[selected["prompt_id"]]).all()


def test_dropped_arms_go_to_stale_and_a_new_metric_version_redoes_scoring(tmp_path, tiny_model_dir, monkeypatch):
    from heirloom.metrics.lexical import MTLD
    from heirloom.report import write_report

    quiet = {"progress": False, "until": "select", "log": lambda *_: None}
    text = _config(tmp_path, tiny_model_dir).read_text()
    two_arms = tmp_path / "two.yaml"
    two_arms.write_text(text.replace('- {name: long, objective: "max:length"}',
                                     '- {name: long, objective: "max:length"}\n'
                                     '  - {name: short, objective: "min:length"}'))
    run_dir = tmp_path / "run"
    run_config(load_run_config(two_arms), run_dir, **quiet)
    assert (run_dir / "arms" / "short" / "summary.json").is_file()

    one_arm = run_config(load_run_config(_config(tmp_path, tiny_model_dir)), run_dir, **quiet)
    assert "select:arms/long" in one_arm.skipped
    assert not (run_dir / "arms" / "short").exists()  # moved aside, not deleted
    assert len(list((run_dir / "arms" / ".stale").glob("short-*/summary.json"))) == 1
    write_report(run_dir, n_boot=0)
    arms = set(pd.read_csv(run_dir / "report" / "targeted.csv")["arm"])
    assert arms == {"long"} and "short" not in (run_dir / "report" / "index.html").read_text()

    monkeypatch.setattr(MTLD, "version", MTLD.version + ".1")  # a scorer that now gives other values
    again = run_config(load_run_config(_config(tmp_path, tiny_model_dir)), run_dir, **quiet)
    assert "generate:candidates" in again.skipped and "score:scores" not in again.skipped
