"""The work of the generate, score and select stages: one function each, called by both
`heirloom generate|score|select` and the runner (`runs.runner`), writing the stage's
outputs and their provenance (`<out>.meta.json`) once.

- `generate_pool`: k candidates per prompt from live teachers (resumable through an
  append-only work file) and/or imported generations, merged into one checked pool.
- `score_pool`: one float column per metric (`scoring.score_table`).
- `select_pool`: the best candidate per prompt, the per-candidate record, the summary
  against the pool and the random baseline.
Left out: argument parsing (the CLI), stage keys and markers (the runner), training
and profiling (`training.train_student` and `profiling.profile_model` are their stages).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..errors import HeirloomError
from ..generation.base import SamplingParams
from ..provenance import config_hash, record
from ..tables import read_table, write_json, write_table
from .config import TeacherConfig


def _meta(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _with_stop(params: SamplingParams, stop: Sequence[str] | None) -> SamplingParams:
    if not stop:
        return params
    return SamplingParams(**{**params.model_dump(), "stop": tuple(params.stop) + tuple(stop)})


def _imported(teacher: TeacherConfig, prompts: pd.DataFrame, log: Callable[[str], Any]) -> pd.DataFrame:
    from ..pools import import_outputs

    imported = import_outputs(teacher.outputs, prompts=prompts)
    imported = imported[imported["prompt_id"].isin(prompts["prompt_id"])]  # these prompts only
    if imported.empty:
        raise HeirloomError(f"teachers: no generation in {', '.join(teacher.outputs)} matches a prompt "
                            f"(matched by instruction text)")
    missing = len(set(prompts["prompt_id"]) - set(imported["prompt_id"]))
    if missing:
        log(f"[generate] {missing} prompt(s) have no imported candidate in {', '.join(teacher.outputs)}")
    return imported


def generate_pool(prompts: pd.DataFrame, teachers: Sequence[TeacherConfig], k: int, params: SamplingParams,
                  out: str | Path, work: str | Path | None = None, chat: bool | None = None,
                  progress: bool = True, log: Callable[[str], Any] = print) -> pd.DataFrame:
    """Write the candidate pool `out` (any table format) and `<out>.meta.json`; return the pool.

    Live teachers append to the work file `work` batch by batch, so a rerun resumes where a
    killed one stopped; without `work`, a .jsonl `out` is its own work file and any other
    format uses `<out>.partial.jsonl`, removed once the pool is complete. Each teacher's stop
    strings are added to `params.stop`.
    """
    from ..candidates import finalize_pool, generate_candidates
    from ..generation import make_backend
    from ..models.refs import ModelRef
    from ..pools import merge_pools, validate_pool

    out = Path(out)
    temporary = work is None and out.suffix != ".jsonl"
    work = Path(work) if work is not None else out if out.suffix == ".jsonl" else \
        out.with_name(out.name + ".partial.jsonl")
    parts, live, imported = [], [], []
    for t in teachers:
        if t.outputs is not None:
            parts.append(_imported(t, prompts, log))
            imported += list(t.outputs)
            continue
        ref = ModelRef.parse(t.model)
        log(f"[generate] {ref}: {len(prompts)} prompts x k={k}")
        backend = make_backend(ref, common={"device": t.device, "batch_size": t.batch_size}, **t.options)
        try:
            generate_candidates(backend, prompts, k, _with_stop(params, t.stop), work, teacher=ref.identity,
                                chat=chat, progress=progress)
        finally:
            backend.close()
        live.append(ref.identity)
    merge = None
    if live:
        parts.insert(0, finalize_pool(work, prompts, live, k))
    if len(parts) == 1:
        pool = parts[0]
    else:
        pool, merge = merge_pools(parts)
    pool = validate_pool(pool, str(out))
    write_table(pool, out)
    settings = json.loads(_meta(work).read_text()) if live else {}
    write_json(record(stage="generate", teachers=settings.get("teachers", {}), imported=imported, k=k,
                      n_prompts=len(prompts), n_candidates=len(pool),
                      **({"merge": merge.to_dict()} if merge is not None else {})), _meta(out))
    if temporary and live:
        work.unlink()
        _meta(work).unlink(missing_ok=True)
    return pool


def score_pool(in_path: str | Path, out: str | Path, metrics: str | Sequence[str], column: str = "completion",
               progress: bool = True) -> pd.DataFrame:
    """Score `in_path` into `out` (+ `<out>.meta.json`: each metric's name, version, options, NaN counts)."""
    from ..scoring import score_table, scoring_record

    df = read_table(in_path)
    scored = score_table(df, metrics, column=column, progress=progress, source=str(in_path))
    write_table(scored, out)
    write_json(record(stage="score", input=str(in_path), output=str(out), **scoring_record(scored)), _meta(Path(out)))
    return scored


def select_pool(pool: pd.DataFrame, objective, seed: int, out: str | Path, record_path: str | Path,
                summary_path: str | Path, source: str, baseline=None, extra: dict[str, Any] | None = None):
    """Select from `pool` and write the selected pairs `out` (+ `<out>.meta.json`), the per-candidate
    record and the summary JSON (`extra` is added to it); returns (SelectionResult, SelectionSummary).

    `baseline`: the random selection the summary compares against (default: a seeded random
    pick from `pool`); `source` names the pool in errors and provenance.
    """
    from ..selection import select, summarize
    from ..selection.select import require_selected

    out, record_path, summary_path = Path(out), Path(record_path), Path(summary_path)
    result = select(pool, objective, seed=seed, source=source)
    require_selected(result, source)
    summary = summarize(pool, result, baseline=baseline)
    objective = result.objective
    config = {"objective": objective.model_dump(), "seed": seed}
    prov = record(stage="select", input=source, objective_spec=objective.describe(), config=config,
                  config_hash=config_hash(config), stats=result.stats)
    write_table(result.selected, out)
    write_table(result.candidates, record_path)
    write_json({**summary.to_dict(), "objective_kind": objective.kind, "objective_metrics": objective.metrics(),
                "objective_directions": objective.directions, **(extra or {}), "provenance": prov}, summary_path)
    write_json({**prov, "outputs": {"selected": str(out), "record": str(record_path), "summary": str(summary_path)},
                "unqualified": result.unqualified.drop(columns="prompt").to_dict("records")}, _meta(out))
    return result, summary
