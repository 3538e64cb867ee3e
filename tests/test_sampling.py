"""Next-token sampling against its definition and against transformers' warpers."""

import pytest
import torch

from heirloom.generation.base import SamplingParams
from heirloom.generation.sampling import sample_next, warp


def _logits(rows=3, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * 2


@pytest.mark.parametrize("top_k,top_p", [(0, 0.9), (5, 1.0), (10, 0.7), (0, 0.3)])
def test_warp_matches_transformers(top_k, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = _logits()
    params = SamplingParams(temperature=0.7, top_k=top_k, top_p=top_p)
    ref = TemperatureLogitsWarper(0.7)(None, logits.clone())
    if top_k:
        ref = TopKLogitsWarper(top_k)(None, ref)
    if top_p < 1:
        ref = TopPLogitsWarper(top_p)(None, ref)
    ours = warp(logits, params)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    assert torch.allclose(ours[~torch.isinf(ours)], ref[~torch.isinf(ref)])


def test_empirical_frequencies_match_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0]])
    params = SamplingParams(temperature=1.0)
    gens = [torch.Generator().manual_seed(1)]
    draws = torch.stack([sample_next(logits, params, gens) for _ in range(20000)]).flatten()
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = logits.softmax(-1)[0]
    assert torch.allclose(freq, expected, atol=0.01)
    assert freq[4] == 0  # a token with ~0 mass is never drawn


def test_filtered_tokens_never_drawn_and_greedy():
    logits = _logits(rows=4, vocab=30, seed=3)
    params = SamplingParams(temperature=1.0, top_k=3)
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    allowed = torch.topk(logits, 3, dim=-1).indices
    for _ in range(200):
        tok = sample_next(logits, params, gens)
        assert all(tok[r] in allowed[r] for r in range(4))
    assert torch.equal(sample_next(logits, SamplingParams(temperature=0), gens), logits.argmax(-1))


def test_each_row_has_its_own_stream():
    logits = _logits(rows=2, vocab=40)
    params = SamplingParams()
    a = [sample_next(logits, params, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)])
         for _ in range(1)]
    # The same generator seed gives the same draw whatever row it sits in or what shares the batch.
    solo = sample_next(logits[1:], params, [torch.Generator().manual_seed(8)])
    assert a[0][1] == solo[0]


@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])
def test_top_p_on_a_real_vocabulary_matches_transformers(scale):
    """Large vocabularies take the top-k shortcut when the nucleus fits in it, else the full sort."""
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = _logits(rows=4, vocab=49152, seed=2) * scale
    logits[0] *= 4  # rows of one batch can take different paths
    ours = warp(logits, SamplingParams(top_p=0.9))
    ref = TopPLogitsWarper(0.9)(None, logits.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fast_top_p_draws_the_full_vocabulary_draw(temperature):
    """Top-p alone finds the nucleus among the top 64, then 1,024, candidates, else the full vocabulary;
    each row must get the token the plain full-vocabulary inverse-CDF draw gives for its uniform number."""
    from heirloom.generation.sampling import _inverse_cdf

    g = torch.Generator().manual_seed(4)
    vocab = 5000
    scales = torch.tensor([12.0] * 8 + [4.0] * 8 + [1.5] * 8 + [0.05] * 8)  # nucleus of ~1, ~tens, ~hundreds, ~all
    params = SamplingParams(temperature=temperature, top_p=0.9)
    for step in range(20):
        logits = torch.randn(len(scales), vocab, generator=g) * scales[:, None]
        seeds = [1000 * step + r for r in range(len(scales))]
        fast = sample_next(logits, params, [torch.Generator().manual_seed(s) for s in seeds])
        u = torch.cat([torch.rand(1, generator=torch.Generator().manual_seed(s)) for s in seeds])
        assert torch.equal(fast, _inverse_cdf(warp(logits, params), u))
