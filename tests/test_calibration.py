"""Calibration suite: equal-mass ECE against a hand computation and an independent implementation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.generation.base import LoglikResult
from heirloom.profiling import statistics
from heirloom.profiling.calibration import (
    CalibrationConfig, expected_calibration_error, hellaswag_question, openbookqa_question, run,
)


def ece_by_definition(conf, correct, bins):
    """Sort by confidence; B bins of sizes floor(N/B) or +1 (larger first); sum |B_b|/N |acc_b - conf_b|."""
    pairs = sorted(zip(conf, correct), key=lambda p: p[0])
    n = len(pairs)
    sizes = [n // bins + (1 if b < n % bins else 0) for b in range(bins)]
    total, start = 0.0, 0
    for size in sizes:
        chunk = pairs[start:start + size]
        start += size
        if chunk:
            acc = sum(c for _, c in chunk) / len(chunk)
            avg = sum(p for p, _ in chunk) / len(chunk)
            total += len(chunk) / n * abs(acc - avg)
    return total


def test_ece_hand_example():
    conf = [0.9, 0.6, 0.8, 0.3, 0.5, 0.7]
    correct = [1, 0, 1, 0, 1, 1]
    # sorted: (0.3,0) (0.5,1) (0.6,0) | (0.7,1) (0.8,1) (0.9,1), 2 bins of 3:
    # bin 1: acc 1/3, conf 1.4/3 -> |0.4667-0.3333| = 0.1333; bin 2: acc 1, conf 0.8 -> 0.2
    assert expected_calibration_error(conf, correct, 2) == pytest.approx(0.5 * 0.4 / 3 + 0.5 * 0.2)
    # one bin: |4/6 - 3.8/6| = 0.2/6
    assert expected_calibration_error(conf, correct, 1) == pytest.approx(0.2 / 6)
    # 10 bins for 6 questions: every question alone, ECE = mean |correct - confidence|
    assert expected_calibration_error(conf, correct, 10) == pytest.approx(np.mean(np.abs(np.array(correct) - conf)))
    assert math.isnan(expected_calibration_error([], [], 10))


@pytest.mark.parametrize("n,bins", [(1000, 10), (37, 10), (5, 1), (101, 7)])
def test_ece_matches_independent_implementation(n, bins):
    rng = np.random.default_rng(n)
    conf = rng.uniform(0.2, 1.0, n)
    correct = (rng.uniform(size=n) < conf ** 2).astype(int)
    assert expected_calibration_error(conf, correct, bins) == pytest.approx(ece_by_definition(conf, correct, bins))


class Table:
    """Option scores from a table keyed by the option text (mean log-likelihood per token, 4 tokens)."""

    def __init__(self, table):
        self.table, self.requests = table, []

    def loglikelihood(self, requests, progress=True):
        self.requests += requests
        return [LoglikResult(4 * self.table[c.strip()], 4, False) for _, c in requests]


def test_local_file_end_to_end(tmp_path):
    rows = [{"question": "2 + 2 =", "choices": ["3", "4"], "answer": 1},
            {"question": "Sky colour?", "choices": ["blue", "green", "red"], "answer": "A"},
            {"question": "Capital of France?", "choices": ["Rome", "Paris"], "answer": "Paris"},
            {"question": "Odd one?", "choices": ["cat", "dog", "car"], "answer": "0"}]
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = {"3": -2.0, "4": -1.0, "blue": -1.0, "green": -1.0, "red": -3.0, "Rome": -0.5, "Paris": -1.5,
              "cat": -2.0, "dog": -1.0, "car": -1.0}
    fake = Table(scores)
    attrs = {a.name: a for a in run(fake, CalibrationConfig(datasets=[str(path)]))}
    assert fake.requests[0] == ("2 + 2 =", " 3")
    items = attrs["calibration/mc/accuracy"].items
    e = math.e
    want_conf = [e / (1 + e), 1 / (2 + e ** -2), e / (1 + e), 1 / (2 + e ** -1)]
    assert [it["confidence"] for it in items] == pytest.approx(want_conf)
    assert [it["answer"] for it in items] == [1, 0, 0, 1]  # ties go to the first option
    assert [it["correct"] for it in items] == [True, True, False, False]
    assert attrs["calibration/mc/accuracy"].value == 0.5
    assert attrs["calibration/mc/ece_1"].value == pytest.approx(abs(0.5 - np.mean(want_conf)))
    assert attrs["calibration/mc/ece_10"].value == pytest.approx(ece_by_definition(want_conf, [1, 1, 0, 0], 10))
    for a in attrs.values():
        assert statistics.resolve(a.statistic)(a.items) == pytest.approx(a.value)
    small = {a.name: a for a in run(fake, CalibrationConfig(datasets=[str(path)], size=2, seed=0))}
    assert small["calibration/mc/accuracy"].n == 2 and "2 of 4 questions" in small["calibration/mc/accuracy"].note


def test_csv_choices_and_bad_answers(tmp_path):
    path = tmp_path / "mc.csv"
    pd.DataFrame({"question": ["q"], "choices": ['["a", "b"]'], "answer": ["b"]}).to_csv(path, index=False)
    attrs = {a.name: a for a in run(Table({"a": -1.0, "b": -2.0}), CalibrationConfig(datasets=[str(path)]))}
    assert attrs["calibration/mc/accuracy"].value == 0.0
    pd.DataFrame({"question": ["q"], "choices": ['["a", "b"]'], "answer": [5]}).to_csv(path, index=False)
    with pytest.raises(HeirloomError, match="row 0: answer 5 is out of range for 2 choices"):
        run(Table({}), CalibrationConfig(datasets=[str(path)]))
    with pytest.raises(HeirloomError, match="neither hellaswag nor openbookqa nor a file"):
        run(Table({}), CalibrationConfig(datasets=["no-such-dataset"]))


def test_hub_row_mappings():
    row = {"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow covering the window.",
           "ctx_b": "a woman", "endings": ["Shovel it [title] Then stop. [step]", "b", "c", "d"], "label": "3"}
    ctx, options, gold = hellaswag_question(row)
    assert ctx == "Removing ice from car: Then, the man writes over the snow covering the window. A woman"
    assert options[0] == "Shovel it. Then stop. " and gold == 3  # lm-eval strips before removing brackets
    row = {"question_stem": "What is warm?", "choices": {"text": ["ice", "sun", "snow", "hail"],
                                                         "label": ["A", "B", "C", "D"]}, "answerKey": "B"}
    assert openbookqa_question(row) == ("What is warm?", ["ice", "sun", "snow", "hail"], 1)
