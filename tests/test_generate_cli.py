"""`heirloom generate` and `heirloom models` from the command line."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from heirloom.cli import cli, main


def test_generate_writes_a_pool_in_jsonl_and_parquet(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.csv"
    pd.DataFrame({"question": ["Hi", "Name a fruit.", "2+2?"]}).to_csv(prompts, index=False)
    runner = CliRunner()
    for out in (tmp_path / "pool.jsonl", tmp_path / "pool.parquet"):
        res = runner.invoke(cli, ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts),
                                  "--k", "2", "--max-new-tokens", "4", "--top-p", "0.9", "--out", str(out)])
        assert res.exit_code == 0, res.output
        pool = pd.read_json(out, lines=True) if out.suffix == ".jsonl" else pd.read_parquet(out)
        assert len(pool) == 6
        assert {"prompt_id", "prompt", "teacher", "sample_index", "completion", "num_tokens",
                "finish_reason", "seed"} <= set(pool.columns)
        assert list(pool["prompt"].unique()) == ["Hi", "Name a fruit.", "2+2?"]
        meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
        assert meta["versions"]["torch"] and meta["teachers"][str(tiny_model_dir)]["settings"]["k"] == 2
    assert not (tmp_path / "pool.parquet.partial.jsonl").exists()
    # Same settings, same seeds: the two files hold the same candidates.
    a, b = pd.read_json(tmp_path / "pool.jsonl", lines=True), pd.read_parquet(tmp_path / "pool.parquet")
    assert list(a["completion"]) == list(b["completion"])


@pytest.mark.parametrize("content,suffix,match", [
    ('{"prompt": "a"}\n{"prompt": "b"\n', ".jsonl", r"p\.jsonl:2: invalid JSON"),
    ('{"text2": "a"}\n', ".jsonl", r"no prompt column"),
    ('{"prompt": "a"}\n', ".txt", r"unsupported file type"),
])
def test_bad_prompt_files_get_one_line_errors(tmp_path, capsys, content, suffix, match):
    path = tmp_path / f"p{suffix}"
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        main(["generate", "--prompts", str(path), "--out", str(tmp_path / "o.jsonl")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert pytest.importorskip("re").search(match, err)


def test_models_lists_the_embedded_aliases():
    res = CliRunner().invoke(cli, ["models"])
    assert res.exit_code == 0 and "smollm2-135m (default)" in res.output and "gemma3-270m" in res.output


def test_the_python_api_exposes_every_stage():
    import heirloom

    for name in heirloom.__all__:
        assert getattr(heirloom, name) is not None
    with pytest.raises(AttributeError):
        heirloom.no_such_thing


def test_generate_quiet_prints_no_progress_bar(tmp_path, tiny_model_dir, capfd):
    prompts = tmp_path / "p.csv"
    pd.DataFrame({"question": ["Hi", "2+2?"]}).to_csv(prompts, index=False)
    args = ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--k", "2", "--max-new-tokens", "4"]
    main([*args, "--out", str(tmp_path / "loud.jsonl")])
    assert "candidates" in capfd.readouterr().err  # the bar is there by default, so the check below can fail
    main([*args, "--out", str(tmp_path / "quiet.jsonl"), "--quiet"])
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out.startswith("wrote 4 candidates")
