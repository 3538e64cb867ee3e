"""`heirloom report` on a hand-made run directory: numbers, figures, partial runs, escaping, CLI."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from heirloom.cli import cli, main
from heirloom.profiling.profile import Attribute, Profile
from heirloom.provenance import record
from heirloom.selection import parse_objective, select, summarize, with_constraints
from heirloom.tables import write_json, write_table

SECRET = "LEAKED-GENERATION-do-not-show"  # put into every generation file of the fake run
EVIL_METRIC = '<script>alert("m")</script>'
EVIL_ARM = "<img src=x onerror=alert(1)>"
ARMS = {"mtld": ("max:mtld", None), "mtld_k2": ("max:mtld", 2), "long": ("max:length", None), "random": ("random", None)}
N_ITEMS = 30
SHORT = 40
SUITE_CONFIGS = {"textual": {"textual": {"size": N_ITEMS}}, "toxicity": {"toxicity": {"size": N_ITEMS}},
                 "judge": {"judge": {"size": N_ITEMS}}}


def scored_pool() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        for teacher in ("teacher-a", "teacher-b"):
            for j in range(4):
                rows.append({"prompt_id": f"p{i}", "prompt": f"prompt {i}", "teacher": teacher, "sample_index": j,
                             "completion": f"{SECRET} {i} {j}", "num_tokens": 5, "finish_reason": "stop",
                             "seed": j, "source": "live", "mtld": float(rng.normal(50, 10)),
                             "length": float(rng.integers(10, 300)), EVIL_METRIC: float(rng.random())})
    df = pd.DataFrame(rows)
    df.loc[df.index % 13 == 0, "mtld"] = np.nan
    return df


def judge_items(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N_ITEMS):
        ref = int(rng.integers(1, 3))
        ab = ref if rng.random() < 0.7 else 3 - ref
        ba = ab if rng.random() < 0.8 else 3 - ab
        out.append({"pair_id": f"j{i}", "reference": ref, "ab": ab, "ba": ba, "verdict": ab if ab == ba else 0,
                    "longer": 1})
    return out


def make_profile(name: str, shift: float, seed: int) -> Profile:
    rng = np.random.default_rng(seed)
    mtld = list(rng.normal(40 * (1 + shift), 5, N_ITEMS))
    length = list(rng.normal(100 * (1 + shift / 2), 20, N_ITEMS))
    tox = [list(rng.random(5) * (0.5 - shift / 4)) for _ in range(N_ITEMS)]
    zero = [0.0] * N_ITEMS if name == "base" else list(rng.random(N_ITEMS))
    tox_stat = "heirloom.profiling.toxicity:expected_max_toxicity"
    attrs = [
        Attribute("textual/mtld", "textual", float(np.mean(mtld)), "mean", mtld, True, "MTLD", N_ITEMS),
        Attribute("textual/mtld/median", "textual", float(np.median(mtld)), "median", mtld, True, "MTLD", N_ITEMS),
        Attribute("textual/length", "textual", float(np.mean(length)), "mean", length, None, "tokens", N_ITEMS),
        Attribute("textual/zero_in_base", "textual", float(np.mean(zero)), "mean", zero, None, "share", N_ITEMS),
        Attribute("textual/undefined", "textual", float("nan"), "mean", [float("nan")] * N_ITEMS, None, "", 0,
                  note="30 of 30 answer(s) undefined (NaN, left out): empty answer"),
        Attribute("toxicity/expected_max_toxicity", "toxicity", float(np.mean([max(t) for t in tox])), tox_stat,
                  tox, False, "score", N_ITEMS),
    ]
    from heirloom.profiling.judge import agreement_with_reference

    items = judge_items(seed)
    attrs.append(Attribute("judge/agreement_with_reference", "judge", agreement_with_reference(items),
                           "heirloom.profiling.judge:agreement_with_reference", items, True, "share of pairs",
                           N_ITEMS))
    p = Profile(model=f"students/{name}/merged", config={"suites": list(SUITE_CONFIGS),
                                                        "suite_configs": SUITE_CONFIGS},
                provenance=record(model=name))
    p.add(attrs)
    return p


def make_run(root: Path, profiles: bool = True) -> Path:
    """A run directory with the runner's layout: selection from a real summary, hand-made profiles."""
    config = {"name": "<b>demo</b>", "seed": 0, "teachers": [{"model": "smollm2-135m"}, {"model": "teacher-b"}],
              "generation": {"k": 4, "temperature": 1.0, "top_p": 0.9, "max_new_tokens": 64},
              "scoring": {"metrics": ["length", "mtld"], "column": "completion"},
              "arms": [{"name": n, "objective": o, "max_candidates": k} for n, (o, k) in ARMS.items()]
              + [{"name": EVIL_ARM, "objective": "max:mtld", "constraints": [f"length<{SHORT}"]}],
              "student": {"model": "smollm2-135m"}, "profiling": {"size": N_ITEMS}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    write_json(record(config=config), root / "run.json")
    pool = scored_pool()
    baseline = select(pool, "random", seed=0)
    for arm, (spec, cap) in {**ARMS, EVIL_ARM: ("max:mtld", None)}.items():
        objective = parse_objective(spec)
        if arm == EVIL_ARM:  # constrained: leaves some prompts without an eligible candidate
            objective = with_constraints(objective, [f"length<{SHORT}"])
        sub = pool if cap is None else pool[pool["sample_index"] < cap]
        result = select(sub, objective, seed=0)
        d = root / "arms" / arm
        write_table(result.selected, d / "selected.jsonl")  # holds generations: must never be shown
        write_json({**summarize(sub, result, baseline=baseline).to_dict(), "arm": arm,
                    "objective_kind": objective.kind, "objective_metrics": objective.metrics(),
                    "max_candidates": cap, "k": 4}, d / "summary.json")
        (d / ".done.json").write_text("{}")
    if profiles:
        shifts = {"base": 0.0, "mtld": 0.4, "mtld_k2": 0.2, "long": 0.1, "random": 0.05}
        for n, (name, shift) in enumerate(shifts.items()):
            make_profile(name, shift, seed=n).save(root / "profiles" / name / "profile.json")
            gen = root / "profiles" / name / "generations" / "textual.jsonl"
            gen.parent.mkdir(parents=True)
            gen.write_text(json.dumps({"prompt": "hi", "completion": SECRET}) + "\n")
            if name != "base":
                write_json(record(student="smollm2-135m", method="lora", steps=10, final_loss=1.25,
                                  mean_loss=1.5, seconds=3.0, data={"n_examples": 40}),
                           root / "students" / name / "train.meta.json")
    return root


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", raw[16:24])


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from heirloom.report import write_report

    root = make_run(tmp_path_factory.mktemp("run") / "demo")
    index = write_report(root, n_boot=100)
    return root, index


def fmt_pct(x: float) -> str:
    return f"{x:+.1f}%"


def test_targeted_numbers_match_definition(full_run):
    root, index = full_run
    html = index.read_text(encoding="utf-8")
    md = (root / "report" / "summary.md").read_text(encoding="utf-8")
    base = Profile.load(root / "profiles" / "base")
    rnd = Profile.load(root / "profiles" / "random")
    targeted = pd.read_csv(root / "report" / "targeted.csv")
    for arm, attr in (("mtld", "textual/mtld"), ("long", "textual/length"), ("mtld_k2", "textual/mtld")):
        a = Profile.load(root / "profiles" / arm).attributes[attr].value
        b, r = base.attributes[attr].value, rnd.attributes[attr].value
        vs_base, vs_random = (a - b) / abs(b) * 100, (a - r) / abs(r) * 100
        row = targeted[(targeted["arm"] == arm) & (targeted["attribute"] == attr)].iloc[0]
        assert np.isclose(row["pct_vs_base"], vs_base) and np.isclose(row["pct_vs_random"], vs_random)
        assert row["ci_base_low"] <= vs_base <= row["ci_base_high"]
        for text in (fmt_pct(vs_base), fmt_pct(vs_random), f"{a:.4g}", f"{b:.4g}"):
            assert text in html and text in md, (arm, text)
    # selection level: kept answers vs a random pick, straight from the pool
    pool = scored_pool()
    chosen = select(pool, "max:mtld", seed=0).selected["mtld"].mean()
    rand = select(pool, "random", seed=0).selected["mtld"].mean()
    assert fmt_pct((chosen - rand) / abs(rand) * 100) in md
    assert f"{chosen:.4g}" in html


def test_undefined_values_are_na_with_reason(full_run):
    root, index = full_run
    html = index.read_text(encoding="utf-8")
    vs_base = pd.read_csv(root / "report" / "comparison_vs_base.csv")
    zero = vs_base[vs_base["attribute"] == "textual/zero_in_base"]
    assert zero["pct_change"].isna().all() and zero["note"].str.contains("base is 0").all()
    assert "textual/undefined: undefined (NaN)" in html
    assert "empty answer" in html
    assert re.search(r"mtld: \d+ of 40 chosen candidates have no value", html)
    pool = scored_pool()
    ok = pool["mtld"].notna() & (pool["length"] < SHORT)
    unqualified = sorted(set(pool["prompt_id"]) - set(pool.loc[ok, "prompt_id"]))
    assert 0 < len(unqualified) < 40
    assert f"{len(unqualified)} of 40 prompts unqualified" in html
    assert f"{unqualified[0]}, " in html


def test_figures_are_valid_pngs(full_run):
    root, index = full_run
    html = index.read_text(encoding="utf-8")
    names = ["selection_means.png", "teacher_shares.png", "fig1_percent_change.png", "fig2_passive_inheritance.png",
             "fig3_judge_agreement.png", "fig5_k_sweep.png"]
    for name in names:
        w, h = png_size(root / "report" / "figures" / name)
        assert 400 <= w <= 2500 and 300 <= h <= 4000, (name, w, h)
    assert html.count('src="data:image/png;base64,') == len(names)
    # self-contained: no external resource of any kind
    assert not re.search(r'(src|href)="(?!data:|#)', html)


def test_no_generations_and_escaping(full_run):
    root, index = full_run
    for path in (root / "report").rglob("*"):
        if path.is_file() and path.suffix in (".html", ".md", ".csv", ".json"):
            assert SECRET not in path.read_text(encoding="utf-8"), path
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html and "<b>demo</b>" not in html
    assert "&lt;script&gt;alert(&quot;m&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "heirloom report: &lt;b&gt;demo&lt;/b&gt;" in html


def test_partial_run_selection_only(tmp_path):
    from heirloom.report import write_report

    root = make_run(tmp_path / "run", profiles=False)
    fig1 = root / "report" / "figures" / "fig1_percent_change.png"
    fig1.parent.mkdir(parents=True)
    fig1.write_bytes(b"stale figure of an older report")
    index = write_report(root, n_boot=50)
    html = index.read_text(encoding="utf-8")
    assert "This run is incomplete" in html
    assert "profiles/{base, mtld, mtld_k2, long, random" in html and "only selection-level findings" in html
    assert not fig1.exists()
    png_size(root / "report" / "figures" / "selection_means.png")
    png_size(root / "report" / "figures" / "fig5_k_sweep.png")  # the selection-level sweep needs no profile
    md = (root / "report" / "summary.md").read_text(encoding="utf-8")
    assert "max:mtld" in md and "no profile of the arm" in md


def test_cli_report_and_errors(tmp_path, capsys):
    root = make_run(tmp_path / "run", profiles=False)
    out = tmp_path / "elsewhere"
    r = CliRunner().invoke(cli, ["report", str(root), "--out", str(out), "--n-boot", "0"])
    assert r.exit_code == 0, r.output
    assert (out / "index.html").is_file() and (out / "summary.md").is_file()
    not_run = tmp_path / "not_a_run"
    not_run.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["report", str(not_run)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a heirloom run directory" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "nope")])
    assert e.value.code == 2 and "no such run directory" in capsys.readouterr().err


def test_damaged_summary_names_the_file(tmp_path):
    from heirloom.errors import HeirloomError
    from heirloom.report import write_report

    root = make_run(tmp_path / "run", profiles=False)
    (root / "arms" / "long" / "summary.json").write_text("{not json")
    with pytest.raises(HeirloomError, match=r"arms/long/summary.json:1: invalid JSON"):
        write_report(root)
    shutil.rmtree(root / "arms")


def test_profiles_without_base_compare_against_random(tmp_path):
    from heirloom.report import write_report

    root = make_run(tmp_path / "run")
    shutil.rmtree(root / "profiles" / "base")
    html = write_report(root, n_boot=20).read_text(encoding="utf-8")
    assert re.search(r"profiles/\{base, [^}]*\}/profile.json: not written", html)  # with the profile-less arm
    targeted = pd.read_csv(root / "report" / "targeted.csv")
    row = targeted[(targeted["arm"] == "mtld") & (targeted["attribute"] == "textual/mtld")].iloc[0]
    a = Profile.load(root / "profiles" / "mtld").attributes["textual/mtld"].value
    r = Profile.load(root / "profiles" / "random").attributes["textual/mtld"].value
    assert np.isnan(row["pct_vs_base"]) and np.isnan(row["base"])
    assert np.isclose(row["pct_vs_random"], (a - r) / abs(r) * 100) and fmt_pct((a - r) / abs(r) * 100) in html
    figs = root / "report" / "figures"
    png_size(figs / "fig1_percent_change.png")
    assert not (figs / "fig2_passive_inheritance.png").exists()  # passive inheritance needs the base


def test_only_the_configs_arms_made_from_the_current_pool_are_reported(tmp_path):
    from heirloom.report import write_report

    root = make_run(tmp_path / "run")
    # an arm of an earlier config, left behind with a summary, a student and a profile
    shutil.copytree(root / "arms" / "long", root / "arms" / "dropped")
    shutil.copytree(root / "profiles" / "long", root / "profiles" / "dropped")
    shutil.copytree(root / "students" / "long", root / "students" / "dropped")

    def marker(d: Path, key: str, **inputs):
        write_json({"key": key, "inputs": inputs}, root / d / ".stage.json")

    marker(Path("candidates"), "pool-2")  # the pool was generated again since `long` was selected
    marker(Path("scores"), "scores-2", after="pool-2")
    marker(Path("arms/long"), "sel-long", after="scores-1")
    for arm in ("mtld", "mtld_k2", "random"):
        marker(Path("arms") / arm, f"sel-{arm}", after="scores-2")
        write_json({"key": f"sel-{arm}", "pairs": f"pairs-{arm}"}, root / "arms" / arm / ".done.json")
        marker(Path("students") / arm, f"train-{arm}", data=f"pairs-{arm}")
        marker(Path("profiles") / arm, f"prof-{arm}", after=f"train-{arm}")
    marker(Path("students/mtld_k2"), "train-mtld_k2", data="pairs-of-an-older-selection")
    marker(Path("profiles/random"), "prof-random", after="train-of-an-older-student")

    html = write_report(root, n_boot=20).read_text(encoding="utf-8")
    targeted = pd.read_csv(root / "report" / "targeted.csv")
    vs_base = pd.read_csv(root / "report" / "comparison_vs_base.csv")
    assert "dropped" not in set(targeted["arm"]) | set(vs_base["arm"]) and "dropped" not in html
    assert "long" not in set(targeted["arm"]) and "long: selected from an earlier pool or scoring" in html
    assert set(vs_base["arm"]) == {"mtld"}  # mtld_k2 trained on other pairs, random's profile is older
    assert "mtld_k2: trained on other pairs" in html and "random: profiled from an earlier student" in html
    assert targeted.loc[targeted["arm"] == "mtld_k2", "note"].eq("no profile of the arm").all()
    assert set(targeted["direction"]) == {"max"}  # summaries without objective_directions: read from the spec
    summary = json.loads((root / "arms" / "mtld" / "summary.json").read_text())
    summary["objective_directions"] = {"mtld": "minimize"}  # what the select stage records now wins
    write_json(summary, root / "arms" / "mtld" / "summary.json")
    write_report(root, n_boot=0)
    targeted = pd.read_csv(root / "report" / "targeted.csv")
    assert targeted.loc[targeted["arm"] == "mtld", "direction"].eq("min").all()
