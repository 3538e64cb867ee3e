"""score_table and the `score` / `metrics` commands on real outputs."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from lexicalrichness import LexicalRichness

from heirloom.cli import cli, main
from heirloom.errors import HeirloomError
from heirloom.metrics import get_metric
from heirloom.scoring import score_table, scoring_record
from heirloom.tables import read_table, write_table

DATA = Path(os.environ["HEIRLOOM_DATA"])  # set by conftest.py
TEXTUAL = "words,characters,sentences,mtld,ttr,mattr,hdd,flesch_reading_ease,gunning_fog,rix,toxicity"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def pool():
    rows = json.loads((DATA / "alpaca_eval_outputs" / "Ein-70B-v0.1.json").read_text())[:120]
    df = pd.DataFrame({"prompt_id": range(len(rows)), "prompt": [r["instruction"] for r in rows],
                       "completion": [r["output"] for r in rows]})
    df.loc[3, "completion"] = ""
    df.loc[4, "completion"] = None
    df.loc[5, "completion"] = "Too short."
    return df


def test_score_table_adds_float_columns_reasons_and_provenance(pool):
    out = score_table(pool, TEXTUAL, progress=False)
    names = TEXTUAL.split(",")
    expected = list(pool.columns)
    for n in names:
        expected += [n, n + "_nan_reason"] if out[n].isna().any() else [n]
    assert list(out.columns) == expected
    assert "characters_nan_reason" in out and out["characters"].isna().sum() == 1  # only the None row
    assert len(out) == len(pool) and out["prompt_id"].tolist() == pool["prompt_id"].tolist()
    for n in names:
        assert out[n].dtype == np.float64
        assert (out[n].isna() == out.get(n + "_nan_reason", pd.Series([None] * len(out))).notna()).all()
    assert out.loc[4, "words_nan_reason"] == "no text (missing value)"
    assert out.loc[3, "words"] == 0 and "words_nan_reason" in out  # empty text has 0 words, defined
    assert out.loc[3, "mtld_nan_reason"] == "no words" and out.loc[3, "flesch_reading_ease_nan_reason"] == "no words"
    assert "min_words=10" in out.loc[5, "mtld_nan_reason"]
    i = 10
    assert out.loc[i, "mtld"] == pytest.approx(LexicalRichness(pool.loc[i, "completion"]).mtld(0.72), abs=1e-9)
    assert out.loc[i, "rix"] == get_metric("rix").score([pool.loc[i, "completion"]])[0]
    record = scoring_record(out)
    assert record["text_column"] == "completion" and record["rows"] == len(pool)
    mtld = next(m for m in record["metrics"] if m["name"] == "mtld")
    assert mtld["version"] == "1" and mtld["options"] == {"threshold": 0.72, "min_words": 10}
    assert mtld["nan"] == out["mtld"].isna().sum() and sum(mtld["reasons"].values()) == mtld["nan"]
    tox = next(m for m in record["metrics"] if m["name"] == "toxicity")
    assert tox["scorer"].startswith("profanity-check@") and tox["options"]["attribute"] == "profanity"


def test_score_table_errors(pool):
    with pytest.raises(HeirloomError, match=r"pool.jsonl: no column 'text' to score \(has: prompt_id"):
        score_table(pool, "words", column="text", source="pool.jsonl")
    with pytest.raises(HeirloomError, match=r"column 'prompt_id' row 0: expected text, got int"):
        score_table(pool, "words", column="prompt_id")
    with pytest.raises(HeirloomError, match="asked for twice"):
        score_table(pool, "mtld,mtld:min_words=1")
    both = score_table(pool, "mtld,mtld:min_words=1:column=mtld_all", progress=False)
    assert list(both.columns)[-4:] == ["mtld", "mtld_nan_reason", "mtld_all", "mtld_all_nan_reason"]
    assert both["mtld_all"].notna().sum() == both["mtld"].notna().sum() + 1  # "Too short." counts now


def test_rescoring_replaces_columns_and_drops_stale_reasons(pool):
    once = score_table(pool.iloc[:6], "mtld", progress=False)
    assert "mtld_nan_reason" in once
    fixed = once.assign(completion=["word " * 20] * 6)
    again = score_table(fixed, "mtld", progress=False)
    assert "mtld_nan_reason" not in again and again["mtld"].notna().all()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".json"])
def test_cli_score_any_format_with_meta(tmp_path, pool, suffix):
    src = write_table(pool, tmp_path / f"pool{suffix}")
    out = tmp_path / f"scored{suffix}"
    result = CliRunner().invoke(cli, ["score", "--in", str(src), "-m", "words,mtld", "-m", "rix",
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    scored = read_table(out)
    assert len(scored) == len(pool)
    expected = score_table(pool, "mtld", progress=False)["mtld"]
    np.testing.assert_allclose(pd.to_numeric(scored["mtld"]).to_numpy(dtype=float), expected.to_numpy(), rtol=1e-12)
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["stage"] == "score" and meta["input"] == str(src) and meta["text_column"] == "completion"
    assert [m["spec"] for m in meta["metrics"]] == ["words", "mtld", "rix"]
    assert "lexicalrichness" in meta["versions"]
    assert "mtld: mean" in result.output


def test_cli_score_other_column_and_errors(tmp_path, pool, capsys):
    src = write_table(pool, tmp_path / "pool.jsonl")
    out = tmp_path / "scored.jsonl"
    assert CliRunner().invoke(cli, ["score", "--in", str(src), "-m", "words", "--column", "prompt",
                                    "--out", str(out), "--no-progress"]).exit_code == 0
    assert read_table(out)["words"].iloc[0] == get_metric("words").score([pool["prompt"].iloc[0]])[0]
    for args, message in [
        (["-m", "mtdl"], "error: unknown metric 'mtdl'; did you mean 'mtld'?"),
        (["-m", "words", "--column", "answer"], f"error: {src}: no column 'answer' to score"),
        (["-m", "mtld:min_wrds=3"], "error: metric 'mtld': option 'min_wrds'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["score", "--in", str(src), "--out", str(out), "--no-progress", *args])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    with pytest.raises(SystemExit):
        main(["score", "--in", str(tmp_path / "nope.jsonl"), "--out", str(out), "-m", "words"])
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_cli_metrics_lists_and_describes():
    result = CliRunner().invoke(cli, ["metrics"])
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.startswith("mtld "))
    assert "higher" in line and "words" in line and "lexical diversity" in line
    assert next(l for l in result.output.splitlines() if l.startswith("toxicity ")).split()[1] == "lower"
    detail = CliRunner().invoke(cli, ["metrics", "toxicity"])
    assert "options of backend=perspective" in detail.output and "qps=1.0" in detail.output
