"""Lexical diversity against lexicalrichness on real LLM outputs (oracle tests)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from lexicalrichness import LexicalRichness

from heirloom.metrics import get_metric
from heirloom.metrics.lexical import hdd, mattr, mtld
from heirloom.metrics.text import lexicalrichness_tokens

DATA = Path(os.environ["HEIRLOOM_DATA"])  # set by conftest.py


@pytest.fixture(scope="module")
def outputs():
    files = sorted((DATA / "alpaca_eval_outputs").glob("[!a]*.json"))  # the 5 model files, not annotations
    assert len(files) == 5
    return [row["output"] for f in files for row in json.loads(f.read_text())]


def test_tokens_are_lexicalrichness_tokens(outputs):
    assert len(outputs) >= 4000
    for text in outputs + ["Co-operate — 3.14 élan, naïve O'Brien's\tTAB–dash"]:
        assert lexicalrichness_tokens(text) == LexicalRichness(text).wordlist


def test_mtld_equals_lexicalrichness_on_every_output(outputs):
    metric = get_metric("mtld:min_words=1")
    ours = metric.score(outputs)
    checked = 0
    for text, value in zip(outputs, ours):
        lr = LexicalRichness(text)
        if lr.words == 0:  # lexicalrichness raises ZeroDivisionError: undefined, so NaN here
            assert np.isnan(value)
            continue
        assert value == pytest.approx(lr.mtld(threshold=0.72), abs=1e-9, rel=0)
        checked += 1
    assert checked >= 4000


def test_mtld_other_threshold_and_default_min_words(outputs):
    texts = outputs[:300]
    ours = get_metric("mtld", threshold=0.66).score(texts)
    for text, value in zip(texts, ours):
        lr = LexicalRichness(text)
        if lr.words >= 10:
            assert value == pytest.approx(lr.mtld(threshold=0.66), abs=1e-9, rel=0)
        else:
            assert np.isnan(value)


def test_mtld_edge_cases_match_lexicalrichness():
    for text in ["hello", "the the", "a b c a b c a", "one two three four five", "x y " * 30]:
        assert mtld(text.split()) == pytest.approx(LexicalRichness(text).mtld(), abs=1e-12)


def test_ttr_mattr_hdd_equal_lexicalrichness(outputs):
    long_texts = [t for t in outputs if LexicalRichness(t).words >= 100][::25]  # 120 texts across the 5 models
    assert len(long_texts) >= 100
    ttr = get_metric("ttr").score(long_texts)
    ma = get_metric("mattr").score(long_texts)
    hd = get_metric("hdd").score(long_texts)
    for i, text in enumerate(long_texts):
        lr = LexicalRichness(text)
        assert ttr[i] == pytest.approx(lr.ttr, abs=1e-12)
        assert ma[i] == pytest.approx(lr.mattr(window_size=100), abs=1e-9)
        assert hd[i] == pytest.approx(lr.hdd(draws=42), abs=1e-9)
    # other window/draws on shorter texts
    words = lexicalrichness_tokens(long_texts[0])[:60]
    lr = LexicalRichness(words, preprocessor=None, tokenizer=None)
    assert mattr(words, 25) == pytest.approx(lr.mattr(window_size=25), abs=1e-9)
    assert hdd(words, 10) == pytest.approx(lr.hdd(draws=10), abs=1e-9)


def test_nan_with_reasons_instead_of_zero():
    texts = ["", "!!! 123 ---", "two words", "word " * 50]
    values, reasons = get_metric("mtld").score_with_reasons(texts)
    assert np.isnan(values[:3]).all() and not np.isnan(values[3])
    assert reasons[0] == "no words" and reasons[1] == "no words"
    assert "only 2 words" in reasons[2] and "min_words=10" in reasons[2]
    assert reasons[3] is None
    v, r = get_metric("mattr").score_with_reasons(texts)
    assert np.isnan(v).all() and r[3] == "only 50 words (< window=100)"
    v, r = get_metric("hdd").score_with_reasons(texts)
    assert np.isnan(v[:3]).all() and v[3] == pytest.approx(1 / 42)  # one term, always drawn
    v, r = get_metric("ttr").score_with_reasons(texts)
    assert r[:2] == ["no words", "no words"] and v[2] == 1.0 and v[3] == 1 / 50
