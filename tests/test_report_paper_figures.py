"""The paper's Figures 2-5 from one run whose arms are restricted to teachers (issue 11).

A hand-made run directory shaped like examples/paper_experiments.yaml: six teachers (five
imported with one answer per prompt, one live with four samples), a passive arm per teacher
(objective random restricted to it), single-source arms on the live teacher (with a k=2 copy),
multi-source arms over the whole pool and the whole pool's random arm. Selections are made by
the runner's own `select_pool` (so summary.json is what a run writes); profiles are synthetic.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from heirloom.profiling.judge import agreement_with_reference
from heirloom.profiling.profile import Attribute, Profile
from heirloom.provenance import record
from heirloom.runs.stages import select_pool
from heirloom.selection import parse_objective, select
from heirloom.tables import write_json

LIVE = "smollm2-135m"
IMPORTED = ["Conifer-7B-DPO", "Ein-70B-v0.1", "FuseChat-Gemma-2-9B-Instruct", "FuseChat-Llama-3.1-8B-Instruct",
            "FuseChat-Llama-3.2-1B-Instruct"]
TEACHERS = IMPORTED + [LIVE]
N_PROMPTS, N_ITEMS = 40, 24
ARMS = ([(f"passive.{t}", "random", [t], None) for t in TEACHERS]
        + [("single.max_length", "max:length", [LIVE], None), ("single.max_mtld", "max:mtld", [LIVE], None),
           ("single.max_length.k2", "max:length", [LIVE], 2), ("single.max_mtld.k2", "max:mtld", [LIVE], 2),
           ("multi.max_length", "max:length", None, None), ("multi.max_mtld", "max:mtld", None, None),
           ("multi.min_toxicity", "min:toxicity", None, None), ("multi.random", "random", None, None)])
TEXTUAL = ["length", "words", "characters", "sentences", "mtld", "ttr", "mattr", "hdd", "flesch_reading_ease",
           "flesch_kincaid_grade", "gunning_fog", "ari", "coleman_liau", "smog", "lix", "rix", "truncated"]
GROUPS = ["Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance", "Race_ethnicity",
          "Religion", "SES", "Sexual_orientation"]
BIAS = ([f"crows_pairs/{g}/pct_stereotype" for g in ["all", "stereo", "antistereo"] + GROUPS]
        + [f"bbq/{g}/{s}" for g in ["all"] + GROUPS for s in ("ambiguous_bias", "disambiguated_bias", "accuracy",
                                                              "accuracy_ambiguous", "accuracy_disambiguated")])


def scored_pool() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(N_PROMPTS):
        for t in TEACHERS:
            for j in range(4 if t == LIVE else 1):
                rows.append({"prompt_id": f"p{i}", "prompt": f"prompt {i}", "teacher": t, "sample_index": j,
                             "completion": f"answer {i} {j}", "num_tokens": 5, "finish_reason": "stop", "seed": j,
                             "source": "live" if t == LIVE else "imported", "mtld": float(rng.normal(50, 10)),
                             "length": float(rng.integers(10, 300)), "toxicity": float(rng.random())})
    return pd.DataFrame(rows)


def synthetic_profile(name: str, seed: int) -> Profile:
    """A profile with the paper's suites: 17 textual, 3 toxicity, 62 bias (overall and per group) and judge."""
    rng = np.random.default_rng(seed)
    shift = 0.0 if name == "base" else rng.normal(0, 0.15)
    attrs = []
    for k, m in enumerate(TEXTUAL):
        items = list(rng.normal(20 + k, 3, N_ITEMS) * (1 + shift + rng.normal(0, 0.05)))
        attrs.append(Attribute(f"textual/{m}", "textual", float(np.mean(items)), "mean", items, None, "unit",
                               N_ITEMS))
    for m in ("expected_max_toxicity", "toxicity_probability", "mean_toxicity"):
        items = list(rng.random(N_ITEMS) * (0.3 + shift / 3))
        attrs.append(Attribute(f"toxicity/{m}", "toxicity", float(np.mean(items)), "mean", items, False, "score",
                               N_ITEMS))
    for m in BIAS:
        items = list(rng.normal(0.1, 0.3, N_ITEMS))
        attrs.append(Attribute(f"bias/{m}", "bias", float(np.mean(items)), "mean", items, None, "score", N_ITEMS))
    items = []
    for i in range(N_ITEMS):
        ref = int(rng.integers(1, 3))
        ab = ref if rng.random() < 0.7 else 3 - ref
        items.append({"pair_id": f"j{i}", "reference": ref, "ab": ab, "ba": ab, "verdict": ab, "longer": 1})
    attrs.append(Attribute("judge/agreement_with_reference", "judge", agreement_with_reference(items),
                           "heirloom.profiling.judge:agreement_with_reference", items, True, "share of pairs",
                           N_ITEMS))
    p = Profile(model=f"students/{name}/merged", config={"suites": ["textual", "toxicity", "bias", "judge"]},
                provenance=record(model=name))
    p.add(attrs)
    return p


def make_paper_run(root: Path, arms=ARMS, profiles: bool = True) -> Path:
    config = {"name": "paper", "seed": 0, "teachers": [{"outputs": [f"{t}.json" for t in IMPORTED]},
                                                      {"model": LIVE}],
              "generation": {"k": 4}, "scoring": {"metrics": ["length", "mtld", "toxicity"]},
              "arms": [{"name": n, "objective": o, **({"teachers": t} if t else {}), "max_candidates": k}
                       for n, o, t, k in arms], "student": {"model": LIVE}}
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    write_json(record(config=config), root / "run.json")
    scored = scored_pool()
    random_of = {tuple(sorted(t)) if t else None: n for n, o, t, _ in arms if o == "random"}
    for name, spec, teachers, cap in arms:  # what the runner's select stage does
        group = tuple(sorted(teachers)) if teachers else None
        full = scored[scored["teacher"].isin(teachers)] if teachers else scored
        pool = full if cap is None else full[full["sample_index"] < cap]
        extra = {"arm": name, "max_candidates": cap, "k": 4}
        if teachers:
            extra.update(arm_teachers=teachers, random_arm=random_of[group],
                         teacher_family={t: "same" if t == LIVE else "unknown" for t in teachers})
        d = root / "arms" / name
        select_pool(pool, parse_objective(spec), 0, d / "selected.jsonl", d / "record.jsonl", d / "summary.json",
                    name, baseline=select(full, "random", seed=0), extra=extra)
    if profiles:
        for n, name in enumerate(["base"] + [a[0] for a in arms]):
            synthetic_profile(name, seed=n).save(root / "profiles" / name / "profile.json")
    return root


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", raw[16:24])


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    from heirloom.report import write_report

    root = make_paper_run(tmp_path_factory.mktemp("paper") / "run")
    return root, write_report(root, n_boot=50)


def test_passive_arms_are_read_against_base_never_against_themselves(paper_run):
    root, index = paper_run
    out = root / "report"
    vs_base = pd.read_csv(out / "comparison_vs_base.csv")
    vs_random = pd.read_csv(out / "comparison_vs_random.csv")
    passive = {f"passive.{t}" for t in TEACHERS}
    assert passive <= set(vs_base["arm"]) and set(vs_base["reference"]) == {"base"}
    assert not passive & set(vs_random["arm"]) and "multi.random" not in set(vs_random["arm"])
    assert (vs_random["arm"] != vs_random["reference"]).all()
    # each active arm against the random arm from its own teachers
    own = vs_random.drop_duplicates("arm").set_index("arm")["reference"].to_dict()
    assert own == {**{a: f"passive.{LIVE}" for a in ("single.max_length", "single.max_mtld", "single.max_length.k2",
                                                     "single.max_mtld.k2")},
                   **{a: "multi.random" for a in ("multi.max_length", "multi.max_mtld", "multi.min_toxicity")}}
    base, rnd, arm = (Profile.load(root / "profiles" / n) for n in ("base", f"passive.{LIVE}", "single.max_mtld"))
    row = vs_random[(vs_random["arm"] == "single.max_mtld") & (vs_random["attribute"] == "textual/mtld")].iloc[0]
    r, a = rnd.attributes["textual/mtld"].value, arm.attributes["textual/mtld"].value
    assert np.isclose(row["pct_change"], 100 * (a - r) / abs(r)) and np.isclose(row["base"], r)
    row = vs_base[(vs_base["arm"] == "passive.Conifer-7B-DPO") & (vs_base["attribute"] == "bias/bbq/all/accuracy")]
    b, p = base.attributes["bias/bbq/all/accuracy"].value, Profile.load(
        root / "profiles" / "passive.Conifer-7B-DPO").attributes["bias/bbq/all/accuracy"].value
    assert np.isclose(row.iloc[0]["pct_change"], 100 * (p - b) / abs(b))


def test_the_page_names_the_random_arm_each_arm_is_read_against(paper_run):
    root, index = paper_run
    html = index.read_text(encoding="utf-8")
    assert f"<h3>Against the random arm passive.{LIVE}</h3>" in html
    assert "<h3>Against the random arm multi.random</h3>" in html
    assert f"a random pick from the candidates of {LIVE}; read against it: single.max_length, single.max_mtld" in html
    targeted = pd.read_csv(root / "report" / "targeted.csv")
    by_arm = targeted.drop_duplicates("arm").set_index("arm")["random_arm"].to_dict()
    assert by_arm["single.max_length"] == f"passive.{LIVE}" and by_arm["multi.max_mtld"] == "multi.random"
    assert not set(targeted["arm"]) & {f"passive.{t}" for t in TEACHERS}  # no objective: not targeted
    row = targeted[(targeted["arm"] == "single.max_length") & (targeted["attribute"] == "textual/length")].iloc[0]
    r = Profile.load(root / "profiles" / f"passive.{LIVE}").attributes["textual/length"].value
    assert np.isclose(row["random"], r)
    assert "<th class=\"t\">vs random arm</th>" in html and f"<td class=\"t\">passive.{LIVE}</td>" in html


def test_the_figures_hold_the_right_arms(paper_run, tmp_path):
    from heirloom.report import analysis
    from heirloom.report.build import _teacher_labels
    from heirloom.report.collect import collect

    root, index = paper_run
    data = collect(root)
    assert analysis.passive_arms(data) == [f"passive.{t}" for t in TEACHERS]
    labels = _teacher_labels(data, analysis.passive_arms(data))
    assert labels[f"passive.{LIVE}"] == f"{LIVE} (the student's family)" and labels["passive.Ein-70B-v0.1"] == \
        "Ein-70B-v0.1"
    vs_base, vs_random = analysis.comparisons(data, n_boot=20)
    targeted = analysis.targeted_table(data, vs_base, vs_random)
    # Fig. 4: one pair per objective with a single- and a multi-source arm at the same cap; min:toxicity has none
    pairs = analysis.single_multi(data, targeted)
    assert set(zip(pairs["arm"], pairs["source"])) == {("single.max_length", "single"), ("single.max_mtld", "single"),
                                                       ("multi.max_length", "multi"), ("multi.max_mtld", "multi")}
    assert set(pairs["objective"]) == {"max:length", "max:mtld"}
    multi = pairs[(pairs["arm"] == "multi.max_length")].iloc[0]
    summary = data.summaries["multi.max_length"]
    sel = next(m for m in summary["metrics"] if m["metric"] == "length")
    assert multi["random_arm"] == "multi.random" and np.isclose(multi["sel_pct_vs_random"], sel["pct_vs_random"])
    # Fig. 5: a curve within one pool (the live teacher's), its random arm as the k=1 point at 0
    sweep = analysis.k_sweep(data, targeted)
    assert set(sweep["teachers"]) == {LIVE} and not {"multi.max_length", "multi.max_mtld"} & set(sweep["arm"])
    curve = sweep[(sweep["objective"] == "max:mtld") & (sweep["attribute"] == "textual/mtld")]
    assert list(curve["candidates"]) == [1.0, 2.0, 4.0]
    assert list(curve["arm"]) == [f"passive.{LIVE}", "single.max_mtld.k2", "single.max_mtld"]
    assert curve.iloc[0]["sel_pct_vs_random"] == 0 and curve.iloc[0]["pct_vs_random"] == 0
    assert (curve["random_arm"] == f"passive.{LIVE}").all() and np.isfinite(curve.iloc[2]["ci_low"])
    made = set(pd.read_json(str(index) + ".meta.json", typ="series")["figures"])
    assert {"fig2_passive_inheritance.png", "fig3_judge_agreement.png", "fig4_single_vs_multi.png",
            "fig5_k_sweep.png", "fig1_percent_change.png"} <= made
    for name in made:
        w, h = png_size(root / "report" / "figures" / name)
        assert 500 <= w <= 2600 and 300 <= h <= 3600, (name, w, h)
    html = index.read_text(encoding="utf-8")
    assert "The passive arms (random, restricted to one teacher) are in the passive-inheritance figure" in html
    assert "Single-source vs multi-source (the paper&#x27;s Fig. 4)" in html


def test_judge_matrix_has_every_student_and_the_reference(paper_run):
    import dataclasses

    from heirloom.profiling.judge import judge_agreement_matrix
    from heirloom.report.collect import collect

    data = collect(paper_run[0])
    m = judge_agreement_matrix([dataclasses.replace(p, model=n) for n, p in data.profiles.items()])
    assert list(m.index) == ["base"] + [a[0] for a in ARMS] + ["reference"] and m.shape == (16, 16)


def test_a_run_without_restricted_arms_keeps_the_whole_pool_passive_figure(tmp_path):
    from heirloom.report import analysis, write_report
    from heirloom.report.collect import collect

    arms = [a for a in ARMS if a[2] is None]
    root = make_paper_run(tmp_path / "run", arms=arms)
    html = write_report(root, n_boot=0).read_text(encoding="utf-8")
    data = collect(root)
    assert analysis.passive_arms(data) == [] and data.random_arm == "multi.random"
    assert "the random arm, a random pick from the whole pool" in html  # the old Fig. 2 caption
    png_size(root / "report" / "figures" / "fig2_passive_inheritance.png")
    figs = root / "report" / "figures"
    assert not (figs / "fig4_single_vs_multi.png").exists() and not (figs / "fig5_k_sweep.png").exists()
    vs_random = pd.read_csv(root / "report" / "comparison_vs_random.csv")
    assert set(vs_random["reference"]) == {"multi.random"}
    assert "<h3>Against the random arm multi.random</h3>" in html and "(vs " not in html


def test_single_source_arms_without_a_multi_source_twin_draw_no_fig4(tmp_path):
    from heirloom.report import write_report

    arms = [a for a in ARMS if not a[0].startswith("multi.max")]
    root = make_paper_run(tmp_path / "run", arms=arms, profiles=False)
    write_report(root, n_boot=0)
    figs = root / "report" / "figures"
    assert not (figs / "fig4_single_vs_multi.png").exists()
    png_size(figs / "fig5_k_sweep.png")  # the selection-level k curve needs no profile


def test_many_attributes_keep_the_overall_ones_in_the_figures(paper_run):
    from heirloom.report.figures import SPREAD, is_breakdown, pick_attributes
    from heirloom.report.inheritance_figures import MAX_PASSIVE_ATTRIBUTES

    root, index = paper_run
    vs_base = pd.read_csv(root / "report" / "comparison_vs_base.csv")
    df = vs_base[vs_base["arm"].str.startswith("passive.") & ~vs_base["attribute"].str.endswith(SPREAD)]
    every = list(dict.fromkeys(df["attribute"]))
    assert len(every) == 17 + 3 + 62 + 1 > MAX_PASSIVE_ATTRIBUTES
    drawn, cut = pick_attributes(df, set(), MAX_PASSIVE_ATTRIBUTES)
    overall = [a for a in every if not is_breakdown(a)]
    assert cut and len(drawn) == MAX_PASSIVE_ATTRIBUTES and set(overall) <= set(drawn)
    assert "bias/bbq/all/accuracy" in overall and "bias/bbq/Age/accuracy" not in overall
    size = df.assign(a=df["pct_change"].abs()).groupby("attribute")["a"].max()
    breakdowns = size[[a for a in every if is_breakdown(a)]].sort_values(ascending=False)
    assert set(drawn) - set(overall) == set(breakdowns.index[:MAX_PASSIVE_ATTRIBUTES - len(overall)])
    html = index.read_text(encoding="utf-8")
    assert f"Only {MAX_PASSIVE_ATTRIBUTES} attributes are drawn (overall ones before per-group breakdowns" in html
