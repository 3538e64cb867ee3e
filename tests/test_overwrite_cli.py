"""Commands never replace a file the user did not ask them to replace, and bad arguments get one line.

A command may rewrite what it made itself (a rerun); the input, the user's own files and files of
other commands need `--overwrite`. Checked before any model loads.
"""

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from heirloom.cli import cli, main


def _pool(path):
    rows = [{"prompt_id": f"p{i // 2}", "prompt": f"Prompt {i // 2}", "teacher": "t", "sample_index": i % 2,
             "completion": "a b c" if i % 2 else "a much longer answer here", "num_tokens": 3 + i, "seed": i}
            for i in range(6)]
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    return path


def _error(capsys, argv, match):
    """The command exits 2 with one `error:` line matching `match`."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert re.search(match, err), err
    return err


def _scored(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl")
    scored = tmp_path / "scored.parquet"
    r = CliRunner().invoke(cli, ["score", "--in", str(pool), "-m", "words", "--out", str(scored), "--no-progress"])
    assert r.exit_code == 0, r.output
    return scored


# --- select ----------------------------------------------------------------------------
def test_select_onto_its_input_needs_overwrite(tmp_path, capsys):
    scored = _scored(tmp_path)
    before = scored.read_bytes()
    _error(capsys, ["select", "--in", str(scored), "--objective", "max:words", "--out", str(scored)],
           r"--out .*scored\.parquet: is also an input of this command; .*--overwrite")
    assert scored.read_bytes() == before
    r = CliRunner().invoke(cli, ["select", "--in", str(scored), "--objective", "max:words", "--out", str(scored),
                                 "--overwrite", "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(scored)) == 3  # replaced, as asked: one row per prompt


def test_select_reruns_over_its_own_outputs_but_not_over_other_files(tmp_path, capsys):
    scored = _scored(tmp_path)
    out = tmp_path / "sel.jsonl"
    args = ["select", "--in", str(scored), "--objective", "max:words", "--out", str(out), "--quiet"]
    for _ in range(2):  # the second run replaces what the first wrote
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    _error(capsys, [*args, "--summary", str(notes)], r"--summary .*notes\.json: already exists \(not made by")
    assert json.loads(notes.read_text()) == {"mine": 1}
    _error(capsys, [*args, "--summary", str(out.with_suffix(".json")), "--record", str(out.with_suffix(".json"))],
           r"--record and --summary are the same file")


# --- generate ---------------------------------------------------------------------------
def test_generate_onto_a_scored_pool_or_a_prompt_file_is_refused(tmp_path, capsys):
    scored = _scored(tmp_path)
    before = scored.read_bytes()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n{"prompt": "Name a fruit."}\n')
    _error(capsys, ["generate", "--prompts", str(prompts), "--out", str(scored)],
           r"--out .*scored\.parquet: already exists \(made by `heirloom score`\); pass --overwrite")
    assert scored.read_bytes() == before
    _error(capsys, ["generate", "--prompts", str(prompts), "--out", str(prompts)], r"is also an input")
    other = tmp_path / "other.jsonl"  # a JSONL that is not a pool: never appended to or trimmed
    other.write_text('{"prompt": "a"}\n{"prompt": "b"}')
    _error(capsys, ["generate", "--prompts", str(prompts), "--out", str(other)],
           r"other\.jsonl: already exists \(not made by this command\)")
    assert other.read_text() == '{"prompt": "a"}\n{"prompt": "b"}'


def test_generate_resumes_and_redoes_its_own_outputs(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n{"prompt": "Name a fruit."}\n')
    for out in (tmp_path / "pool.jsonl", tmp_path / "pool.parquet"):
        args = ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--k", "2",
                "--max-new-tokens", "3", "--out", str(out)]
        first = CliRunner().invoke(cli, args)
        again = CliRunner().invoke(cli, args)  # an own output: resumed (.jsonl) or redone (.parquet)
        assert first.exit_code == 0 and again.exit_code == 0, again.output
        read = (lambda p: pd.read_json(p, lines=True)) if out.suffix == ".jsonl" else pd.read_parquet
        assert len(read(out)) == 4
        fresh = CliRunner().invoke(cli, [*args, "--overwrite"])
        assert fresh.exit_code == 0, fresh.output
        assert len(read(out)) == 4


def test_the_generation_api_never_extends_a_file_it_did_not_make(tmp_path):
    from heirloom.candidates import generate_candidates
    from heirloom.errors import HeirloomError
    from heirloom.generation.base import SamplingParams

    other = tmp_path / "other.jsonl"
    other.write_text('{"prompt": "a"}\n{"prompt": "b"}')  # no trailing newline: must not be trimmed
    prompts = pd.DataFrame({"prompt_id": ["x"], "prompt": ["a"]})
    with pytest.raises(HeirloomError, match=r"other\.jsonl: exists and is not a candidates file"):
        generate_candidates(None, prompts, 1, SamplingParams(), other, teacher="t", chunk=1)
    assert other.read_text() == '{"prompt": "a"}\n{"prompt": "b"}'


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_generate_limit_must_be_positive(tmp_path, limit):
    r = CliRunner().invoke(cli, ["generate", "--prompts", "quickstart", "--limit", limit,
                                 "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2 and "Invalid value for '--limit'" in r.output and r.exception is not None
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_bad_option_value_is_one_line_from_the_command_line(tmp_path, capsys, limit):
    from heirloom.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", "--prompts", "quickstart", "--limit", limit, "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "--limit" in err and "--help" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_the_prompt_api_rejects_a_limit_below_one():
    from heirloom.errors import HeirloomError
    from heirloom.prompts import load_prompts

    for limit in (0, -1):
        with pytest.raises(HeirloomError, match=r"prompt limit"):
            load_prompts("quickstart", limit=limit)
    assert len(load_prompts("quickstart", limit=3)) == 3


def test_a_directory_that_is_not_a_model(tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("hi")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n')
    _error(capsys, ["generate", "--model", str(notes), "--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl")],
           r"notes'?: this directory is not a model")
    assert not (tmp_path / "o.jsonl").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "Hi", "completion": "Hello"}\n')
    _error(capsys, ["train", "--data", str(pairs), "--student", str(notes), "--out", str(tmp_path / "s")],
           r"this directory is not a model")


# --- score, pool, train, profile --------------------------------------------------------
def test_score_in_place_needs_overwrite(tmp_path, capsys):
    pool = _pool(tmp_path / "pool.jsonl")
    before = pool.read_text()
    _error(capsys, ["score", "--in", str(pool), "-m", "words", "--out", str(pool)], r"is also an input")
    assert pool.read_text() == before
    r = CliRunner().invoke(cli, ["score", "--in", str(pool), "-m", "words", "--out", str(pool), "--overwrite",
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "words" in pd.read_json(pool, lines=True).columns


def test_pool_commands_keep_other_files(tmp_path, capsys, shared_data):
    outputs = shared_data / "alpaca_eval_outputs"
    one = sorted(outputs.glob("*.json"))[0]
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"mine": 1}\n')
    _error(capsys, ["pool", "import", str(one), "--out", str(mine)], r"mine\.jsonl: already exists")
    pool = _pool(tmp_path / "pool.jsonl")
    _error(capsys, ["pool", "merge", str(pool), str(pool), "--out", str(pool)], r"is also an input")
    assert mine.read_text() == '{"mine": 1}\n'


@pytest.mark.parametrize("command", ["train", "profile"])
def test_directory_outputs_holding_the_users_files(tmp_path, capsys, command):
    out = tmp_path / "work"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "Hi", "completion": "Hello"}\n')
    argv = (["train", "--data", str(pairs), "--out", str(out)] if command == "train"
            else ["profile", "--suite", "textual", "--out", str(out)])
    _error(capsys, argv, rf"--out .*work: holds files `heirloom {command}` did not make \(thesis\.tex\); .*--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


# --- compare ----------------------------------------------------------------------------
def test_compare_on_a_binary_file(tmp_path, capsys):
    blob = tmp_path / "model.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    _error(capsys, ["compare", str(blob), str(blob)], r"model\.bin: not a text file")
    weird = tmp_path / "weird.json"
    weird.write_text('{"attributes": {"a": 3}}')
    _error(capsys, ["compare", str(weird), str(weird)], r"weird\.json: not a heirloom profile")
