"""Per-prompt selection: keep the best candidate of each prompt under an objective.

Vectorized over the whole pool (one sort, no Python loop over prompts). Rules:
- eligible = every objective metric is defined (a NaN there cannot win) and every
  constraint holds (a NaN in a constraint's metric does not hold);
- winner = the eligible candidate with the highest objective score; ties go to the
  lowest `sample_index`, then the alphabetically first `teacher` (the key is unique,
  so the result does not depend on row order); `random` draws one eligible candidate
  per prompt, seeded, in (prompt_id, teacher, sample_index) order;
- margin = winner's score - best score among the other eligible candidates (NaN
  when it is alone, and for `random`);
- prompts without an eligible candidate are returned in `unqualified` with the reason.
Summaries against the pool and the random baseline live in `summary.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import HeirloomError
from ..pools import KEY, validate_pool
from .columns import metric_columns, metric_values
from .objectives import LexicographicObjective, Objective, RandomObjective
from .spec import parse_objective

CORE = ("prompt_id", "prompt", "teacher", "sample_index", "completion")
LEAD = ["prompt_id", "prompt", "completion", "teacher", "sample_index", "source"]
ADDED = ["selection_score", "margin", "n_candidates", "n_qualified"]


@dataclass
class SelectionResult:
    objective: Objective
    seed: int
    selected: pd.DataFrame  # one row per prompt with a winner: the winner's row + ADDED columns
    candidates: pd.DataFrame  # every candidate: key, metric columns, selection_score, eligible, excluded, winner
    unqualified: pd.DataFrame  # prompt_id, prompt, n_candidates, reason
    stats: dict[str, Any] = field(default_factory=dict)


def _groups(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of each run of equal codes."""
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return starts, np.r_[starts[1:], len(sorted_codes)]


def _group_max(values: np.ndarray, mask: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, codes[mask], values[mask])
    return best[codes]


def _reasons(objective: Objective, get, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(eligible mask, first reason a candidate is excluded; '' when eligible)."""
    reason = np.full(n, "", dtype=object)
    eligible = np.ones(n, dtype=bool)
    # Filled in reverse priority so the first NaN objective metric ends up as the reason.
    for c in reversed(objective.constraints):
        ok = c.holds(get(c.metric))
        reason[~ok] = np.where(np.isnan(get(c.metric)[~ok]), f"NaN {c.metric} (constraint {c})", f"violates {c}")
        eligible &= ok
    for m in reversed(objective.metrics()):
        nan = np.isnan(get(m))
        reason[nan] = f"NaN {m}"
        eligible &= ~nan
    return eligible, reason


def _unqualified(codes, uniques, prompts, reason, n_cand, bad_groups) -> pd.DataFrame:
    sub = np.isin(codes, bad_groups)
    counts = pd.DataFrame({"g": codes[sub], "r": reason[sub]}).groupby(["g", "r"]).size().reset_index(name="n")
    counts["part"] = counts["r"] + " (" + counts["n"].astype(str) + ")"
    by = counts.groupby("g")
    n_reasons, first, joined = by.size(), by["r"].first(), by["part"].agg(", ".join)
    n = n_cand[bad_groups]
    why = np.where(n_reasons.loc[bad_groups].to_numpy() == 1,
                   "all " + pd.Series(n).astype(str).to_numpy() + " candidates: " + first.loc[bad_groups].to_numpy(),
                   "no eligible candidate: " + joined.loc[bad_groups].to_numpy())
    return pd.DataFrame({"prompt_id": np.asarray(uniques)[bad_groups], "prompt": prompts[bad_groups],
                         "n_candidates": n, "reason": why}, columns=["prompt_id", "prompt", "n_candidates", "reason"])


def select(pool: pd.DataFrame, objective, seed: int = 0, source: str = "pool") -> SelectionResult:
    """The best candidate of every prompt of `pool` under `objective` (spec string, dict or model)."""
    objective = parse_objective(objective)
    pool = validate_pool(pool.reset_index(drop=True), source, CORE)
    n = len(pool)
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = metric_values(pool, name, source)
        return cache[name]

    eligible, reason = _reasons(objective, get, n)
    score = objective.score(get, n).astype("float64")
    codes, uniques = pd.factorize(pool["prompt_id"], sort=False)
    n_groups = len(uniques)
    teacher_rank = pd.factorize(pool["teacher"], sort=True)[0]
    sidx = pool["sample_index"].to_numpy()
    filled = np.where(eligible, score, -np.inf)

    if isinstance(objective, RandomObjective):
        canon = np.lexsort((sidx, teacher_rank, pd.factorize(pool["prompt_id"], sort=True)[0]))
        draw = np.empty(n)
        draw[canon] = np.random.default_rng(seed).random(n)
        rank_keys = [draw]
    elif isinstance(objective, LexicographicObjective):
        survive = eligible.copy()
        signed = objective.signed(get)
        for values, tol in signed:
            survive &= values >= _group_max(values, survive, codes, n_groups) - tol
        rank_keys = [np.where(eligible, v, -np.inf) for v, _ in signed] + [survive.astype(float)]
        rank_keys = rank_keys[-1:] + rank_keys[:-1]  # survivors first, then the exact tuple
    else:
        rank_keys = [filled]
    # np.lexsort sorts by its last key first: prompt, eligibility, objective (desc), tie-break.
    order = np.lexsort((teacher_rank, sidx, *[-k for k in reversed(rank_keys)], ~eligible, codes))
    starts, ends = _groups(codes[order])
    winner = order[starts]

    by_score = order if len(rank_keys) == 1 and rank_keys[0] is filled else \
        np.lexsort((teacher_rank, sidx, -filled, ~eligible, codes))
    best = by_score[starts]
    nxt = by_score[np.minimum(starts + 1, n - 1)]
    has_second = (starts + 1 < ends) & eligible[nxt]
    rival = np.where(winner == best, np.where(has_second, score[nxt], np.nan), score[best])
    margin = score[winner] - rival

    n_cand = np.bincount(codes, minlength=n_groups)
    n_ok = np.bincount(codes, weights=eligible, minlength=n_groups).astype(int)
    good = eligible[winner]
    sel = pool.iloc[winner[good]].reset_index(drop=True)
    sel = sel.assign(selection_score=score[winner[good]], margin=margin[good],
                     n_candidates=n_cand[good], n_qualified=n_ok[good])
    lead = [c for c in LEAD if c in sel.columns]
    metrics = [c for c in metric_columns(pool) if c not in lead]
    rest = [c for c in sel.columns if c not in lead + metrics + ADDED]
    selected = sel[lead + metrics + ADDED + rest]

    is_winner = np.zeros(n, dtype=bool)
    is_winner[winner[good]] = True
    cols = KEY + (["source"] if "source" in pool.columns else []) + metric_columns(pool)
    candidates = pool[cols].assign(selection_score=score, eligible=eligible, excluded=reason, winner=is_winner)

    prompts = pool["prompt"].to_numpy()[order[starts]]
    unq = _unqualified(codes, uniques, prompts, reason, n_cand, np.flatnonzero(~good))
    excluded = pd.Series(reason[~eligible]).value_counts()
    stats = {
        "objective": objective.describe(), "seed": seed, "n_candidates": n, "n_prompts": n_groups,
        "n_selected": int(good.sum()), "n_unqualified": int((~good).sum()),
        "n_excluded": int((~eligible).sum()), "excluded_by_reason": {k: int(v) for k, v in excluded.items()},
        "n_ties": int(np.sum(margin[good] == 0)),
        "n_single_eligible": int(np.sum(n_ok[good] == 1)),
    }
    if not good.any():
        stats["note"] = "no prompt has an eligible candidate"
    return SelectionResult(objective, seed, selected, candidates, unq, stats)


def require_selected(result: SelectionResult, source: str) -> None:
    """Fail when nothing was selected (every prompt unqualified)."""
    if result.selected.empty:
        first = result.unqualified["reason"].iloc[0] if len(result.unqualified) else "empty pool"
        raise HeirloomError(f"{source}: no prompt has an eligible candidate (e.g. {first})")
