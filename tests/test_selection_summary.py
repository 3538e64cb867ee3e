"""Selection summary against direct pandas computations, on a hand-made and a real pool."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heirloom.pools import import_outputs
from heirloom.selection import select, summarize

NAN = np.nan
ROWS = [  # prompt, teacher, sample_index, mtld, toxicity (same pool as test_selection.py)
    ("A", "t1", 0, 10.0, 0.05), ("A", "t1", 1, 30.0, 0.20), ("A", "t2", 0, 25.0, 0.01),
    ("B", "t1", 0, NAN, 0.00), ("B", "t1", 1, 12.0, 0.30), ("B", "t2", 0, 12.0, 0.40),
    ("C", "t1", 0, NAN, 0.10), ("C", "t2", 0, NAN, 0.10), ("D", "t2", 0, 40.0, 0.50),
]


def make_pool():
    df = pd.DataFrame(ROWS, columns=["prompt_id", "teacher", "sample_index", "mtld", "toxicity"])
    return df.assign(prompt="prompt " + df["prompt_id"], completion="c", source="live")

ALPACA = Path(os.environ["HEIRLOOM_DATA"]) / "alpaca_eval_outputs"  # HEIRLOOM_DATA: set by conftest.py


def check_against_pandas(pool, result, summary):
    baseline = select(pool, "random", seed=result.seed)
    numeric = [c for c in pool.columns if pd.api.types.is_numeric_dtype(pool[c])
               and c not in ("sample_index", "seed")]
    assert summary.metrics["metric"].tolist() == numeric  # every metric column, not only the target
    for row in summary.metrics.itertuples():
        chosen, whole, rand = result.selected[row.metric].mean(), pool[row.metric].mean(), \
            baseline.selected[row.metric].mean()
        assert np.allclose([row.chosen, row.pool, row.random], [chosen, whole, rand], equal_nan=True)
        assert np.isclose(row.diff_vs_pool, chosen - whole, equal_nan=True)
        assert np.isclose(row.pct_vs_pool, 100 * (chosen - whole) / abs(whole), equal_nan=True)
        assert np.isclose(row.pct_vs_random, 100 * (chosen - rand) / abs(rand), equal_nan=True)
        assert row.n_pool == pool[row.metric].notna().sum()
        assert row.n_chosen == result.selected[row.metric].notna().sum()
    t = summary.teachers.set_index("teacher")
    counts = result.selected["teacher"].value_counts()
    for teacher in pool["teacher"].unique():
        assert t.loc[teacher, "chosen"] == counts.get(teacher, 0)
        assert np.isclose(t.loc[teacher, "chosen_share"], counts.get(teacher, 0) / len(result.selected))
        assert t.loc[teacher, "pool"] == (pool["teacher"] == teacher).sum()
        assert t.loc[teacher, "random"] == (baseline.selected["teacher"] == teacher).sum()
    assert np.isclose(t["chosen_share"].sum(), 1) and np.isclose(t["random_share"].sum(), 1)


def test_summary_hand_made_pool():
    pool = make_pool()
    result = select(pool, "max:mtld", seed=3)
    summary = summarize(pool, result)
    check_against_pandas(pool, result, summary)
    m = summary.metrics.set_index("metric")
    assert m.loc["mtld", "role"] == "objective" and m.loc["toxicity", "role"] == ""
    # chosen A (30), B (12), D (40); pool mean over the 6 defined values
    assert m.loc["mtld", "chosen"] == pytest.approx((30 + 12 + 40) / 3)
    assert m.loc["mtld", "pool"] == pytest.approx((10 + 30 + 25 + 12 + 12 + 40) / 6)
    assert m.loc["toxicity", "chosen"] == pytest.approx((0.2 + 0.4 + 0.5) / 3)  # off-target drift
    assert summary.counts == {"prompts": 4, "candidates": 9, "selected": 3, "unqualified": 1, "random": 4}
    doc = summary.to_dict()
    json.dumps(doc, allow_nan=False)  # NaN became null, numpy scalars became Python numbers
    assert doc["unqualified"] == [{"prompt_id": "C", "n_candidates": 2, "reason": "all 2 candidates: NaN mtld"}]
    text = summary.render()
    assert "objective max:mtld (seed 3): 3 of 4 prompts" in text and "toxicity" in text and "t2" in text


def test_summary_percent_undefined_when_reference_is_zero():
    pool = make_pool().assign(zero=0.0)
    summary = summarize(pool, select(pool, "max:mtld"))
    row = summary.metrics.set_index("metric").loc["zero"]
    assert row.diff_vs_pool == 0.0 and math.isnan(row.pct_vs_pool)


@pytest.mark.skipif(not ALPACA.exists(), reason="shared AlpacaEval outputs not present")
def test_summary_real_multi_teacher_pool():
    pool = import_outputs(sorted(ALPACA.glob("[!a]*.json")))
    pool = pool.assign(words=pool["completion"].str.split().str.len().astype(float),
                       newlines=pool["completion"].str.count("\n").astype(float))
    result = select(pool, "max:words", seed=0)
    summary = summarize(pool, result)
    check_against_pandas(pool, result, summary)
    m = summary.metrics.set_index("metric")
    assert m.loc["words", "chosen"] == pytest.approx(pool.groupby("prompt_id")["words"].max().mean())
    assert m.loc["words", "pct_vs_random"] > 0 and m.loc["num_tokens", "n_pool"] == 0  # undefined offline
    assert summary.counts["selected"] == 805
