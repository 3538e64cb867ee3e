"""Continuous batching (generation/decode.py) and its KV buffer, on a tiny random Llama in float64.

Rows end early here because a hook raises the end-of-sequence logit, so finished rows are
refilled with waiting prompts; every sample must equal the one the prompt gets alone.
"""

import functools
import warnings

import pytest
import torch

from heirloom.generation import decode as decode_mod
from heirloom.generation.base import SamplingParams
from heirloom.generation.hf import HFBackend
from heirloom.generation.kv_buffer import BufferedLayer

PROMPTS = ["Hi", "Tell me a long story about a dragon and a very small village by the sea.", "2+2?",
           "Name a colour.", "What is the capital of France, and why is it there?", "ok", "Count to ten.",
           "Why is the sky blue?"]


@pytest.fixture(scope="module")
def eos_backend(tiny_model_dir):
    """float64 backend whose EOS logit is raised, so samples end after a few tokens, at random."""
    backend = HFBackend(str(tiny_model_dir), dtype="float64")
    eos = backend.eos_ids[0]

    def raise_eos(module, args, output):
        output[..., eos] = output.logsumexp(dim=-1) - 1.1  # p(EOS) ~ 1/4 a step
        return output

    backend.model.lm_head.register_forward_hook(raise_eos)
    return backend


def texts(out):
    return [[(c.text, c.num_tokens, c.finish_reason, c.seed) for c in cs] for cs in out]


def test_refilled_rows_give_the_samples_each_prompt_gets_alone(eos_backend, monkeypatch):
    params = SamplingParams(max_new_tokens=12, seed=3, top_p=0.9)
    alone = [eos_backend.generate([p], k=3, params=params, progress=False)[0] for p in PROMPTS]
    refills = []
    original = decode_mod._Decoder._refill
    monkeypatch.setattr(decode_mod._Decoder, "_refill", lambda self, ps: (refills.append(ps), original(self, ps)))
    eos_backend.batch_size = 6  # 2 prompts x k=3 at a time: the other 6 prompts wait for free rows
    try:
        together = eos_backend.generate(PROMPTS, k=3, params=params, progress=False)
    finally:
        eos_backend.batch_size = None
    assert refills, "no finished row was refilled"
    assert texts(together) == texts(alone)
    finishes = {c.finish_reason for cs in together for c in cs}
    assert finishes == {"stop", "length"}  # rows really ended at different steps


def test_a_longer_prompt_entering_later_widens_the_window(eos_backend, monkeypatch):
    """decode() in ascending length order: a refill prompt is longer than the running window."""
    widened = []
    original = BufferedLayer.widen
    monkeypatch.setattr(BufferedLayer, "widen", lambda self, n: (widened.append(n), original(self, n)))
    order = sorted(range(len(PROMPTS)), key=lambda i: len(eos_backend._encode(PROMPTS[i], None, i, SamplingParams())))
    params = SamplingParams(max_new_tokens=10, seed=1)
    encoded = [eos_backend._encode(PROMPTS[i], None, i, params) for i in order]
    seeds = [[100 * i + j for j in range(2)] for i in range(len(order))]
    common = dict(pad_id=eos_backend.tokenizer.pad_token_id, eos_ids=eos_backend.eos_ids, hit_stop=lambda t: False)
    with torch.inference_mode():
        batched = decode_mod.decode(eos_backend.model, encoded, seeds, params, rows=4, **common)
        alone = [decode_mod.decode(eos_backend.model, [e], [s], params, rows=2, **common)[0]
                 for e, s in zip(encoded, seeds)]
    assert [[s.tokens for s in ss] for ss in batched] == [[s.tokens for s in ss] for ss in alone]
    assert [[s.seed for s in ss] for ss in batched] == seeds
    assert widened


def test_prompts_of_very_different_lengths_are_prefilled_apart(eos_backend, monkeypatch):
    """One long prompt among short ones: each length group is prefilled at its own width (the
    prefill never pads the short prompts to the long one), and the samples are the ones alone."""
    assert decode_mod.length_groups([100, 60, 50, 49, 10, 9]) == [[0, 1, 2], [3], [4, 5]]
    widths = []
    original = type(eos_backend.model).forward

    @functools.wraps(original)  # keeps the signature, which names the cache keyword
    def forward(self, input_ids=None, **kw):
        widths.append(tuple(input_ids.shape))
        return original(self, input_ids=input_ids, **kw)

    monkeypatch.setattr(type(eos_backend.model), "forward", forward)
    long_prompt = " ".join(PROMPTS * 3)
    prompts = [long_prompt, "Hi", "ok", "2+2?"]
    params = SamplingParams(max_new_tokens=8, seed=5)
    alone = [eos_backend.generate([p], k=2, params=params, progress=False)[0] for p in prompts]
    widths.clear()
    together = eos_backend.generate(prompts, k=2, params=params, progress=False)
    assert texts(together) == texts(alone)
    prefills = [w for w in widths if w[1] > 1]
    n_long = len(eos_backend._encode(long_prompt, None, 0, params))
    assert prefills == [(1, n_long + 1), (3, max(len(eos_backend._encode(p, None, 0, params)) for p in prompts[1:]) + 1)]


def test_progress_counts_every_sample_once(eos_backend):
    seen = []
    params = SamplingParams(max_new_tokens=6)
    encoded = [eos_backend._encode(p, None, i, params) for i, p in enumerate(PROMPTS[:5])]
    with torch.inference_mode():
        decode_mod.decode(eos_backend.model, encoded, [[i, i + 50] for i in range(5)], params, rows=4,
                          pad_id=0, eos_ids=eos_backend.eos_ids, hit_stop=lambda t: False, on_finish=seen.append)
    assert sorted((s.prompt, s.index) for s in seen) == [(p, j) for p in range(5) for j in range(2)]


def test_generation_and_scoring_warn_nothing(tiny_model_dir):
    """No FutureWarning/DeprecationWarning (e.g. transformers' `past_key_values` deprecation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        backend = HFBackend(str(tiny_model_dir), dtype="float32")
        backend.generate(PROMPTS[:3], k=2, params=SamplingParams(max_new_tokens=5), progress=False)
        backend.loglikelihood([("Hi", " there"), ("Hi", " you")], progress=False)


def test_quiet_generation_and_scoring_print_nothing(tiny_model_dir, capfd):
    backend = HFBackend(str(tiny_model_dir), dtype="float32")  # loading shows no transformers bar either
    backend.generate(PROMPTS[:2], k=1, params=SamplingParams(max_new_tokens=3), progress=False)
    backend.loglikelihood([("Hi", " there")], progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_dtype_is_resolved_and_recorded(tiny_model_dir):
    from heirloom.models.precision import resolve_dtype

    assert HFBackend(str(tiny_model_dir), dtype="float32").dtype == "float32"
    auto = HFBackend(str(tiny_model_dir))
    assert auto.dtype == str(resolve_dtype("auto", "cpu")).removeprefix("torch.") == str(auto.model.dtype)[6:]


def test_buffered_layer_trim_widen_and_write_rows():
    g = torch.Generator().manual_seed(0)
    k0, v0 = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g)
    layer = BufferedLayer(capacity=6)
    layer.update(k0, v0)
    step_k, step_v = torch.randn(3, 2, 1, 4, generator=g), torch.randn(3, 2, 1, 4, generator=g)
    layer.update(step_k, step_v)
    full_k = torch.cat([k0, step_k], dim=2)
    assert torch.equal(layer.keys, full_k) and layer.get_seq_length() == 6
    layer.trim(2)
    assert torch.equal(layer.keys, full_k[:, :, 2:]) and layer.get_seq_length() == 4
    layer.update(step_k, step_v)  # past capacity: the visible columns move to a new buffer
    assert torch.equal(layer.keys, torch.cat([full_k[:, :, 2:], step_k], dim=2))
    layer.widen(3)  # nothing trimmed is left in the new buffer: zeros on the left
    assert layer.get_seq_length() == 8 and torch.equal(layer.keys[:, :, :3], torch.zeros(3, 2, 3, 4))
    new_k, new_v = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    before = layer.keys.clone()
    layer.write_rows(torch.tensor([1]), new_k, new_v)
    assert torch.equal(layer.keys[1, :, -4:], new_k[0]) and torch.equal(layer.values[1, :, -4:], new_v[0])
    assert torch.equal(layer.keys[[0, 2]], before[[0, 2]]) and torch.equal(layer.keys[1, :, :4], before[1, :, :4])
    before = layer.keys.clone()
    layer.append_rows(new_k, new_v)  # a row prefilled apart: right-aligned, zeros on its left
    assert layer.keys.shape[0] == 4 and torch.equal(layer.keys[:3], before)
    assert torch.equal(layer.keys[3, :, -4:], new_k[0]) and torch.equal(layer.values[3, :, -4:], new_v[0])
    assert torch.equal(layer.keys[3, :, :-4], torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="do not fit"):
        layer.append_rows(torch.randn(1, 2, 9, 4), torch.randn(1, 2, 9, 4))
