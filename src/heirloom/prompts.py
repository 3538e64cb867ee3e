"""Prompt sets: from a file, a Hugging Face dataset, or the set that ships with heirloom.

A prompt set is a DataFrame with `prompt_id` (stable hash of the text, see
`pools.prompt_id`) and `prompt`. Alpaca-style rows with an `input` field get it
appended to the instruction, as Alpaca's own template does.
"""

from __future__ import annotations

import numbers
import sys
from importlib import resources
from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import HeirloomError
from .tables import FORMATS, read_table

PROMPT_COLUMNS = ("prompt", "instruction", "inputs", "question", "text")
BUILTIN = {"quickstart": "quickstart_prompts.jsonl"}


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("heirloom") / "data" / BUILTIN[name]))


def load_prompts(source: str, column: str | None = None, split: str = "train",
                 limit: int | None = None) -> pd.DataFrame:
    """Prompts from `source`: a built-in name, a file path, or a hub dataset id."""
    from .pools import prompt_id

    _check_limit(limit)

    if source in BUILTIN:
        df, where = read_table(builtin_path(source)), source
    elif Path(source).suffix.lower() in FORMATS or Path(source).exists():
        df, where = read_table(source), source
    else:
        df, where = _load_hub(source, split), f"{source}[{split}]"
    col = column or next((c for c in PROMPT_COLUMNS if c in df.columns), None)
    if col is None or col not in df.columns:
        wanted = column or f"one of {', '.join(PROMPT_COLUMNS)}"
        raise HeirloomError(f"{where}: no prompt column ({wanted}); columns are {', '.join(map(str, df.columns))}")
    texts = df[col]
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise HeirloomError(f"{where}: row {bad[0]} has an empty or non-text {col!r} ({len(bad)} such rows)")
    if col == "instruction" and "input" not in df.columns and "instances" in df.columns:
        # Alpaca's seed tasks keep the input inside their first instance.
        df = df.assign(input=[(i[0].get("input", "") if isinstance(i, list) and i and isinstance(i[0], dict) else "")
                              for i in df["instances"]])
    if "input" in df.columns and col == "instruction":  # Alpaca: instruction + optional input
        texts = [t if not isinstance(x, str) or not x.strip() else f"{t}\n\n{x}" for t, x in zip(texts, df["input"])]
    out = pd.DataFrame({"prompt": list(texts)})
    out.insert(0, "prompt_id", [prompt_id(t) for t in out["prompt"]])
    dupes = out["prompt_id"].duplicated()
    if dupes.any():
        # The same prompt twice would get the same id; keep the first and say so.
        print(f"note: {where}: {int(dupes.sum())} duplicate prompt(s) kept once", file=sys.stderr)
        out = out[~dupes]
    if limit is not None:
        out = out.head(limit)
    return out.reset_index(drop=True)


def load_prompt_sources(sources: str | Sequence[str], column: str | None = None, split: str = "train",
                        limit: int | None = None) -> pd.DataFrame:
    """Several sources concatenated in order, a prompt present in more than one kept once, then `limit`."""
    _check_limit(limit)
    sources = [sources] if isinstance(sources, str) else list(sources)
    parts = [load_prompts(s, column=column, split=split) for s in sources]
    prompts = pd.concat(parts, ignore_index=True).drop_duplicates("prompt_id", ignore_index=True)
    return prompts if limit is None else prompts.head(limit)


def _check_limit(limit: int | None) -> None:
    # head(0) would give an empty set and head(-1) would silently drop the last prompt.
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise HeirloomError(f"prompt limit {limit!r}: give a whole number of prompts, at least 1")


def _load_hub(name: str, split: str) -> pd.DataFrame:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise HeirloomError("loading a hub dataset needs `pip install datasets`") from None
    try:
        return datasets.load_dataset(name, split=split).to_pandas()
    except Exception as e:  # the hub raises many types: offline, missing, gated
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HeirloomError(f"prompts {name!r}: not a file, a built-in set ({', '.join(BUILTIN)}), "
                            f"nor a loadable Hugging Face dataset ({first})") from None
