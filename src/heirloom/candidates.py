"""The generation stage: prompts -> a candidate pool, resumable.

Candidates are appended to a JSONL work file one batch at a time (one write,
flushed and fsynced), so a run killed at any moment loses at most the batch in
flight. On restart the file is read back, a torn last line is cut off, prompts
that already have all k samples from a teacher are skipped, and the rest are
generated again. Sample seeds depend on (seed, prompt, sample index) only, so
the resumed pool is the pool an uninterrupted run would have written.

A `<file>.meta.json` holds the settings; a file made with other settings is
never extended (that would mix two experiments in one pool).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import HeirloomError
from .generation.base import Backend, SamplingParams
from .outputs import made_by
from .provenance import config_hash, record
from .tables import read_table, require_columns, write_json, write_table

WORK_COLUMNS = ("prompt_id", "prompt", "teacher", "sample_index", "completion")


def generation_settings(teacher: str, k: int, params: SamplingParams, chat: bool | None) -> dict:
    return {"teacher": teacher, "k": k, "sampling": params.model_dump(mode="json"), "chat": chat}


def generate_candidates(backend: Backend, prompts: pd.DataFrame, k: int, params: SamplingParams,
                        out: str | os.PathLike, teacher: str | None = None, chat: bool | None = None,
                        chunk: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Generate k candidates per prompt into the JSONL work file `out`; returns this teacher's rows."""
    out = Path(out)
    chunk = chunk or backend.preferred_batch  # prompts per append: little lost on a crash, batches stay full
    teacher = teacher or backend.model_id
    settings = generation_settings(teacher, k, params, chat)
    _check_settings(out, settings, backend)
    done = _completed(out, teacher, k)
    todo = prompts[~prompts["prompt_id"].isin(done)]
    # Longest first: similar lengths share a batch (less padding), and memory errors show early.
    todo = todo.iloc[todo["prompt"].str.len().argsort()[::-1]]
    bar = _bar(len(prompts) * k, len(done) * k, f"candidates {teacher}", progress)
    for start in range(0, len(todo), chunk):
        part = todo.iloc[start:start + chunk]
        comps = backend.generate(list(part["prompt"]), k, params, chat=chat, progress=False)
        rows = [
            {"prompt_id": pid, "prompt": prompt, "teacher": teacher, "sample_index": c.sample_index,
             "completion": c.text, "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
             "seed": c.seed, "model": c.model, "source": "live"}
            for pid, prompt, cs in zip(part["prompt_id"], part["prompt"], comps) for c in cs
        ]
        _append(out, rows)
        bar.update(len(rows))
    bar.close()
    pool = load_work_file(out)
    return pool[pool["teacher"] == teacher].reset_index(drop=True)


def _check_settings(out: Path, settings: dict, backend: Backend | None = None) -> None:
    meta_path = out.with_name(out.name + ".meta.json")
    key = config_hash(settings)
    if out.exists() and out.stat().st_size and made_by(out) != "generate":
        # Someone else's file (a prompt set, a scored pool): never appended to nor trimmed.
        raise HeirloomError(f"{out}: exists and is not a candidates file of heirloom (no generation record in "
                            f"{meta_path.name}); write to a new file")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"teachers": {}}
    known = meta["teachers"].get(settings["teacher"])
    if known is not None and known["hash"] != key:
        raise HeirloomError(f"{out}: was made with other settings for teacher {settings['teacher']!r} "
                            f"({known['settings']}); write to a new file to avoid mixing them")
    if known is None and out.exists() and settings["teacher"] in set(load_work_file(out)["teacher"]):
        raise HeirloomError(f"{out}: holds candidates of {settings['teacher']!r} with no record of their settings")
    # The backend's description (device, dtype, ...) is recorded, not hashed: the same settings on other
    # hardware extend the file. Asked only once the file is known to be ours.
    meta["teachers"][settings["teacher"]] = {"hash": key, "settings": settings,
                                             "backend": backend.describe() if backend is not None else None}
    write_json(record(**{**meta, "stage": "generate"}), meta_path)  # `stage`: see heirloom.outputs


def _completed(out: Path, teacher: str, k: int) -> set[str]:
    """Prompts that have all k samples of `teacher`; rows of half-written prompts are removed."""
    if not out.exists():
        return set()
    pool = load_work_file(out)
    mine = pool["teacher"] == teacher
    counts = pool[mine].groupby("prompt_id")["sample_index"].transform("nunique")
    partial = mine & (counts.reindex(pool.index, fill_value=k) < k)
    if partial.any():  # only a crash mid-append leaves these: redo the prompt whole
        write_table(pool[~partial], out)
    done = pool[mine & ~partial]["prompt_id"]
    return set(done)


def load_work_file(path: str | os.PathLike) -> pd.DataFrame:
    """Rows of a candidates work file, cutting a torn last line left by a crash mid-append."""
    path = Path(path)
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        # A crash mid-append: cut the torn line, keep every complete one.
        raw = raw[: raw.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(raw))
    if not raw.strip():
        return pd.DataFrame(columns=list(WORK_COLUMNS))
    pool = read_table(path)
    # A file that is not a candidates file must not be extended (or have "partial" rows cut from it).
    require_columns(pool, WORK_COLUMNS, f"{path}: not a candidates file")
    dup = pool.duplicated(["teacher", "prompt_id", "sample_index"])
    if dup.any():
        raise HeirloomError(f"{path}: {int(dup.sum())} duplicated (teacher, prompt_id, sample_index) rows")
    return pool


def _append(out: Path, rows: Sequence[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with open(out, "a", encoding="utf-8") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())


def finalize_pool(work_file: str | os.PathLike, prompts: pd.DataFrame, teachers: Sequence[str], k: int,
                  out: str | os.PathLike | None = None) -> pd.DataFrame:
    """The complete pool in prompt order; checks there are no gaps, optionally writes it (any format)."""
    pool = load_work_file(work_file)
    order = {pid: i for i, pid in enumerate(prompts["prompt_id"])}
    pool = pool[pool["prompt_id"].isin(order)]
    expected = len(prompts) * len(teachers) * k
    if len(pool) != expected:
        raise HeirloomError(f"{work_file}: has {len(pool)} candidates, expected {expected} "
                            f"({len(prompts)} prompts x {len(teachers)} teacher(s) x k={k})")
    pool = pool.assign(_o=pool["prompt_id"].map(order), _t=pool["teacher"].map({t: i for i, t in enumerate(teachers)}))
    pool = pool.sort_values(["_o", "_t", "sample_index"]).drop(columns=["_o", "_t"]).reset_index(drop=True)
    if out is not None:  # also when `out` is the work file: it is complete, so put it in prompt order
        write_table(pool, out)
    return pool


def _bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="cand", disable=not enabled)
