"""Statistics that turn an attribute's per-item values into one number.

An `Attribute.statistic` is a registered name: `mean`/`median` (`BUILTIN`) or
`<suite part>/<name>` declared by a suite (`profiling.registry`, e.g.
`toxicity/expected_max_toxicity`), so a saved profile names how its value was made
independently of where the code lives. Profiles saved before the registry used
`heirloom.profiling.<module>:<function>`; `canonical` maps those to today's names.
Any other `package.module:function` is imported, for attributes made outside heirloom.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HeirloomError


def mean(items: Sequence[float]) -> float:
    arr = np.asarray(items, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def median(items: Sequence[float]) -> float:
    arr = np.asarray(items, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


def mean_over_items(per_item: Callable[[Any], float]):
    """Declare a statistic as the NaN-skipping mean of one number per item.

    The statistic still works as a plain function; `compare` uses `per_item` to
    compute each item's number once and bootstrap with vectorized means instead of
    calling the statistic once per replicate.
    """
    def decorate(fn):
        fn.per_item = per_item
        return fn
    return decorate


def per_item_values(stat: Callable, items: Sequence[Any]):
    """One float per item when `stat` is a mean over items (see `mean_over_items`), else None."""
    if stat in (mean,):
        per = float
    else:
        per = getattr(stat, "per_item", None)
    if per is None:
        return None
    return np.array([np.nan if v is None else per(v) for v in items], dtype=float)


def grouped_by(key: Callable[[Any], Any]):
    """Declare that a statistic's items come in groups (`key(item)`) that are sampled together,
    e.g. BBQ's question sets of 4: `compare` then resamples whole groups (a cluster bootstrap),
    since items of one group are not independent draws."""
    def decorate(fn):
        fn.group_key = key
        return fn
    return decorate


def group_indices(stat: Callable, items: Sequence[Any]) -> list[np.ndarray] | None:
    """Item indices per group (first-seen order) when `stat` is `grouped_by` a key, else None."""
    key = getattr(stat, "group_key", None)
    if key is None:
        return None
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    return [np.asarray(g) for g in groups.values()]


BUILTIN: dict[str, Callable[[Sequence[Any]], float]] = {"mean": mean, "median": median}


LEGACY_PREFIX = "heirloom.profiling."


def canonical(name: str) -> str:
    """The registered name of `name` ('heirloom.profiling.bbq:accuracy' -> 'bbq/accuracy')."""
    module, sep, func = name.partition(":")
    if sep and module.startswith(LEGACY_PREFIX) and module.count(".") == 2:
        return f"{module.removeprefix(LEGACY_PREFIX)}/{func}"
    return name


def resolve(name: str) -> Callable[[Sequence[Any]], float]:
    from .registry import statistic

    name = canonical(name)
    if name in BUILTIN:
        return BUILTIN[name]
    found = statistic(name) if "/" in name else None
    if found is not None:
        return found
    module, _, func = name.partition(":")
    if not func:
        raise HeirloomError(f"unknown statistic {name!r} (builtins: {', '.join(BUILTIN)}; a suite's "
                            "<part>/<name>; or module:function)")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise HeirloomError(f"statistic {name!r} cannot be loaded ({e})") from None
