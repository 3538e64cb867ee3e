"""Near-tie re-scoring: log-likelihood decisions made in bf16/fp16 redone in float32 where they are close.

In bfloat16 a mean token log-probability is off by ~0.01 nats (and depends on what it was
batched with), so a decision between options closer than that can flip against float32
(docs/benchmarks.md, "bf16 on the CPU"). So a suite (BBQ, CrowS-Pairs, calibration) scores
every item once in the backend's dtype, then `rescore_near_ties` re-scores the items whose
*decision margin* is below `rescore_margin` with float32 weights and computation, and their
float32 scores replace the low-precision ones for the whole item (all its options, so an
item is never scored half in one precision). The decisions then agree with float32 wherever
the low-precision error is smaller than the margin, and the rest keeps bf16's speed.

- The margin is what the suite decides on: best minus second-best option (`top2_margin`:
  BBQ, calibration), |more - less| for a CrowS-Pairs pair.
- The float32 scores come from the backend's `float32_loglikelihood(requests, progress)`
  (the hf backend: the model reloaded in float32 for that call). A backend without it
  (openai, vllm, ray) keeps its scores, and the attributes' note says so.
- Nothing happens when the option is None/0, the backend already computes in
  float32/float64, or the scorer is no `Backend` and has no float32 path (a test's table).
  Otherwise every item gets `rescored: bool`, a re-scored one also `rescored_from` (its
  low-precision scores), and `Rescored.note(items)` says how many.

Left out: re-scoring in float64, margins in other units than mean token log-probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

# Measured on the embedded model (docs/benchmarks.md): every bf16 flip but one had a bf16 margin
# under 0.045 nats; 0.05 re-scored 15% of CrowS-Pairs pairs and 3% of BBQ questions, and 100% of
# BBQ and 99.9% of CrowS-Pairs decisions then equal float32's (99.2% and 97.7% without).
DEFAULT_MARGIN = 0.05
FULL_PRECISION = ("float32", "float64")


def rescore_field():
    """The `rescore_margin` field every log-likelihood suite config shares (part of its hash)."""
    from pydantic import Field

    return Field(DEFAULT_MARGIN, ge=0, description=(
        "re-score in float32 the items whose decision margin (mean token log-probability, best vs second "
        "option) is below this, when the backend computes in bfloat16/float16; None or 0: never (see "
        "profiling/tie_rescoring.py)"))


def top2_margin(scores: Sequence[float]) -> float:
    """Best minus second-best score (0 on a tie, inf with a single option)."""
    top = np.sort(np.asarray(scores, dtype=float))[::-1]
    return float(top[0] - top[1]) if len(top) > 1 else float("inf")


def pair_margin(scores: Sequence[float]) -> float:
    """|first - second| (a CrowS-Pairs pair: more vs less stereotypical)."""
    return abs(float(scores[0]) - float(scores[1]))


def compute_dtype(backend) -> str | None:
    """The dtype the backend computes in ('bfloat16', 'float32', ...), None when it does not say."""
    dtype = getattr(backend, "dtype", None)
    return None if dtype is None else str(dtype).removeprefix("torch.")


class Float32Scorer:
    """A scorer (`loglikelihood`, `tokenizer`) that computes through the backend's float32 path."""

    def __init__(self, backend):
        self.backend = backend
        self.tokenizer = getattr(backend, "tokenizer", None)

    def loglikelihood(self, requests, progress: bool = True):
        return self.backend.float32_loglikelihood(list(requests), progress=progress)


@dataclass
class Rescored:
    scores: list  # per item, its scores (float32 where re-scored)
    applied: bool = False  # the items carry `rescored` flags (a low-precision backend, option on)
    originals: dict = field(default_factory=dict)  # re-scored item index -> its low-precision scores
    dtype: str | None = None
    threshold: float | None = None
    skipped: str = ""  # why a low-precision backend's near-ties were not re-scored

    def mark(self, items: list[dict]) -> None:
        """Flag every item (`rescored`), and keep a re-scored item's low-precision scores."""
        if not self.applied:
            return
        for i, it in enumerate(items):
            it["rescored"] = i in self.originals
            if i in self.originals:
                it["rescored_from"] = [round(float(x), 5) for x in self.originals[i]]

    def note(self, items: Sequence[dict]) -> str:
        """What the attribute over `items` went through, for its note ('' when nothing)."""
        if self.skipped:
            return f"{self.dtype or 'backend-precision'} scores; near ties not re-scored: {self.skipped}"
        if not self.applied:
            return ""
        n = sum(bool(it.get("rescored")) for it in items)
        return (f"{self.dtype} scores; {n} of {len(items)} items with a margin under {self.threshold:g} "
                "re-scored in float32")


def rescore_near_ties(backend, scores: Sequence, threshold: float | None, margin: Callable[[Sequence[float]], float],
                      score_items: Callable[[list[int], Float32Scorer], list]) -> Rescored:
    """Re-score in float32 the items whose `margin(scores[i])` < `threshold` (see the module docstring).

    `score_items(indices, scorer)` scores those items again, the suite's own way, with `scorer`
    and returns their scores in the same order.
    """
    scores = list(scores)
    dtype = compute_dtype(backend)
    if not threshold or dtype in FULL_PRECISION:
        return Rescored(scores, dtype=dtype, threshold=threshold)
    if not callable(getattr(backend, "float32_loglikelihood", None)):
        from ..generation.base import Backend

        if not isinstance(backend, Backend):  # a bare scorer (a test's table): nothing to say about it
            return Rescored(scores, dtype=dtype, threshold=threshold)
        return Rescored(scores, dtype=dtype, threshold=threshold,
                        skipped=f"the {backend.name} backend has no float32 scorer")
    near = [i for i, s in enumerate(scores) if margin(s) < threshold]
    out = Rescored(scores, applied=True, dtype=dtype, threshold=threshold)
    if near:
        fresh = score_items(near, Float32Scorer(backend))
        if len(fresh) != len(near):
            from ..errors import HeirloomError

            raise HeirloomError(f"float32 re-scoring returned {len(fresh)} items for {len(near)}")
        for i, s in zip(near, fresh):
            out.originals[i], scores[i] = scores[i], s
    return out
