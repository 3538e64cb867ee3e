"""Candidate pools: their columns, stable prompt ids, merging, importing offline generations.

A pool is a table with one row per candidate answer (see `POOL_COLUMNS`); a scored
pool adds one float column per metric. This module checks that a table is a pool,
merges several pools into one multi-source pool (every row keeps its `teacher` and
`source`), and imports generations made elsewhere (AlpacaEval output files) as
offline teachers. It does not generate, score or select anything.

Prompts are matched across sources by `prompt_id(text)`, a short hash of the
normalized prompt text, so the same instruction gets the same id everywhere.
Prompts present in one source but not another are reported, never dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import HeirloomError
from .tables import read_table, require_columns

POOL_COLUMNS = ("prompt_id", "prompt", "teacher", "sample_index", "completion",
                "num_tokens", "finish_reason", "seed", "source")
# Columns of every pool that selection reads as metrics (`selection.columns`), before any scoring.
POOL_METRIC_COLUMNS = ("num_tokens",)
KEY = ["prompt_id", "teacher", "sample_index"]
_TEXT_COLUMNS = ("prompt_id", "prompt", "teacher", "completion", "source")
# Why these are undefined for imported rows; written to <pool>.meta.json.
OFFLINE_UNDEFINED = {
    "num_tokens": "NaN: the generator's tokenizer is unknown for offline generations",
    "seed": "NaN: offline generations carry no seed",
    "finish_reason": "'unknown': offline generations do not say why they stopped",
}


def normalize_prompt(text: str) -> str:
    """Unicode NFC, whitespace runs collapsed to one space, ends stripped; case is kept."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def prompt_id(text: str) -> str:
    """Stable id of a prompt: 'p' + 12 hex digits of sha256(normalized text).

    The 'p' keeps CSV readers from parsing an all-digit id as a number.
    """
    return "p" + hashlib.sha256(normalize_prompt(text).encode("utf-8")).hexdigest()[:12]


def _require_text(s: pd.Series, where: str, col: str) -> None:
    """Every value a str; the fast checks first (this runs on every 100k-row pool)."""
    if isinstance(s.dtype, pd.StringDtype):
        bad = s.isna().to_numpy()
    elif pd.api.types.infer_dtype(s, skipna=False) == "string":
        return
    else:
        bad = s.map(lambda v: not isinstance(v, str)).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = s.iloc[i]
        got = "a missing value" if v is None or (isinstance(v, float) and v != v) else repr(v)
        raise HeirloomError(f"{where} {i}: column {col!r} must be text, got {got}")


def validate_pool(df: pd.DataFrame, source: str, columns: Sequence[str] = POOL_COLUMNS) -> pd.DataFrame:
    """Check a pool (columns, no missing keys or texts, unique candidates); return it with int sample_index."""
    require_columns(df, columns, source)
    if df.empty:
        raise HeirloomError(f"{source}: empty pool (no candidates)")
    if pd.api.types.is_integer_dtype(df["prompt_id"]):  # CSV readers turn numeric ids into ints
        df = df.assign(prompt_id=df["prompt_id"].astype(str))
    for col in [c for c in _TEXT_COLUMNS if c in columns]:
        _require_text(df[col], f"{source}: row", col)
    sidx = pd.to_numeric(df["sample_index"], errors="coerce")
    bad = sidx.isna() | (sidx < 0) | (sidx != sidx.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HeirloomError(f"{source}: row {i}: column 'sample_index' must be an integer >= 0, "
                            f"got {df['sample_index'].iloc[i]!r}")
    df = df.assign(sample_index=sidx.astype("int64"))
    for col in [c for c in ("num_tokens", "seed") if c in df.columns and df[c].dtype == object]:
        num = pd.to_numeric(df[col], errors="coerce")  # JSON nulls come back as None: make them NaN
        bad = (num.isna() & df[col].notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise HeirloomError(f"{source}: row {i}: column {col!r} must be a number, got {df[col].iloc[i]!r}")
        df = df.assign(**{col: num.astype("float64")})
    dup = df.duplicated(KEY, keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise HeirloomError(f"{source}: column(s) prompt_id/teacher/sample_index not unique: "
                            f"{int(dup.sum())} rows share a key, e.g. ({row.prompt_id}, {row.teacher}, "
                            f"{row.sample_index})")
    texts = df.groupby("prompt_id", sort=False)["prompt"].nunique()
    if (texts > 1).any():
        pid = texts[texts > 1].index[0]
        raise HeirloomError(f"{source}: column 'prompt' differs between rows of prompt_id {pid}")
    return df


def _offline_rows(data: pd.DataFrame, path: str, prompt_ids: dict[str, tuple[str, str]]) -> pd.DataFrame:
    if "output" not in data.columns and {"output_1", "output_2"} <= set(data.columns):
        raise HeirloomError(f"{path}: looks like an AlpacaEval annotations file (output_1/output_2), "
                            "not model outputs (needs column 'output')")
    require_columns(data, ["instruction", "output"], path)
    for col in ("instruction", "output"):
        _require_text(data[col], f"{path}: item", col)
    prompts = data["instruction"]
    if "input" in data.columns:  # Alpaca-style instruction + optional input
        extra = data["input"].fillna("").astype(str)
        prompts = prompts.where(extra.str.strip() == "", prompts + "\n\n" + extra)
    if "generator" in data.columns:
        teacher = data["generator"].fillna(os.path.splitext(os.path.basename(path))[0]).astype(str)
    else:
        teacher = pd.Series(os.path.splitext(os.path.basename(path))[0], index=data.index)
    keys = prompts.map(normalize_prompt)
    ids = [prompt_ids.get(k, (prompt_id(k), p)) for k, p in zip(keys, prompts)]
    rows = pd.DataFrame({
        "prompt_id": [i for i, _ in ids], "prompt": [p for _, p in ids], "teacher": teacher.to_numpy(),
        "completion": data["output"].to_numpy(), "num_tokens": np.nan, "finish_reason": "unknown",
        "seed": np.nan, "source": str(path),
    })
    meta = [c for c in data.columns if c not in ("instruction", "input", "output", "generator")
            and c not in rows.columns]
    for c in meta:  # generation metadata (e.g. AlpacaEval's `dataset`) rides along
        rows[c] = data[c].to_numpy()
    return rows


def import_outputs(paths: Sequence[str | os.PathLike], prompts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Offline candidates from AlpacaEval-format files (list of {instruction, output, generator, ...}).

    teacher = `generator` (the file name when absent), source = the file path,
    sample_index numbered per (prompt, teacher) in file then row order. With
    `prompts` (a table with prompt_id and prompt, e.g. a live pool), instructions are
    matched by normalized text to its ids and texts; others get `prompt_id(text)`.
    """
    if not paths:
        raise HeirloomError("pool import: no files given")
    known: dict[str, tuple[str, str]] = {}
    if prompts is not None:
        require_columns(prompts, ["prompt_id", "prompt"], "prompts")
        for pid, text in prompts[["prompt_id", "prompt"]].drop_duplicates().itertuples(index=False):
            known.setdefault(normalize_prompt(text), (str(pid), text))
    parts = [_offline_rows(read_table(p), str(p), known) for p in paths]
    pool = pd.concat(parts, ignore_index=True)
    if pool.empty:
        raise HeirloomError(f"pool import: no rows in {', '.join(map(str, paths))}")
    pool.insert(3, "sample_index", pool.groupby(["prompt_id", "teacher"], sort=False).cumcount())
    return validate_pool(pool, "pool import")


@dataclass
class MergeReport:
    """Which prompts each source covers; `missing[source]` lists prompt ids it lacks."""

    sources: list[str]
    n_prompts: int
    prompts_per_source: dict[str, int]
    missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())

    def lines(self) -> list[str]:
        out = [f"{self.n_prompts} prompts from {len(self.sources)} source(s)"]
        for s, ids in self.missing.items():
            if ids:
                out.append(f"{s}: lacks {len(ids)} of {self.n_prompts} prompts (e.g. {', '.join(ids[:3])})")
        return out

    def to_dict(self) -> dict:
        return {"sources": self.sources, "n_prompts": self.n_prompts,
                "prompts_per_source": self.prompts_per_source, "missing": self.missing}


def coverage(pool: pd.DataFrame) -> MergeReport:
    """Prompts per `source` value and the prompts each source lacks (sorted ids)."""
    sources = list(dict.fromkeys(pool["source"]))
    all_ids = set(pool["prompt_id"])
    per = pool.groupby("source", sort=False)["prompt_id"].agg(set)
    return MergeReport(sources, len(all_ids), {s: len(per[s]) for s in sources},
                       {s: sorted(all_ids - per[s]) for s in sources})


def merge_pools(pools: Sequence[pd.DataFrame], names: Sequence[str] | None = None,
                renumber: bool = False) -> tuple[pd.DataFrame, MergeReport]:
    """One multi-source pool from several, merged by prompt_id, with the coverage report.

    A pool without a `source` column gets its name there. The same prompt_id must
    carry the same normalized prompt text everywhere (the first text is kept). A
    (prompt_id, teacher, sample_index) seen twice is an error unless `renumber`,
    which renumbers sample_index per (prompt, teacher) in merge order.
    """
    if not pools:
        raise HeirloomError("pool merge: no pools given")
    names = list(names) if names is not None else [f"pool{i}" for i in range(len(pools))]
    parts = []
    for df, name in zip(pools, names):
        if "source" not in df.columns:
            df = df.assign(source=name)
        parts.append(validate_pool(df, name))
    pool = pd.concat(parts, ignore_index=True)
    norm = pool["prompt"].map(normalize_prompt)
    clash = norm.groupby(pool["prompt_id"], sort=False).nunique()
    if (clash > 1).any():
        pid = clash[clash > 1].index[0]
        where = sorted(set(pool.loc[pool["prompt_id"] == pid, "source"]))
        raise HeirloomError(f"pool merge: prompt_id {pid} has different prompt texts in {', '.join(where)}")
    pool["prompt"] = pool.groupby("prompt_id", sort=False)["prompt"].transform("first")
    if renumber:
        pool["sample_index"] = pool.groupby(["prompt_id", "teacher"], sort=False).cumcount()
    return validate_pool(pool, "pool merge (use renumber for repeated teachers)"), coverage(pool)
