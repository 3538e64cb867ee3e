"""Next-token sampling with one random stream per row.

Temperature, top-k and top-p (nucleus) are applied as in transformers' logits
warpers; the draw is inverse-CDF sampling (in vocabulary order) with one uniform
number per row from that row's own `torch.Generator`, so a sample's randomness
never depends on which other rows share its batch. Top-p alone (the common
setting) takes a faster path to the same draw (`_nucleus_draw`).
"""

from __future__ import annotations

from .base import SamplingParams


def warp(logits, params: SamplingParams):
    """Logits after temperature, top-k and top-p filtering (filtered entries = -inf)."""
    import torch

    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        logits = _top_p(logits, params.top_p)
    return logits


# Sorting the whole vocabulary every step is slow on a CPU; the nucleus almost always
# lies within the most likely few hundred tokens, so look there first.
_NUCLEUS_CANDIDATES = 1024


def _top_p(logits, top_p: float):
    import torch

    if logits.shape[-1] <= _NUCLEUS_CANDIDATES:
        return _sorted_top_p(logits, top_p)
    top_logits, order = torch.topk(logits, _NUCLEUS_CANDIDATES, dim=-1)  # sorted, descending
    probs = top_logits.softmax(-1) * _mass(logits, top_logits)
    fits = probs.sum(-1) >= top_p  # the nucleus lies within the candidates: the result is exact
    out = _keep_nucleus(logits, top_logits, order, probs, top_p)
    if not bool(fits.all()):  # flat rows: sort their whole vocabulary
        rest = ~fits
        out[rest] = _sorted_top_p(logits[rest], top_p)
    return out


def _sorted_top_p(logits, top_p: float):
    import torch

    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    return _keep_nucleus(logits, sorted_logits, order, sorted_logits.softmax(-1), top_p)


def _mass(logits, top_logits):
    """Share of the full softmax mass held by `top_logits` (per row)."""
    return (top_logits.logsumexp(-1) - logits.logsumexp(-1)).exp()[:, None]


def _keep_nucleus(logits, sorted_logits, order, probs, top_p: float):
    import torch

    # Drop a token when the mass *before* it already reaches top_p (the top token always stays).
    drop = probs.cumsum(-1) - probs >= top_p
    kept = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, kept)


def sample_next(logits, params: SamplingParams, generators):
    """One token id per row of `logits` ([rows, vocab], float32)."""
    import torch

    if params.greedy:
        return logits.argmax(-1)
    u = torch.cat([torch.rand(1, generator=g, device=logits.device) for g in generators])
    if params.top_k == 0 and params.top_p < 1.0:
        return _nucleus_draw(logits, params, u)
    return _inverse_cdf(warp(logits, params), u)


def _inverse_cdf(warped, u):
    """Inverse-CDF draw over the whole vocabulary, in vocabulary order."""
    import torch

    cdf = warped.softmax(-1).cumsum(-1)
    idx = torch.searchsorted(cdf, (u[:, None] * cdf[:, -1:]).contiguous(), right=True).squeeze(-1)
    return idx.clamp(max=warped.shape[-1] - 1)  # first index with cdf > u: zero-mass tokens are never drawn


# Candidates tried, in turn, for top-p alone: most steps of a trained model have a nucleus of
# a few tokens, and a top-64 is several times cheaper than a top-1,024 on a CPU.
_NUCLEUS_STEPS = (64, _NUCLEUS_CANDIDATES)


def _nucleus_draw(logits, params: SamplingParams, u):
    """The same draw as `_inverse_cdf(warp(...))` for top-p sampling, without full-vocabulary
    sorts, softmaxes and cumulative sums: the nucleus is found among the top candidates
    (exact whenever their mass reaches top_p, else more candidates, else the full vocabulary)
    and the draw walks the kept tokens in vocabulary order, as the full draw does."""
    import torch

    scaled = logits if params.temperature == 1.0 else logits / params.temperature
    lse = scaled.logsumexp(-1, keepdim=True)
    out = torch.empty(len(scaled), dtype=torch.long, device=scaled.device)
    rows = torch.arange(len(scaled), device=scaled.device)
    for c in _NUCLEUS_STEPS:
        if c >= scaled.shape[-1] or len(rows) == 0:
            break
        vals, idx = torch.topk(scaled[rows], c, dim=-1)  # sorted, descending
        probs = (vals - lse[rows]).exp()
        fits = probs.sum(-1) >= params.top_p
        if bool(fits.any()):
            p = probs[fits]
            p = p.masked_fill(p.cumsum(-1) - p >= params.top_p, 0.0)  # as _keep_nucleus drops them
            order, perm = idx[fits].sort(-1)  # vocabulary order
            p = p.gather(-1, perm)
            cdf = p.cumsum(-1)
            pos = torch.searchsorted(cdf, (u[rows[fits], None] * cdf[:, -1:]).contiguous(), right=True)
            out[rows[fits]] = order.gather(-1, pos.clamp(max=c - 1)).squeeze(-1)
        rows = rows[~fits]
    if len(rows):  # flat rows: the full-vocabulary draw
        out[rows] = _inverse_cdf(_sorted_top_p(scaled[rows], params.top_p), u[rows])
    return out
