"""Compare profiles: change of every shared attribute, with a bootstrap CI.

For each attribute present in the base and in another profile: both values, the
absolute change (other - base) and the percent change 100 x (other - base) / |base|
(|base| so the sign always says "went up" or "went down", also for bias scores below
0). A base of 0 or NaN leaves the percent change NaN, with a note.

The 95% CI of the percent change is a percentile bootstrap: resample the items with
replacement, recompute the attribute's own statistic (any statistic: mean, EMT over
per-prompt sample lists, judge agreement over verdict records...), `n_boot` times.
Resampling is *paired* (the same item indices for both models) when the two profiles
have the same number of items and ran that suite with the same suite config, i.e. on
the same prompts in the same order; pairing removes the between-prompt variance that
both models share, so the CI is tighter. Otherwise each profile is resampled on its own.
Replicates where the statistic or the percent change is undefined are dropped from the
CI (counted in the note). Each attribute gets its own random stream from (seed, name),
so results do not depend on which other attributes are compared. A statistic declared
`statistics.grouped_by` a key (BBQ: question sets of 4) resamples whole groups instead of
items (a cluster bootstrap); paired, both profiles take the same groups.
Left out: multiple-comparison correction, BCa intervals.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .profile import Attribute, Profile
from .statistics import group_indices, per_item_values, resolve

COLUMNS = ["model", "attribute", "suite", "base", "value", "abs_change", "pct_change", "ci_low", "ci_high",
           "paired", "n_base", "n_other", "higher_is_better", "unit", "note"]


def pct_change(base: float, other: float) -> float:
    if not np.isfinite(base) or base == 0 or not np.isfinite(other):
        return float("nan")
    return 100.0 * (other - base) / abs(base)


def _aligned(base: Profile, other: Profile, a: Attribute, b: Attribute) -> bool:
    if len(a.items) != len(b.items):
        return False
    cb = base.config.get("suite_configs", {}).get(a.suite)
    co = other.config.get("suite_configs", {}).get(b.suite)
    return cb is not None and cb == co


def resample(stat_name: str, items: Sequence[Any], n_boot: int, rng: np.random.Generator):
    """`n_boot` rows of resampled item indices: items with replacement, or whole groups when
    the statistic is grouped (an array when every group has the same size, else a list)."""
    groups = group_indices(resolve(stat_name), items)
    if groups is None:
        return rng.integers(0, len(items), size=(n_boot, len(items)))
    draws = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    if len({len(g) for g in groups}) == 1:
        return np.stack(groups)[draws].reshape(n_boot, -1)
    return [np.concatenate([groups[j] for j in row]) for row in draws]


def _stat_rows(stat_name: str, items: Sequence[Any], idx) -> np.ndarray:
    """The statistic on each row of resampled indices (an array, or a list of ragged rows)."""
    stat = resolve(stat_name)
    try:
        per = per_item_values(stat, items)
    except (TypeError, ValueError):
        per = None
    if (per is not None or stat_name == "median") and isinstance(idx, np.ndarray):
        arr = per if per is not None else np.asarray(items, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicates -> NaN
            return (np.nanmedian if per is None else np.nanmean)(arr[idx], axis=1)
    return np.array([stat([items[i] for i in row]) for row in idx], dtype=float)


def bootstrap_pct_change(a: Attribute, b: Attribute, paired: bool, n_boot: int,
                         rng: np.random.Generator) -> tuple[float, float, int]:
    """(low, high, replicates used) of the 95% percentile CI of the percent change."""
    if not a.items or not b.items or n_boot < 1:
        return float("nan"), float("nan"), 0
    idx_a = resample(a.statistic, a.items, n_boot, rng)
    idx_b = idx_a if paired else resample(b.statistic, b.items, n_boot, rng)
    sa = _stat_rows(a.statistic, a.items, idx_a)
    sb = _stat_rows(b.statistic, b.items, idx_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(sa != 0, 100.0 * (sb - sa) / np.abs(sa), np.nan)
    pct = pct[np.isfinite(pct)]
    if pct.size == 0:
        return float("nan"), float("nan"), 0
    low, high = np.percentile(pct, [2.5, 97.5])
    return float(low), float(high), int(pct.size)


def compare(base: Profile, others: Sequence[Profile], n_boot: int = 1000, seed: int = 0,
            attributes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (other profile, attribute in both), in the base profile's attribute order."""
    rows = []
    for other in others:
        for name, a in base.attributes.items():
            b = other.attributes.get(name)
            if b is None or (attributes and not any(_matches(name, pat) for pat in attributes)):
                continue
            notes = []
            change = b.value - a.value if np.isfinite(a.value) and np.isfinite(b.value) else float("nan")
            pct = pct_change(a.value, b.value)
            if a.value == 0:
                notes.append("base is 0: percent change undefined")
            elif not (np.isfinite(a.value) and np.isfinite(b.value)):
                notes.append("value undefined in " + ("base" if not np.isfinite(a.value) else "other"))
            paired = _aligned(base, other, a, b)
            rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
            low, high, used = bootstrap_pct_change(a, b, paired, n_boot, rng) if np.isfinite(pct) else (
                float("nan"), float("nan"), 0)
            if np.isfinite(pct) and used < n_boot:
                notes.append(f"{n_boot - used} of {n_boot} bootstrap replicates undefined")
            notes += [f"base: {a.note}"] * bool(a.note) + [f"other: {b.note}"] * bool(b.note)
            rows.append({"model": other.model, "attribute": name, "suite": a.suite, "base": a.value,
                         "value": b.value, "abs_change": change, "pct_change": pct, "ci_low": low, "ci_high": high,
                         "paired": paired, "n_base": a.n, "n_other": b.n, "higher_is_better": a.higher_is_better,
                         "unit": a.unit, "note": "; ".join(notes)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _matches(name: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(name, pattern) or name.startswith(pattern.rstrip("/") + "/") or name == pattern


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    if pct:
        return f"{x:+.1f}%"
    return f"{x:.4g}"


def render(df: pd.DataFrame, fmt: str = "markdown") -> str:
    """The comparison as a markdown table (or plain aligned text with fmt='text')."""
    head = ["model", "attribute", "base", "value", "change", "% change", "95% CI (%)", "paired"]
    body = [[r.model, r.attribute, _fmt(r.base), _fmt(r.value),
             _fmt(r.abs_change) if not np.isfinite(r.abs_change) else f"{r.abs_change:+.4g}",
             _fmt(r.pct_change, pct=True),
             "n/a" if not np.isfinite(r.ci_low) else f"[{r.ci_low:+.1f}, {r.ci_high:+.1f}]",
             "yes" if r.paired else "no"] for r in df.itertuples()]
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in body])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head] + body)


def write_comparison(df: pd.DataFrame, path: str | Path, **provenance: Any) -> Path:
    """CSV/JSON/JSONL/Parquet by suffix, or a markdown table for .md; provenance beside it."""
    from ..provenance import record
    from ..tables import write_json, write_table

    path = Path(path)
    if path.suffix.lower() == ".md":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(df) + "\n", encoding="utf-8")
    else:
        write_table(df, path)
    write_json(record(kind="profile comparison", **provenance), str(path) + ".meta.json")
    return path
