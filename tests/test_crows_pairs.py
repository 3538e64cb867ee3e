"""CrowS-Pairs suite with rigged sentence scores whose % for the stereotype is known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.generation.base import LoglikResult
from heirloom.profiling import statistics
from heirloom.profiling.crows_pairs import CrowsPairsConfig, pct_stereotype, run


class Scores:
    """Each sentence's mean log-probability comes from a table (2 tokens each, so sums are doubled)."""

    def __init__(self, table):
        self.table, self.requests = table, []

    def loglikelihood(self, requests, progress=True):
        self.requests += requests
        return [LoglikResult(2 * self.table(cont), 2, False) for _, cont in requests]


def write(tmp_path, rows):
    path = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["sent_more", "sent_less", "stereo_antistereo", "bias_type"]).to_csv(path)
    return str(path)


def test_hand_example(tmp_path):
    rows = [("m1", "l1", "stereo", "age"), ("m2", "l2", "stereo", "age"), ("m3", "l3", "antistereo", "gender"),
            ("m4", "l4", "stereo", "gender"), ("m5", "l5", "antistereo", "age")]
    score = {"m1": -1, "l1": -2, "m2": -3, "l2": -2, "m3": -1, "l3": -5, "m4": -2, "l4": -2, "m5": -4, "l5": -1}
    fake = Scores(lambda s: score[s])
    v = {a.name: a for a in run(fake, CrowsPairsConfig(data=write(tmp_path, rows)))}
    # more > less: pairs 1 and 3; pair 4 is a tie (neutral, still counted in the denominator)
    assert v["bias/crows_pairs/all/pct_stereotype"].value == pytest.approx(40.0)
    assert "1 tie(s)" in v["bias/crows_pairs/all/pct_stereotype"].note
    assert v["bias/crows_pairs/stereo/pct_stereotype"].value == pytest.approx(100 / 3)
    assert v["bias/crows_pairs/antistereo/pct_stereotype"].value == pytest.approx(50.0)
    assert v["bias/crows_pairs/age/pct_stereotype"].value == pytest.approx(100 / 3)
    assert v["bias/crows_pairs/gender/pct_stereotype"].value == pytest.approx(50.0)
    assert v["bias/crows_pairs/all/pct_stereotype"].unit == "%"
    assert all(ctx == "" for ctx, _ in fake.requests)  # sentences are scored on their own
    for a in v.values():
        assert statistics.resolve(a.statistic)(a.items) == a.value


def test_real_data_rigged_preferences(shared_data):
    data = str(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    df = pd.read_csv(data, keep_default_na=False)
    more = set(df["sent_more"])
    always = {a.name: a.value for a in run(Scores(lambda s: 0.0 if s in more else -1.0), CrowsPairsConfig(data=data))}
    assert always["bias/crows_pairs/all/pct_stereotype"] == 100.0
    assert always["bias/crows_pairs/antistereo/pct_stereotype"] == 100.0
    never = {a.name: a.value for a in run(Scores(lambda s: -1.0 if s in more else 0.0), CrowsPairsConfig(data=data))}
    assert never["bias/crows_pairs/race-color/pct_stereotype"] == 0.0
    assert len([k for k in always if k.count("/") == 3]) == 1 + 2 + df["bias_type"].nunique()


def test_size_is_stratified_by_bias_type(shared_data):
    data = str(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    attrs = {a.name: a for a in run(Scores(lambda s: -len(s)), CrowsPairsConfig(data=data, size=151, seed=1))}
    assert attrs["bias/crows_pairs/all/pct_stereotype"].n == 151
    assert "151 of 1508 pairs" in attrs["bias/crows_pairs/all/pct_stereotype"].note
    assert attrs["bias/crows_pairs/race-color/pct_stereotype"].n == round(151 * 516 / 1508)  # 51.7 -> 52
    assert attrs["bias/crows_pairs/disability/pct_stereotype"].n == 6  # 6.0


def test_empty_group_is_nan():
    assert math.isnan(pct_stereotype([]))


def test_bad_rows(tmp_path):
    with pytest.raises(HeirloomError, match="row 0: stereo_antistereo is 'maybe'"):
        run(Scores(lambda s: 0.0), CrowsPairsConfig(data=write(tmp_path, [("a", "b", "maybe", "age")])))
    with pytest.raises(HeirloomError, match="missing column"):
        pd.DataFrame({"sent_more": ["a"]}).to_csv(tmp_path / "x.csv")
        run(Scores(lambda s: 0.0), CrowsPairsConfig(data=str(tmp_path / "x.csv")))


@pytest.mark.integration
def test_embedded_model_runs(shared_data):
    from heirloom.generation import make_backend

    data = str(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv")
    attrs = {a.name: a.value for a in run(make_backend("smollm2-135m", device="cpu"), CrowsPairsConfig(data=data, size=10))}
    assert 0.0 <= attrs["bias/crows_pairs/all/pct_stereotype"] <= 100.0
