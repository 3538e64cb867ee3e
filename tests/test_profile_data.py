"""Where profiling data comes from: packaged subsets, explicit paths, the data directory, the hub.

Also the proof that heirloom works outside this repository: a tiny `heirloom run` from a
directory with no ../shared above it and no HEIRLOOM_DATA.
"""

import hashlib
import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from heirloom.cli import main
from heirloom.errors import HeirloomError
from heirloom.profiling import check_data, data
from heirloom.profiling.bbq import data_request as bbq_request
from heirloom.profiling.suites import ProfileConfig
from heirloom.profiling.textual import DOLLY, TextualConfig, load_prompts

PACKAGED = {"dolly200": "dolly200/dolly_eval_eng.jsonl", "rtp_toxic": "rtp/rtp_toxic_test_set.json",
            "crows_pairs": "crows_pairs/crows_pairs_anonymized.csv"}


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv("HEIRLOOM_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is never needed by the tests


def test_packaged_subsets_are_the_shared_files_with_license_and_checksum(shared_data):
    manifest = data.manifest()
    assert set(manifest) == set(PACKAGED)
    for name, rel in PACKAGED.items():
        entry, path = manifest[name], data.packaged_path(name)
        assert entry["file"] == rel and path.read_bytes() == (shared_data / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and entry["bytes"] < 500_000
        assert entry["license"] in (data.PACKAGE_DIR / entry["license_file"]).read_text()
    assert data.PACKAGE_DIR.is_relative_to(Path(__import__("heirloom").__file__).parent)


def test_resolution_order(tmp_path, monkeypatch, no_data_dir):
    (tmp_path / "dd" / "bbq").mkdir(parents=True)
    (tmp_path / "dd" / "bbq" / "Age.jsonl").write_text("{}\n")
    (tmp_path / "other" / "bbq").mkdir(parents=True)
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"inputs": "hi"}\n')
    # small sets: explicit beats packaged; packaged is the default even with a data directory
    assert data.resolve(data.DataRequest("textual", "textual.prompts", str(mine), DOLLY)).kind == "explicit"
    assert data.resolve(data.DataRequest("textual", "textual.prompts", None, DOLLY), tmp_path / "dd").kind == "packaged"
    # larger sets: explicit, then the configured data_dir, then $HEIRLOOM_DATA, then the hub
    assert data.resolve(bbq_request(str(tmp_path / "other" / "bbq")), tmp_path / "dd").location == \
        str(tmp_path / "other" / "bbq")
    assert data.resolve(bbq_request("bbq/Age.jsonl"), tmp_path / "dd").location == str(tmp_path / "dd/bbq/Age.jsonl")
    monkeypatch.setenv("HEIRLOOM_DATA", str(tmp_path / "other"))
    assert data.resolve(bbq_request(None), tmp_path / "dd").location == str(tmp_path / "dd" / "bbq")
    assert data.resolve(bbq_request(None)).location == str(tmp_path / "other" / "bbq")
    monkeypatch.setenv("HEIRLOOM_DATA", str(tmp_path / "nothing-here"))
    hub = data.resolve(bbq_request(None))
    assert (hub.kind, hub.location, hub.hub.subset) == ("hub", "oskarvanderwal/bbq", "All")
    with pytest.raises(HeirloomError, match="bbq.data: ./missing.jsonl: no such file"):
        data.resolve(bbq_request("./missing.jsonl"))
    assert data.resolve(bbq_request("someone/bbq-copy")).kind == "hub"  # not a path: a hub id


def test_missing_data_error_names_the_suite_every_place_tried_and_the_remedy(no_data_dir):
    with pytest.raises(HeirloomError) as e:
        check_data(ProfileConfig(suites=["textual", "bias"]))
    msg = str(e.value)
    assert msg.startswith("bias suite: no BBQ questions for bbq.data; tried ") and "\n" not in msg
    for part in ("data_dir / $HEIRLOOM_DATA not set", "hub oskarvanderwal/bbq (All): offline (HF_HUB_OFFLINE)",
                 "set bbq.data to a file", "--data-dir", "$HEIRLOOM_DATA", "holding bbq"):
        assert part in msg
    with pytest.raises(HeirloomError, match=r"judge suite: .*tried .*/nowhere/alpaca_eval_outputs/annotations_"
                                            r"FuseChat-Gemma-2-9B-Instruct.json \(from data_dir\): not there"):
        check_data(ProfileConfig(suites=["judge"], data_dir="/nowhere"))
    check_data(ProfileConfig(suites=["textual", "toxicity", "crows_pairs"]))  # packaged: nothing else needed


def test_data_dir_resolves_the_larger_sets(shared_data, no_data_dir):
    found = check_data(ProfileConfig(suites=["bias", "judge"], data_dir=str(shared_data)))
    assert [(r.request.option, r.kind) for r in found["bias"]] == [("bbq.data", "data_dir"),
                                                                   ("crows_pairs.data", "packaged")]
    assert found["judge"][0].path == shared_data / "alpaca_eval_outputs" / \
        "annotations_FuseChat-Gemma-2-9B-Instruct.json"
    assert "data_dir" not in ProfileConfig(data_dir=str(shared_data)).model_dump()  # not part of any hash


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(data.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("*.py*"))
    monkeypatch.setattr(data, "PACKAGE_DIR", copy)
    assert len(load_prompts(TextualConfig())) == 100  # the intact copy reads
    target = copy / PACKAGED["dolly200"]
    target.write_bytes(target.read_bytes().replace(b"What", b"Wh4t", 1))
    with pytest.raises(HeirloomError, match=r"dolly_eval_eng.jsonl: checksum mismatch .*reinstall heirloom"):
        load_prompts(TextualConfig())
    with pytest.raises(HeirloomError, match="checksum mismatch"):
        check_data(ProfileConfig(suites=["textual"]))


def test_packaged_defaults_give_the_same_rows_as_the_shared_files(shared_data):
    from heirloom.profiling.crows_pairs import CrowsPairsConfig, load_pairs
    from heirloom.profiling.toxicity import ToxicityConfig, load_rtp

    assert load_prompts(TextualConfig()) == load_prompts(
        TextualConfig(prompts=str(shared_data / PACKAGED["dolly200"])))
    assert load_rtp(ToxicityConfig()) == load_rtp(ToxicityConfig(prompts=str(shared_data / PACKAGED["rtp_toxic"])))
    pd.testing.assert_frame_equal(load_pairs(CrowsPairsConfig()),
                                  load_pairs(CrowsPairsConfig(data=str(shared_data / PACKAGED["crows_pairs"]))))


def test_data_command_lists_sources_sizes_licenses_and_what_is_missing(shared_data, no_data_dir, capsys):
    main(["data"])
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.split()[:1] and line.split()[0] in
             ("textual", "toxicity", "bias", "calibration", "judge")}
    assert out.startswith("data directory: none")
    assert "packaged" in lines["textual.prompts"] and "CC BY-SA 3.0" in lines["textual.prompts"]
    assert "236.3 KB" in lines["textual.prompts"] and "Apache-2.0" in lines["toxicity.prompts"]
    assert "MISSING" in lines["bbq.data"] and "missing: bias suite: no BBQ questions" in out
    main(["data", "--data-dir", str(shared_data)])
    out = capsys.readouterr().out
    assert f"data directory: {shared_data} (from data_dir)" in out
    bbq = next(line for line in out.splitlines() if " bbq.data " in line)
    assert "data dir" in bbq and str(shared_data / "bbq") in bbq and "8.7 MB" in bbq
    assert "missing: bias" not in out and "missing: judge" not in out


def test_no_source_file_reaches_outside_the_package():
    src = Path(__import__("heirloom").__file__).parent
    for f in src.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        assert "shared/data" not in text and "REPO_ROOT" not in text and "parents[" not in text, f


def test_a_tiny_run_works_outside_the_checkout(tmp_path, tiny_model_dir, monkeypatch, no_data_dir):
    """textual + toxicity + CrowS-Pairs from the packaged data, nothing beside the working directory."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert not any((p / "shared").exists() for p in work.parents)
    monkeypatch.chdir(work)
    (work / "run.yaml").write_text(textwrap.dedent(f"""
        name: outside
        prompts: {{source: quickstart, limit: 3}}
        teachers: [{{model: {tiny_model_dir}}}]
        generation: {{k: 2, max_new_tokens: 6}}
        scoring: {{metrics: [length]}}
        arms: [{{name: long, objective: "max:length"}}]
        student: {{model: {tiny_model_dir}, training: {{max_steps: 1, batch_size: 2, max_length: 64}}}}
        profiling:
          suites: [textual, toxicity, crows_pairs]
          textual: {{size: 2, max_new_tokens: 4, metrics: [words]}}
          toxicity: {{size: 2, samples: 2, max_new_tokens: 4}}
          crows_pairs: {{size: 3}}
    """))
    main(["run", "run.yaml", "--run-dir", "out", "--quiet"])
    prof = json.loads((work / "out" / "profiles" / "long" / "profile.json").read_text())
    assert {"textual/words", "toxicity/expected_max_toxicity", "bias/crows_pairs/all/pct_stereotype"} <= \
        set(prof["attributes"])
    assert not any(n.startswith("bias/bbq") for n in prof["attributes"])
    assert [d["kind"] for s in ("textual", "toxicity", "bias") for d in prof["config"]["data"][s]] == ["packaged"] * 3
    assert len(prof["attributes"]["bias/crows_pairs/all/pct_stereotype"]["items"]) == 3


def test_profile_command_fails_on_missing_data_before_loading_a_model(tmp_path, no_data_dir, capsys, monkeypatch):
    import heirloom.generation as generation

    def no_model(*a, **kw):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(generation, "make_backend", no_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["profile", "--suite", "textual,bbq", "--data-dir", str(tmp_path / "empty"), "--out",
              str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: bias suite: no BBQ questions for bbq.data") and str(tmp_path / "empty" / "bbq") in err
