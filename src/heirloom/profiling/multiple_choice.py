"""What the log-likelihood suites (BBQ, CrowS-Pairs, calibration) share.

- A *scorer* is anything with `loglikelihood(requests, progress) -> list[LoglikResult]`: a
  `Backend` (build one with `generation.make_backend`; it owns batch size and device).
- `option_scores` turns (context, options) questions into per-option mean token
  log-likelihoods with one `loglikelihood` call, so the backend sees every request at once
  and can share contexts between options.
- `stratified_sample` draws a seeded subsample that keeps the strata's proportions.
- `reject_removed(section)`: the one-line error for config fields that were removed.

Left out: few-shot prompts, letter-choice ("A/B/C") scoring, acc_norm-style byte normalization.
"""

from __future__ import annotations

from typing import Hashable, Protocol, Sequence

import numpy as np

from ..errors import HeirloomError
from ..generation.base import LoglikResult


class Scorer(Protocol):
    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]: ...


# Fields removed from the suite configs, and where their job went.
REMOVED = {"batch_size": "a backend sets its own: ProfileConfig.batch_size or heirloom profile --batch-size"}


def reject_removed(section: str):
    """A before-validator for a part config: a removed field is a one-line error naming it."""
    from pydantic import model_validator

    def check(cls, data):
        for key, why in REMOVED.items():
            if isinstance(data, dict) and key in data:
                raise ValueError(f"{section}.{key} was removed ({why})")
        return data
    return model_validator(mode="before")(classmethod(check))


def as_scorer(obj) -> Scorer:
    """`obj` itself when it scores log-likelihoods (a Backend), else a one-line error."""
    if callable(getattr(obj, "loglikelihood", None)):
        return obj
    raise HeirloomError(f"{type(obj).__name__} cannot score log-likelihoods "
                        "(pass a Backend, e.g. heirloom.make_backend('smollm2-135m'))")


def mean_logprobs(scorer: Scorer, requests: Sequence[tuple[str, str]], progress: bool = True) -> np.ndarray:
    """Mean token log-likelihood of each request's continuation."""
    results = scorer.loglikelihood(list(requests), progress=progress)
    if len(results) != len(requests):
        raise HeirloomError(f"scorer returned {len(results)} results for {len(requests)} requests")
    out = np.empty(len(results))
    for i, r in enumerate(results):
        if r.num_tokens < 1:
            raise HeirloomError(f"request {i}: the continuation {requests[i][1][:40]!r} was scored over 0 tokens")
        out[i] = r.logprob / r.num_tokens
    return out


def option_scores(scorer: Scorer, questions: Sequence[tuple[str, Sequence[str]]],
                  progress: bool = True) -> list[np.ndarray]:
    """Per question, the mean token log-likelihood of each option given the context.

    `questions` holds (context, continuations); continuations carry their own leading space.
    """
    requests = [(ctx, opt) for ctx, opts in questions for opt in opts]
    flat = mean_logprobs(scorer, requests, progress)
    out, start = [], 0
    for _, opts in questions:
        out.append(flat[start:start + len(opts)])
        start += len(opts)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - np.max(x))
    return z / z.sum()


def stratified_sample(keys: Sequence[Hashable], size: int | None, seed: int) -> list[int]:
    """Indices of a seeded subsample of `size` rows with the strata (`keys`) in proportion.

    Each stratum gets floor(size x share) rows; the rows left over go to the strata with
    the largest remainders (ties: the stratum seen first). Returned in the original order;
    all rows when `size` is None or at least the number of rows.
    """
    n = len(keys)
    if size is None or size >= n:
        return list(range(n))
    strata: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        strata.setdefault(k, []).append(i)
    quota = {k: size * len(v) / n for k, v in strata.items()}
    take = {k: int(q) for k, q in quota.items()}
    left = size - sum(take.values())
    for k in sorted(strata, key=lambda k: take[k] - quota[k])[:left]:  # stable sort: first seen wins ties
        take[k] += 1
    rng = np.random.default_rng(seed)
    chosen = [int(i) for k, rows in strata.items() for i in rng.choice(rows, size=take[k], replace=False)]
    return sorted(chosen)
