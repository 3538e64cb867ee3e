"""`heirloom run` checks everything it can before any model loads: each bad run fails with one line,
and no candidate is written (the candidates directory is never made)."""

import textwrap

import pytest

from heirloom.cli import main
from heirloom.errors import HeirloomError
from heirloom.runs.config import load_run_config
from heirloom.runs.preflight import preflight


def _config(tmp_path, model, extra="", scoring="[length, mtld]", objective="max:length", training="max_length: 128",
            profiling="{suites: [textual], textual: {size: 2, max_new_tokens: 4}}", teacher=None):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""
        name: pre
        prompts: {{source: quickstart, limit: 5}}
        teachers: [{teacher or f"{{model: {model}}}"}]
        generation: {{k: 2, max_new_tokens: 4}}
        scoring: {{metrics: {scoring}}}
        arms:
          - {{name: a, objective: "{objective}"}}
        student:
          model: {model}
          training: {{max_steps: 1, {training}}}
        profiling: {profiling}
    """) + extra)
    return path


def _fails(tmp_path, capsys, config, match, run_dir=None):
    """`heirloom run` exits 2 with one line matching `match`, having written no candidate."""
    run_dir = run_dir or tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["run", str(config), "--run-dir", str(run_dir), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert pytest.importorskip("re").search(match, err), err
    assert not (run_dir / "candidates").exists()
    return err


def test_a_good_config_passes(tmp_path, tiny_model_dir):
    preflight(load_run_config(_config(tmp_path, tiny_model_dir)), tmp_path / "run")


def test_profiling_data_that_does_not_resolve(tmp_path, capsys, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("HEIRLOOM_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "data"
    empty.mkdir()
    config = _config(tmp_path, tiny_model_dir, profiling="{suites: [bias], size: 2}", extra=f"data_dir: {empty}\n")
    err = _fails(tmp_path, capsys, config, r"profiling: .*bbq")
    assert str(empty) in err  # the run config's data_dir is where profiling looked
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SystemExit):  # --data-dir wins over the config's
        main(["run", str(config), "--run-dir", str(tmp_path / "run"), "--data-dir", str(other)])
    err = capsys.readouterr().err
    assert str(other / "bbq") in err and str(empty) not in err


def test_the_run_config_data_dir_reaches_profiling(tmp_path, tiny_model_dir, shared_data, monkeypatch):
    monkeypatch.delenv("HEIRLOOM_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = _config(tmp_path, tiny_model_dir, profiling="{suites: [bias], size: 2}",
                     extra=f"data_dir: {shared_data}\n")
    cfg = load_run_config(config)
    assert cfg.profiling["data_dir"] == str(shared_data)
    preflight(cfg, tmp_path / "run")


@pytest.mark.parametrize("scoring,objective,ok", [
    ("[length, 'mtld:column=mtld_all']", "max:mtld_all", True),  # a renamed column is what selection reads
    ("[length, 'mtld:column=mtld_all']", "max:mtld", False),  # ... and the metric's own name is not
    ("[length]", "max:num_tokens", True),  # a pool column, there before scoring
    ("[length]", "lex:max:length,min:wordz", False),
])
def test_objective_columns_are_the_columns_scoring_produces(tmp_path, capsys, tiny_model_dir, scoring, objective, ok):
    config = _config(tmp_path, tiny_model_dir, scoring=scoring, objective=objective)
    if ok:
        load_run_config(config)
    else:
        _fails(tmp_path, capsys, config, r"run\.yaml: .*arms\.0\.objective uses (mtld|wordz), which scoring does "
                                         r"not produce \(metric columns: length")


def test_constraints_are_checked_too(tmp_path, tiny_model_dir):
    config = _config(tmp_path, tiny_model_dir, extra="")
    config.write_text(config.read_text().replace('objective: "max:length"}',
                                                 'objective: "max:length", constraints: ["toxicity<0.1"]}'))
    with pytest.raises(HeirloomError, match=r"arms\.0\.constraints uses toxicity"):
        load_run_config(config)


def test_a_teacher_that_does_not_resolve(tmp_path, capsys, tiny_model_dir):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "todo.txt").write_text("hi")
    teacher = f"{{model: {not_a_model}}}"
    _fails(tmp_path, capsys, _config(tmp_path, tiny_model_dir, teacher=teacher),
           r"teachers\.0\.model: .*not a model")
    missing = f"{{model: {tmp_path / 'no' / 'such'}}}"
    _fails(tmp_path, capsys, _config(tmp_path, tiny_model_dir, teacher=missing), r"teachers\.0\.model: ")
    offline = f"{{outputs: [{tmp_path / 'missing.json'}]}}"
    _fails(tmp_path, capsys, _config(tmp_path, tiny_model_dir, teacher=offline),
           r"teachers\.0\.outputs: .*missing\.json: no such file")


def test_a_student_that_does_not_resolve(tmp_path, capsys, tiny_model_dir):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    config = _config(tmp_path, tiny_model_dir)
    config.write_text(config.read_text().replace(f"  model: {tiny_model_dir}", f"  model: {not_a_model}"))
    _fails(tmp_path, capsys, config, r"student\.model: .*not a model")


def test_a_typo_in_backend_options(tmp_path, capsys, tiny_model_dir):
    teacher = f"{{model: {tiny_model_dir}, options: {{max_new_tokenz: 3}}}}"
    _fails(tmp_path, capsys, _config(tmp_path, tiny_model_dir, teacher=teacher),
           r"teachers\.0\.options: .*max_new_tokenz")


def test_max_length_that_leaves_no_room_after_the_longest_prompt(tmp_path, capsys, tiny_model_dir):
    config = _config(tmp_path, tiny_model_dir, training="max_length: 16")
    _fails(tmp_path, capsys, config, r"student\.training\.max_length: prompts: row \d+ \(prompt_id \w+\).*"
                                     r"leaves no room .*max_length=16")
    # long_prompts: skip leaves such pairs out at training time, but not every one of them
    config = _config(tmp_path, tiny_model_dir, training="max_length: 16, long_prompts: skip")
    _fails(tmp_path, capsys, config, r"student\.training\.max_length: prompts: every prompt leaves no room")


def test_a_run_dir_holding_the_users_files(tmp_path, capsys, tiny_model_dir, monkeypatch):
    config = _config(tmp_path, tiny_model_dir).rename(tmp_path / "config.yaml")
    before = config.read_text()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["run", "config.yaml", "--run-dir", "."])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run directory .: holds files heirloom did not make (config.yaml)")
    assert len(err.splitlines()) == 1
    assert config.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_an_earlier_run_dir_is_accepted(tmp_path, tiny_model_dir):
    from heirloom.runs.preflight import check_run_dir

    run_dir = tmp_path / "run"
    (run_dir / "candidates").mkdir(parents=True)
    (run_dir / "candidates" / ".stage.json").write_text("{}")
    check_run_dir(run_dir)
    check_run_dir(tmp_path / "new")
    with pytest.raises(HeirloomError, match="holds files heirloom did not make"):
        check_run_dir(tmp_path)  # holds run/ (ours, one level down) and nothing marks tmp_path as a run


def test_the_python_api_checks_too_and_only_for_the_stages_it_reaches(tmp_path, tiny_model_dir):
    from heirloom import run_config

    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    config = _config(tmp_path, tiny_model_dir)
    config.write_text(config.read_text().replace(f"  model: {tiny_model_dir}", f"  model: {not_a_model}"))
    cfg = load_run_config(config)
    with pytest.raises(HeirloomError, match=r"run\.yaml: student\.model: .*not a model"):
        run_config(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert not (tmp_path / "run").exists()
    preflight(cfg, tmp_path / "run", until="select")  # the student is not used before training


def test_lora_layers_beyond_the_student_fails_before_generation(tmp_path, capsys, tiny_model_dir):
    # the tiny student has 2 layers
    _fails(tmp_path, capsys, _config(tmp_path, tiny_model_dir, training="max_length: 128, lora_layers: 3"),
           r"student\.training\.lora_layers: 3 layers asked, .* has 2")
    preflight(load_run_config(_config(tmp_path, tiny_model_dir, training="max_length: 128, lora_layers: 2")),
              tmp_path / "run")
