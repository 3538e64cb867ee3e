"""Selection on hand-made pools: winners, margins, ties, NaN, constraints, every objective kind."""

import time

import numpy as np
import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.selection import (
    Constraint, LexicographicObjective, MetricObjective, WeightedObjective, load_objective, parse_objective,
    select, with_constraints,
)

NAN = np.nan
# prompt, teacher, sample_index, mtld, toxicity, length
ROWS = [
    ("A", "t1", 0, 10.0, 0.05, 100.0),
    ("A", "t1", 1, 30.0, 0.20, 250.0),
    ("A", "t2", 0, 25.0, 0.01, 190.0),
    ("B", "t1", 0, NAN, 0.00, 50.0),
    ("B", "t1", 1, 12.0, 0.30, 220.0),
    ("B", "t2", 0, 12.0, 0.40, 180.0),
    ("C", "t1", 0, NAN, 0.10, 60.0),
    ("C", "t2", 0, NAN, 0.10, 70.0),
    ("D", "t2", 0, 40.0, 0.50, 20.0),
]


def make_pool(rows=ROWS):
    df = pd.DataFrame(rows, columns=["prompt_id", "teacher", "sample_index", "mtld", "toxicity", "length"])
    return df.assign(prompt="prompt " + df["prompt_id"], source="live",
                     completion=df["teacher"] + "/" + df["sample_index"].astype(str))


def winners(result):
    return {r.prompt_id: (r.teacher, r.sample_index) for r in result.selected.itertuples()}


def margins(result):
    return dict(zip(result.selected["prompt_id"], result.selected["margin"]))


def test_max_metric_winners_margins_ties_nan():
    r = select(make_pool(), "max:mtld")
    assert winners(r) == {"A": ("t1", 1), "B": ("t2", 0), "D": ("t2", 0)}  # B: tie at 12 -> lowest sample_index
    m = margins(r)
    assert m["A"] == 5.0 and m["B"] == 0.0 and np.isnan(m["D"])  # D has a single candidate
    assert r.unqualified.values.tolist() == [["C", "prompt C", 2, "all 2 candidates: NaN mtld"]]
    assert r.stats["n_excluded"] == 3 and r.stats["excluded_by_reason"] == {"NaN mtld": 3}
    assert r.stats["n_ties"] == 1 and r.stats["n_selected"] == 3 and r.stats["n_unqualified"] == 1
    assert r.selected["completion"].tolist() == ["t1/1", "t2/0", "t2/0"]
    c = r.candidates
    assert c["winner"].sum() == 3 and c.loc[c["excluded"] == "NaN mtld", "eligible"].eq(False).all()


def test_min_metric_and_teacher_tie_break():
    r = select(make_pool(), MetricObjective(metric="toxicity", direction="minimize"))
    # C: both 0.10 at sample 0 -> the alphabetically first teacher wins
    assert winners(r) == {"A": ("t2", 0), "B": ("t1", 0), "C": ("t1", 0), "D": ("t2", 0)}
    m = margins(r)
    assert np.isclose(m["A"], 0.04) and np.isclose(m["B"], 0.30) and m["C"] == 0.0
    assert r.selected["selection_score"].tolist() == [-0.01, -0.0, -0.1, -0.5]  # higher is better


def test_result_does_not_depend_on_row_order():
    pool = make_pool()
    shuffled = pool.sample(frac=1.0, random_state=3)
    for spec in ["max:mtld", "min:toxicity", "target:length=200", "random", "lex:max:mtld~6,min:toxicity"]:
        assert winners(select(pool, spec, seed=1)) == winners(select(shuffled, spec, seed=1)), spec


def test_constraints_exclude_and_report():
    r = select(make_pool(), with_constraints(parse_objective("max:mtld"), ["toxicity<0.1"]))
    assert winners(r) == {"A": ("t2", 0)}
    assert margins(r)["A"] == 15.0  # t1/1 (mtld 30) violates, so the runner-up is t1/0 (10)
    reasons = dict(zip(r.unqualified["prompt_id"], r.unqualified["reason"]))
    assert reasons == {
        "B": "no eligible candidate: NaN mtld (1), violates toxicity<0.1 (2)",
        "C": "all 2 candidates: NaN mtld",
        "D": "all 1 candidates: violates toxicity<0.1",
    }
    # a NaN in a constraint metric never satisfies it, and says so
    r = select(make_pool(), MetricObjective(metric="length", direction="maximize", constraints=["mtld>=0"]))
    assert "C" not in winners(r) and winners(r)["B"] == ("t1", 1)
    assert r.unqualified["reason"].tolist() == ["all 2 candidates: NaN mtld (constraint mtld>=0)"]
    # constraints bind at equality as written
    r = select(make_pool(), parse_objective({"kind": "metric", "metric": "length", "direction": "maximize",
                                             "constraints": ["length <= 190", {"metric": "toxicity", "op": "!=",
                                                                               "value": 0.0}]}))
    assert winners(r) == {"A": ("t2", 0), "B": ("t2", 0), "C": ("t2", 0), "D": ("t2", 0)}


def test_target_closest_value():
    r = select(make_pool(), "target:length=200")
    assert winners(r)["A"] == ("t2", 0) and margins(r)["A"] == 40.0  # |190-200| = 10 vs 50
    assert winners(r)["B"] == ("t2", 0) and margins(r)["B"] == 0.0  # 220 and 180 tie at distance 20
    assert winners(r)["C"] == ("t2", 0) and margins(r)["C"] == 10.0


def test_lexicographic_with_and_without_tolerance():
    r = select(make_pool(), "lex:max:mtld,min:toxicity")
    assert winners(r) == {"A": ("t1", 1), "B": ("t1", 1), "D": ("t2", 0)}  # B: tie on mtld, lower toxicity wins
    assert margins(r)["A"] == 5.0 and margins(r)["B"] == 0.0
    r = select(make_pool(), LexicographicObjective(order=[{"metric": "mtld", "direction": "maximize",
                                                           "tolerance": 6}, {"metric": "toxicity",
                                                                             "direction": "minimize"}]))
    assert winners(r)["A"] == ("t2", 0)  # 25 is within 6 of 30 and far less toxic
    assert margins(r)["A"] == -5.0  # margin on the first metric: it gave up 5 mtld
    r = select(make_pool(), "lex:max:mtld~4,min:toxicity")
    assert winners(r)["A"] == ("t1", 1)  # 25 is not within 4 of 30


@pytest.mark.parametrize("normalization", ["zscore", "minmax"])
def test_weighted_sum_matches_independent_computation(normalization):
    pool = make_pool()
    r = select(pool, f"sum[{normalization}]:0.7*max:mtld,0.3*min:toxicity")

    def norm(col):
        x = pool[col].dropna()
        if normalization == "zscore":
            return (pool[col] - x.mean()) / x.std(ddof=0)
        return (pool[col] - x.min()) / (x.max() - x.min())

    expect = pool.assign(s=0.7 * norm("mtld") - 0.3 * norm("toxicity")).dropna(subset=["s"])
    for pid, group in expect.groupby("prompt_id"):
        group = group.sort_values("s", ascending=False)
        row = r.selected.set_index("prompt_id").loc[pid]
        assert (row.teacher, row.sample_index) == (group.teacher.iloc[0], group.sample_index.iloc[0])
        assert np.isclose(row.selection_score, group.s.iloc[0])
        if len(group) > 1:
            assert np.isclose(row.margin, group.s.iloc[0] - group.s.iloc[1])
        else:
            assert np.isnan(row.margin)
    assert "C" in set(r.unqualified["prompt_id"])  # a NaN term makes the weighted score undefined


def test_weighted_constant_metric_normalizes_to_zero():
    obj = WeightedObjective(terms=[{"metric": "x", "direction": "maximize"}], normalization="zscore")
    assert obj.normalize(np.array([2.0, 2.0, NAN])).tolist()[:2] == [0.0, 0.0]


def test_random_baseline_seeded_and_eligible_only():
    rng = np.random.default_rng(0)
    rows = [(f"q{i}", f"t{j % 2}", j // 2, float(rng.random()), float(rng.random()), 1.0)
            for i in range(400) for j in range(4)]
    pool = make_pool(rows)
    a, b, c = select(pool, "random", seed=0), select(pool, "random", seed=0), select(pool, "random", seed=1)
    assert winners(a) == winners(b) and winners(a) != winners(c)
    assert a.selected["margin"].isna().all()
    picks = a.selected.groupby(["teacher", "sample_index"]).size() / 400  # uniform over the 4 candidates
    assert len(picks) == 4 and ((picks - 0.25).abs() < 0.07).all()
    r = select(pool, parse_objective({"kind": "random", "constraints": ["mtld<0.5"]}), seed=0)
    assert (r.selected["mtld"] < 0.5).all()
    n_ok = pool[pool["mtld"] < 0.5].groupby("prompt_id").size()
    assert len(r.selected) == len(n_ok) and len(r.unqualified) == 400 - len(n_ok)


def test_objective_configs_and_specs():
    assert parse_objective("min:toxicity") == MetricObjective(metric="toxicity", direction="minimize")
    t = parse_objective("target:length=2e2")
    assert (t.kind, t.metric, t.value) == ("target", "length", 200.0)
    lex = parse_objective("lex:max:mtld~2.5,min:toxicity")
    assert [(x.metric, x.direction, x.tolerance) for x in lex.order] == [
        ("mtld", "maximize", 2.5), ("toxicity", "minimize", 0.0)]
    w = parse_objective("sum:max:mtld,0.5*min:toxicity")
    assert w.normalization == "zscore" and [x.weight for x in w.terms] == [1.0, 0.5]
    assert Constraint.parse(" length >= 20 ") == Constraint(metric="length", op=">=", value=20)
    for spec in ["max:mtld", "random", "target:length=200", "lex:max:mtld~2,min:toxicity",
                 "sum[minmax]:0.7*max:mtld,0.3*min:toxicity"]:
        assert parse_objective(spec).describe() == spec
    with pytest.raises(HeirloomError, match=r"objective: metric.extra: Extra inputs are not permitted"):
        parse_objective({"kind": "metric", "metric": "x", "direction": "maximize", "extra": 1})
    with pytest.raises(HeirloomError, match=r"direction"):
        parse_objective({"kind": "metric", "metric": "x", "direction": "up"})
    with pytest.raises(HeirloomError, match=r"objective 'max mtld'"):
        parse_objective("max mtld")
    for bad in ["mx:mtld", "target:length", "lex:max:mtld,0.3*min:t", "sum:0.5*max:a~1", "max:"]:
        with pytest.raises(HeirloomError, match=r"forms: max:METRIC"):
            parse_objective(bad)
    with pytest.raises(HeirloomError, match=r"constraint 'toxicity<<0.1': expected METRIC OP NUMBER"):
        Constraint.parse("toxicity<<0.1")


def test_objective_file(tmp_path):
    f = tmp_path / "obj.yaml"
    f.write_text("kind: lexicographic\norder:\n  - {metric: mtld, direction: maximize, tolerance: 6}\n"
                 "  - {metric: toxicity, direction: minimize}\nconstraints: ['length >= 100']\n")
    obj = load_objective(f)
    assert obj.constraints == (Constraint(metric="length", op=">=", value=100),)
    assert winners(select(make_pool(), obj))["A"] == ("t2", 0)
    f.write_text("kind: target\nmetric: length\nvalue: 1\nweight: 2\n")
    with pytest.raises(HeirloomError, match=r"obj.yaml: target.weight: Extra inputs are not permitted"):
        load_objective(f)


def test_unknown_column_non_numeric_and_empty_pool():
    with pytest.raises(HeirloomError, match=r"scored.jsonl: unknown metric column 'mtdl' \(did you mean 'mtld'\? "
                                            r"available metric columns: mtld, toxicity, length\)"):
        select(make_pool(), "max:mtdl", source="scored.jsonl")
    with pytest.raises(HeirloomError, match=r"column 'completion' is not numeric"):
        select(make_pool(), "max:completion")
    with pytest.raises(HeirloomError, match=r"unknown metric column 'nope'"):
        select(make_pool(), with_constraints(parse_objective("random"), ["nope<1"]))
    with pytest.raises(HeirloomError, match=r"p.jsonl: empty pool"):
        select(make_pool().iloc[:0], "max:mtld", source="p.jsonl")


def test_all_null_metric_column_from_json_is_nan():
    pool = make_pool().assign(score=[None] * len(ROWS))
    r = select(pool, "max:score")
    assert r.selected.empty and len(r.unqualified) == 4


def test_hundred_thousand_candidates_fast():
    rng = np.random.default_rng(0)
    n, k = 10_000, 10
    pool = pd.DataFrame({"prompt_id": np.repeat([f"p{i}" for i in range(n)], k),
                         "prompt": np.repeat([f"prompt {i}" for i in range(n)], k),
                         "teacher": np.tile(["a", "b"], n * k // 2), "sample_index": np.tile(np.arange(k) // 2, n),
                         "completion": "x", "mtld": rng.normal(50, 10, n * k), "toxicity": rng.random(n * k)})
    pool.loc[rng.random(n * k) < 0.05, "mtld"] = NAN
    for spec in ["max:mtld", "lex:max:mtld~2,min:toxicity", "random"]:
        start = time.perf_counter()
        r = select(pool, spec)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, (spec, elapsed)
    best = pool.dropna(subset=["mtld"]).groupby("prompt_id")["mtld"].max()
    r = select(pool, "max:mtld")
    assert np.allclose(r.selected.set_index("prompt_id")["mtld"].loc[best.index], best)


@pytest.mark.parametrize("spec,directions", [
    ("max:mtld", {"mtld": "maximize"}),
    ("sum[minmax]:0.7*max:mtld,0.3*min:toxicity", {"mtld": "maximize", "toxicity": "minimize"}),
    ("lex:min:toxicity~0.1,max:length", {"toxicity": "minimize", "length": "maximize"}),
    ("target:length=120", {"length": "target"}),
    ("random", {}),
])
def test_objectives_state_their_directions(spec, directions):
    objective = with_constraints(parse_objective(spec), ["words>3"])  # a bound is no direction
    assert objective.directions == directions and list(directions) == objective.metrics()
