"""Pools: prompt ids, validation, importing real AlpacaEval outputs, merging, the `pool` CLI."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from heirloom.cli import cli, main
from heirloom.errors import HeirloomError
from heirloom.pools import POOL_COLUMNS, coverage, import_outputs, merge_pools, prompt_id, validate_pool
from heirloom.tables import read_table, write_table

SHARED = Path(os.environ["HEIRLOOM_DATA"])  # set by conftest.py
ALPACA = SHARED / "alpaca_eval_outputs"
GENERATORS = ["Conifer-7B-DPO", "Ein-70B-v0.1", "FuseChat-Gemma-2-9B-Instruct",
              "FuseChat-Llama-3.1-8B-Instruct", "FuseChat-Llama-3.2-1B-Instruct"]
needs_shared = pytest.mark.skipif(not ALPACA.exists(), reason="shared AlpacaEval outputs not present")


def live_pool(prompts=("Say hi.", "Name a colour."), k=2, teacher="smol"):
    rows = [{"prompt_id": prompt_id(p), "prompt": p, "teacher": teacher, "sample_index": j,
             "completion": f"{p} answer {j}", "num_tokens": 3 + j, "finish_reason": "stop", "seed": j,
             "source": "live"} for p in prompts for j in range(k)]
    return pd.DataFrame(rows)


def alpaca_file(tmp_path, name, items):
    path = tmp_path / name
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_prompt_id_is_hash_of_normalized_text():
    expected = "p" + hashlib.sha256("Say hi to Bob.".encode()).hexdigest()[:12]
    assert prompt_id("Say hi to Bob.") == expected
    assert prompt_id("  Say hi\n\tto   Bob. ") == expected  # whitespace runs collapse, ends strip
    assert prompt_id("say hi to bob.") != expected  # case is kept
    assert prompt_id("Cafe\u0301") == prompt_id("Caf\u00e9")  # NFC


def test_validate_pool_errors_name_source_and_column():
    pool = live_pool()
    assert list(validate_pool(pool, "p.jsonl").columns) == list(POOL_COLUMNS)
    with pytest.raises(HeirloomError, match=r"p.jsonl: missing column\(s\) completion"):
        validate_pool(pool.drop(columns="completion"), "p.jsonl")
    with pytest.raises(HeirloomError, match=r"p.jsonl: column\(s\) prompt_id/teacher/sample_index not unique"):
        validate_pool(pd.concat([pool, pool.iloc[:1]]), "p.jsonl")
    with pytest.raises(HeirloomError, match=r"p.jsonl: row 1: column 'sample_index' must be an integer"):
        validate_pool(pool.assign(sample_index=[0, 1.5, 0, 1]), "p.jsonl")
    with pytest.raises(HeirloomError, match=r"p.jsonl: row 2: column 'completion' must be text, got a missing value"):
        validate_pool(pool.astype({"completion": object}).assign(completion=["a", "b", None, "d"]), "p.jsonl")
    with pytest.raises(HeirloomError, match=r"p.jsonl: column 'prompt' differs between rows of prompt_id"):
        validate_pool(pool.assign(prompt=["x", "y", "Name a colour.", "Name a colour."]), "p.jsonl")
    with pytest.raises(HeirloomError, match=r"p.jsonl: empty pool"):
        validate_pool(pool.iloc[:0], "p.jsonl")


def test_jsonl_round_trip_keeps_undefined_numbers_nan(tmp_path):
    pool = live_pool().assign(seed=np.nan, num_tokens=[1.0, np.nan, 3.0, 4.0])
    write_table(pool, tmp_path / "p.jsonl")
    back = validate_pool(read_table(tmp_path / "p.jsonl"), "p.jsonl")
    assert back["seed"].dtype == np.float64 and back["seed"].isna().all()
    assert back["num_tokens"].isna().tolist() == [False, True, False, False]


@needs_shared
def test_import_real_alpaca_eval_outputs():
    files = sorted(ALPACA.glob("[!a]*.json"))
    pool = import_outputs(files)
    assert len(pool) == 805 * 5 and pool["prompt_id"].nunique() == 805
    assert sorted(pool["teacher"].unique()) == GENERATORS
    assert (pool.groupby("prompt_id")["teacher"].nunique() == 5).all()  # every prompt matched in every file
    assert (pool["sample_index"] == 0).all()
    assert pool["num_tokens"].isna().all() and pool["seed"].isna().all()
    assert (pool["finish_reason"] == "unknown").all()
    assert coverage(pool).complete
    for path in files[:2]:  # rows are the file's items, ids are the hash of the instruction
        raw = json.loads(path.read_text())
        mine = pool[pool["source"] == str(path)]
        assert mine["completion"].tolist() == [r["output"] for r in raw]
        assert mine["prompt_id"].tolist() == [prompt_id(r["instruction"]) for r in raw]
        assert mine["teacher"].tolist() == [r["generator"] for r in raw]
        assert mine["dataset"].tolist() == [r["dataset"] for r in raw]  # metadata rides along


@needs_shared
def test_import_rejects_annotations_file():
    with pytest.raises(HeirloomError, match=r"annotations_FuseChat.*looks like an AlpacaEval annotations file"):
        import_outputs([ALPACA / "annotations_FuseChat-Gemma-2-9B-Instruct.json"])


def test_import_numbers_samples_per_teacher_and_matches_prompts(tmp_path):
    a = alpaca_file(tmp_path, "a.json", [
        {"instruction": "Say  hi.", "output": "hi", "generator": "g1"},
        {"instruction": "New one", "output": "x", "generator": "g1"},
        {"instruction": "Translate", "input": "chat", "output": "cat", "generator": "g2"}])
    b = alpaca_file(tmp_path, "b.json", [{"instruction": "Say hi.", "output": "hello", "generator": "g1"},
                                         {"instruction": "Say hi.", "output": "yo"}])  # no generator: file stem
    live = live_pool(("Say hi.",)).assign(prompt_id="live-0")
    pool = import_outputs([a, b], prompts=live)
    hi = pool[pool["prompt"] == "Say hi."]
    assert set(hi["prompt_id"]) == {"live-0"}  # matched to the live id by normalized text, live text kept
    assert hi[["teacher", "sample_index", "completion"]].values.tolist() == [
        ["g1", 0, "hi"], ["g1", 1, "hello"], ["b", 0, "yo"]]
    assert pool.loc[pool["completion"] == "x", "prompt_id"].item() == prompt_id("New one")
    assert pool.loc[pool["completion"] == "cat", "prompt"].item() == "Translate\n\nchat"
    assert pool["source"].tolist() == [str(a)] * 3 + [str(b)] * 2


def test_import_errors(tmp_path):
    bad = alpaca_file(tmp_path, "bad.json", [{"instruction": "q", "output": None, "generator": "g"}])
    with pytest.raises(HeirloomError, match=r"bad.json: item 0: column 'output' must be text, got a missing value"):
        import_outputs([bad])
    nocol = alpaca_file(tmp_path, "nocol.json", [{"instruction": "q", "generator": "g"}])
    with pytest.raises(HeirloomError, match=r"nocol.json: missing column\(s\) output"):
        import_outputs([nocol])


def test_merge_live_and_offline_reports_missing_prompts(tmp_path):
    live = live_pool(("Say hi.", "Name a colour."))
    off = import_outputs([alpaca_file(tmp_path, "o.json", [
        {"instruction": "Say hi.", "output": "hey", "generator": "big"},
        {"instruction": "Only offline", "output": "z", "generator": "big"}])])
    pool, report = merge_pools([live, off], names=["live.jsonl", "o.json"])
    assert len(pool) == len(live) + len(off)  # nothing dropped
    assert pool.groupby("prompt_id")["teacher"].agg(set)[prompt_id("Say hi.")] == {"smol", "big"}
    assert report.n_prompts == 3 and not report.complete
    assert report.missing == {"live": [prompt_id("Only offline")],
                              str(tmp_path / "o.json"): [prompt_id("Name a colour.")]}
    assert any("lacks 1 of 3 prompts" in line for line in report.lines())


def test_merge_duplicates_and_conflicts():
    a = live_pool(("Say hi.",))
    with pytest.raises(HeirloomError, match=r"not unique.*\(p\w+, smol, 0\)"):
        merge_pools([a, a], names=["a", "b"])
    pool, _ = merge_pools([a, a.assign(source="run2")], renumber=True)
    assert pool["sample_index"].tolist() == [0, 1, 2, 3]
    spaced = a.assign(prompt="Say   hi. ")  # same normalized text: unified to the first text
    assert set(merge_pools([a, spaced.assign(teacher="t2")])[0]["prompt"]) == {"Say hi."}
    with pytest.raises(HeirloomError, match=r"prompt_id p\w+ has different prompt texts in a, b"):
        merge_pools([a.assign(source="a"), a.assign(source="b", prompt="Other", teacher="t2")])
    no_source = a.drop(columns="source")
    assert set(merge_pools([no_source], names=["x.jsonl"])[0]["source"]) == {"x.jsonl"}


def test_pool_cli_import_and_merge(tmp_path):
    off = alpaca_file(tmp_path, "o.json", [{"instruction": "Say hi.", "output": "hey", "generator": "big"},
                                           {"instruction": "Only offline", "output": "z", "generator": "big"}])
    live = tmp_path / "live.jsonl"
    write_table(live_pool(), live)
    r = CliRunner().invoke(cli, ["pool", "import", str(off), "--out", str(tmp_path / "off.parquet"),
                                 "--prompts", str(live)])
    assert r.exit_code == 0, r.output
    assert "1 not in prompts" in r.output and "1 prompts not imported" in r.output
    meta = json.loads((tmp_path / "off.parquet.meta.json").read_text())
    assert meta["stage"] == "pool import" and meta["teachers"] == {"big": 2} and "versions" in meta
    r = CliRunner().invoke(cli, ["pool", "merge", str(live), str(tmp_path / "off.parquet"),
                                 "--out", str(tmp_path / "m.jsonl")])
    assert r.exit_code == 0, r.output
    merged = read_table(tmp_path / "m.jsonl")
    assert len(merged) == 6 and set(merged["teacher"]) == {"smol", "big"}
    assert "warning: live: lacks 1 of 3 prompts" in r.output
    assert json.loads((tmp_path / "m.jsonl.meta.json").read_text())["coverage"]["n_prompts"] == 3


def test_pool_cli_errors_are_one_line(tmp_path, capsys):
    ann = alpaca_file(tmp_path, "ann.json", [{"instruction": "q", "output_1": "a", "output_2": "b"}])
    with pytest.raises(SystemExit) as e:
        main(["pool", "import", str(ann), "--out", str(tmp_path / "x.jsonl")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "annotations file" in err and err.count("\n") == 1
