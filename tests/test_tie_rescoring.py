"""Near-tie re-scoring: items decided in bf16 within `rescore_margin` get the float32 backend's scores.

A tiny random Llama runs once in bfloat16 (the backend under test) and once in float32 (the
reference). The threshold is set between the items' bf16 margins, so some items fall under it
and some above: those under must carry exactly the float32 backend's scores, those above their
untouched bf16 scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from heirloom.generation.base import Backend, LoglikResult
from heirloom.profiling import bbq, calibration, crows_pairs
from heirloom.profiling.tie_rescoring import DEFAULT_MARGIN, pair_margin, top2_margin

TOL = 2e-5  # BBQ items keep their scores rounded to 5 decimals


@pytest.fixture(scope="module")
def model_dir(tok, tmp_path_factory):
    """A random Llama with large weights (options' scores spread out) and SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3,
                         max_position_embeddings=512, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("tiny-ties")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def bf16(model_dir):
    from heirloom.generation.hf import HFBackend

    backend = HFBackend(model_dir, device="cpu", dtype="bfloat16")
    assert backend.dtype == "bfloat16"
    return backend


@pytest.fixture(scope="module")
def fp32(model_dir):
    from heirloom.generation.hf import HFBackend

    return HFBackend(model_dir, device="cpu", dtype="float32")


def split_threshold(margins) -> float:
    """A threshold with about half the margins under it and none equal to it."""
    m = np.sort(np.unique(np.asarray(margins)))
    assert len(m) >= 4, "too few distinct margins to split"
    k = len(m) // 2
    return float((m[k - 1] + m[k]) / 2)


def bbq_items(attrs):
    return next(a.items for a in attrs if a.name == "bias/bbq/Age/accuracy")


def crows_items(attrs):
    return next(a.items for a in attrs if a.name == "bias/crows_pairs/all/pct_stereotype")


def crows_csv(shared_data, tmp_path, n=16):
    df = pd.read_csv(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv", keep_default_na=False).head(n)
    path = tmp_path / "pairs.csv"
    df[["sent_more", "sent_less", "stereo_antistereo", "bias_type"]].to_csv(path)
    return str(path)


def bbq_config(shared_data, **kw):
    return bbq.BBQConfig(data=str(shared_data / "bbq" / "Age.jsonl"), size=16, **kw)


class Spy:
    """Counts calls to a backend's float32 path (and fails them when `forbid`)."""

    def __init__(self, backend, monkeypatch, forbid=False):
        self.calls, original = [], backend.float32_loglikelihood

        def call(requests, progress=True):
            assert not forbid, "float32 re-scoring ran where it must not"
            self.calls.append(list(requests))
            return original(requests, progress=progress)
        monkeypatch.setattr(backend, "float32_loglikelihood", call)


def test_float32_loglikelihood_equals_the_float32_backend(bf16, fp32):
    requests = [("The cat", " sat"), ("", "A whole sentence."), ("Answer: ", " The grandfather")]
    got = bf16.float32_loglikelihood(requests, progress=False)
    want = fp32.loglikelihood(requests, progress=False)
    assert [r.num_tokens for r in got] == [r.num_tokens for r in want]
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], abs=1e-5)
    assert str(bf16.model.dtype) == "torch.bfloat16"  # the backend itself stays in bf16
    low = bf16.loglikelihood(requests, progress=False)
    assert max(abs(a.logprob - b.logprob) for a, b in zip(low, want)) > 1e-4  # bf16 does differ


def test_bbq_near_ties_get_float32_scores(bf16, fp32, shared_data, monkeypatch):
    off = bbq_items(bbq.run(bf16, bbq_config(shared_data, rescore_margin=None), progress=False))
    ref = bbq_items(bbq.run(fp32, bbq_config(shared_data), progress=False))
    threshold = split_threshold([top2_margin(it["scores"]) for it in off])
    spy = Spy(bf16, monkeypatch)
    attrs = bbq.run(bf16, bbq_config(shared_data, rescore_margin=threshold), progress=False)
    on = bbq_items(attrs)
    assert len(spy.calls) == 1  # one float32 pass for all near ties
    near = [top2_margin(it["scores"]) < threshold for it in off]
    assert 0 < sum(near) < len(off)
    assert len(spy.calls[0]) == 3 * sum(near)  # whole questions: all three options
    for b, a, r, is_near in zip(off, on, ref, near):
        assert a["rescored"] is is_near
        if is_near:
            assert a["scores"] == pytest.approx(r["scores"], abs=TOL)
            assert a["answer"] == r["answer"]
            assert a["rescored_from"] == b["scores"]
        else:
            assert a["scores"] == b["scores"] and a["answer"] == b["answer"] and "rescored_from" not in a
    note = next(x.note for x in attrs if x.name == "bias/bbq/Age/accuracy")
    assert f"bfloat16 scores; {sum(near)} of {len(off)} items with a margin under {threshold:g} re-scored" in note
    assert bbq.accuracy(on) == np.mean([it["correct"] for it in on])


def test_crows_near_ties_get_float32_scores(bf16, fp32, shared_data, tmp_path, monkeypatch):
    data = crows_csv(shared_data, tmp_path)
    off = crows_items(crows_pairs.run(bf16, crows_pairs.CrowsPairsConfig(data=data, rescore_margin=0),
                                      progress=False))
    ref = crows_items(crows_pairs.run(fp32, crows_pairs.CrowsPairsConfig(data=data), progress=False))
    threshold = split_threshold([pair_margin([it["more"], it["less"]]) for it in off])
    spy = Spy(bf16, monkeypatch)
    attrs = crows_pairs.run(bf16, crows_pairs.CrowsPairsConfig(data=data, rescore_margin=threshold), progress=False)
    on = crows_items(attrs)
    near = [abs(it["more"] - it["less"]) < threshold for it in off]
    assert 0 < sum(near) < len(off) and len(spy.calls) == 1 and len(spy.calls[0]) == 2 * sum(near)
    for b, a, r, is_near in zip(off, on, ref, near):
        assert a["rescored"] is is_near
        want = r if is_near else b
        assert [a["more"], a["less"]] == pytest.approx([want["more"], want["less"]], abs=1e-5 if is_near else 0)
        assert ("rescored_from" in a) is is_near
    value = next(x.value for x in attrs if x.name == "bias/crows_pairs/all/pct_stereotype")
    assert value == crows_pairs.pct_stereotype(on)
    assert f"{sum(near)} of {len(off)} items" in next(x.note for x in attrs if x.name.endswith("/all/pct_stereotype"))


def test_calibration_near_ties_get_float32_scores(bf16, fp32, tmp_path):
    rows = [{"question": f"Question {i}: which word fits?", "choices": ["red", "blue", "green", "quiet"],
             "answer": i % 4} for i in range(12)]
    path = tmp_path / "mc.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    cfg = dict(datasets=[str(path)])
    off = calibration.run(bf16, calibration.CalibrationConfig(**cfg, rescore_margin=None), progress=False)[0].items
    ref = calibration.run(fp32, calibration.CalibrationConfig(**cfg), progress=False)[0].items
    # Reconstruct the bf16 margins from the confidences' softmax: score the options directly instead.
    from heirloom.profiling.multiple_choice import option_scores

    asked = [(r["question"], [" " + c for c in r["choices"]]) for r in rows]
    margins = [top2_margin(s) for s in option_scores(bf16, asked, progress=False)]
    threshold = split_threshold(margins)
    on = calibration.run(bf16, calibration.CalibrationConfig(**cfg, rescore_margin=threshold), progress=False)[0].items
    for b, a, r, m in zip(off, on, ref, margins):
        assert a["rescored"] is (m < threshold)
        want = r if m < threshold else b
        assert a["confidence"] == pytest.approx(want["confidence"], abs=1e-5 if m < threshold else 0)
        assert a["answer"] == want["answer"]


def test_float32_backend_does_nothing(fp32, shared_data, tmp_path, monkeypatch):
    Spy(fp32, monkeypatch, forbid=True)
    data = crows_csv(shared_data, tmp_path)
    wide = crows_pairs.run(fp32, crows_pairs.CrowsPairsConfig(data=data, rescore_margin=100.0), progress=False)
    plain = crows_pairs.run(fp32, crows_pairs.CrowsPairsConfig(data=data, rescore_margin=None), progress=False)
    assert [(a.name, a.value, a.note, a.items) for a in wide] == [(a.name, a.value, a.note, a.items) for a in plain]
    assert all("rescored" not in it for it in crows_items(wide))
    items = bbq_items(bbq.run(fp32, bbq_config(shared_data, rescore_margin=100.0), progress=False))
    assert all("rescored" not in it for it in items)


def test_option_off_is_the_old_behaviour(bf16, shared_data, monkeypatch):
    """None and 0 never call the float32 path, add no item keys and no note."""
    from heirloom.profiling.option_scoring import option_scores

    Spy(bf16, monkeypatch, forbid=True)
    runs = [bbq.run(bf16, bbq_config(shared_data, rescore_margin=m), progress=False) for m in (None, 0)]
    assert [(a.name, a.value, a.note, a.items) for a in runs[0]] == [(a.name, a.value, a.note, a.items)
                                                                     for a in runs[1]]
    items = bbq_items(runs[0])
    assert set(items[0]) == {"category", "example_id", "question_set", "condition", "polarity", "answer", "label",
                             "correct", "unknown", "biased", "scores"}
    assert all("re-scored" not in a.note for a in runs[0])
    rows = [r for r in bbq.load_bbq(bbq_config(shared_data).data) if r["example_id"] in
            {it["example_id"] for it in items}]
    direct = option_scores(bf16, [(bbq.PROMPT.format(context=r["context"], question=r["question"]),
                                   [r[f"ans{k}"] for k in range(3)]) for r in rows], "paper")
    assert [it["scores"] for it in items] == [[round(float(x), 5) for x in s] for s in direct]


class LowPrecisionServer(Backend):
    """A Backend that says it computes in bfloat16 and has no float32 path (like vllm)."""

    name = "fake"
    supports_loglikelihood = True
    dtype = "bfloat16"

    def generate(self, *a, **k):
        raise NotImplementedError

    def loglikelihood(self, requests, progress=True):
        return [LoglikResult(-float(len(c)) - (0.001 if "more" in c else 0.0), 1, False) for _, c in requests]


def test_backend_without_float32_path_skips_with_a_note(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame([("the more one", "the less one", "stereo", "age")] * 3,
                 columns=["sent_more", "sent_less", "stereo_antistereo", "bias_type"]).to_csv(path)
    attrs = crows_pairs.run(LowPrecisionServer("m"), crows_pairs.CrowsPairsConfig(data=str(path)), progress=False)
    assert "bfloat16 scores; near ties not re-scored: the fake backend has no float32 scorer" in attrs[0].note
    assert all("rescored" not in it for it in attrs[0].items)


def test_the_option_is_part_of_the_suite_hash_and_the_profile_records_counts(bf16, shared_data, tmp_path):
    from heirloom.profiling.suites import ProfileConfig, profile_model
    from heirloom.provenance import config_hash

    def digest(**kw):
        cfg = ProfileConfig(suites=["bias"], **kw)
        return config_hash({"model": "m", "suite": "bias", "config": cfg.suite_config("bias")})
    assert ProfileConfig().crows_pairs.rescore_margin == DEFAULT_MARGIN == ProfileConfig().bbq.rescore_margin
    assert len({digest(), digest(crows_pairs={"rescore_margin": None}), digest(bbq={"rescore_margin": 0.1})}) == 3

    data = crows_csv(shared_data, tmp_path)
    cfg = ProfileConfig(suites=["crows_pairs"], crows_pairs={"data": data, "rescore_margin": 10.0})
    profile = profile_model(bf16, cfg, tmp_path / "profile", progress=False)
    attr = profile.attributes["bias/crows_pairs/all/pct_stereotype"]
    assert "bfloat16 scores; 16 of 16 items with a margin under 10 re-scored in float32" in attr.note
    assert all(it["rescored"] for it in attr.items)
    assert profile.config["suite_configs"]["bias"]["crows_pairs"]["rescore_margin"] == 10.0
    with pytest.raises(Exception, match="rescore_margin"):
        crows_pairs.CrowsPairsConfig(rescore_margin=-1)
