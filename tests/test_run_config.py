"""Run configs are validated before anything runs, with errors naming file and field."""

import textwrap

import pytest

from heirloom.errors import HeirloomError
from heirloom.runs.config import load_run_config

GOOD = """
name: t
prompts: {source: quickstart, limit: 4}
generation: {k: 2, max_new_tokens: 16}
scoring: {metrics: [length, mtld]}
arms:
  - {name: long, objective: "max:length"}
  - {name: diverse, objective: {kind: metric, metric: mtld, direction: maximize}}
"""


def _write(tmp_path, text):
    p = tmp_path / "run.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_config_gets_a_random_arm(tmp_path):
    cfg = load_run_config(_write(tmp_path, GOOD))
    assert [a.name for a in cfg.arms] == ["long", "diverse", "random"]
    assert cfg.generation.sampling().max_new_tokens == 16


@pytest.mark.parametrize("change,match", [
    (("k: 2", "k: 0"), r"generation\.k: Input should be greater than or equal to 1"),
    (("max_new_tokens: 16", "max_new_tokenz: 16"), r"generation\.max_new_tokenz: Extra inputs"),
    (("max:length", "max:toxicity"), r"arms\.0\.objective uses toxicity"),
    (("max:length", "maxx:length"), r"arms\.0\.objective"),
    (("name: diverse", "name: long"), r"arm names must be unique"),
    (("metrics: [length, mtld]", "metrics: [length, mtdl]"), r"mtdl.*mtld"),
])
def test_bad_fields_are_named(tmp_path, change, match):
    with pytest.raises(HeirloomError, match=match) as e:
        load_run_config(_write(tmp_path, GOOD.replace(*change)))
    assert str(e.value).startswith(str(tmp_path / "run.yaml"))
    assert "\n" not in str(e.value)


def test_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(HeirloomError, match=r"run\.yaml:\d+: invalid YAML"):
        load_run_config(_write(tmp_path, "name: [unclosed\narms: []\n"))


def test_teacher_needs_exactly_one_kind(tmp_path):
    text = GOOD + "teachers:\n  - {model: smollm2-135m, outputs: [a.json]}\n"
    with pytest.raises(HeirloomError, match=r"teachers\.0: .*exactly one of"):
        load_run_config(_write(tmp_path, text))


def test_teachers_are_told_apart_by_model_not_by_where_it_runs(tmp_path):
    same = GOOD + "teachers:\n  - {model: smollm2-135m}\n  - {model: 'ray:smollm2-135m'}\n"
    with pytest.raises(HeirloomError, match=r"teachers 0 and 1 are the same model \(smollm2-135m\)"):
        load_run_config(_write(tmp_path, same))
    pool = GOOD + "teachers:\n  - {model: 'openai:m@http://a/v1'}\n  - {model: 'openai:m@http://b/v1,http://c/v1'}\n"
    with pytest.raises(HeirloomError, match=r"same model \(openai:m\)"):
        load_run_config(_write(tmp_path, pool))
    bad = GOOD + "teachers:\n  - {model: 'openai:m@nowhere'}\n"
    with pytest.raises(HeirloomError, match=r"teachers\.0\.model: model 'openai:m@nowhere'"):
        load_run_config(_write(tmp_path, bad))


def test_several_prompt_sources_are_concatenated_once(tmp_path, shared_data):
    from heirloom.runs.runner import Runner

    seed = shared_data / "alpaca_seed" / "seed_tasks.jsonl"
    text = GOOD.replace("prompts: {source: quickstart, limit: 4}",
                        f"prompts: {{source: [quickstart, {seed}, quickstart], column: instruction}}")
    prompts = Runner(load_run_config(_write(tmp_path, text)), tmp_path / "run")._prompts()
    assert len(prompts) == 320 + 175 and prompts["prompt_id"].is_unique
    # Alpaca seed tasks carry their input inside the first instance; it is part of the prompt.
    assert any(p.startswith("Describe a situation in which the given stereotype") and "\n\n" in p
               for p in prompts["prompt"])
