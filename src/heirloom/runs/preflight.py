"""Check a run against the world before any model loads: seconds, not hours.

`preflight(config, run_dir, until)` raises a one-line `HeirloomError` for the
first problem it finds, in this order (cheapest first), for the stages the run
will reach:

1. the run directory is new, empty, or an earlier heirloom run's directory:
   never a folder of the user's own files (the run writes `config.yaml` there);
2. the prompts load (file, built-in set, hub dataset);
3. every live teacher resolves (`models.check_model`: an installed alias, an
   existing .gguf, a directory that holds a model) and its backend options fit
   its backend (`generation.check_options`); every imported outputs file exists;
   every arm's `teachers` names a teacher of the pool (a live teacher's identity,
   an imported file's `generator`);
4. the student resolves and is a model transformers loads (it is fine-tuned);
5. every profiling suite finds its data (`profiling.check_data`);
6. `student.training.max_length` leaves room for a completion after the longest
   prompt when `long_prompts: error`, after some prompt when `skip` (the
   student's tokenizer only).

What `load_run_config` already checks (fields, arm names, objective and
constraint columns against the columns scoring produces) is not repeated.
Left out: whether servers answer (`openai:`) and whether a hub id exists online
(the hub may be unreachable from here; both fail when first used).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import HeirloomError
from .config import RunConfig

def preflight(config: RunConfig, run_dir: str | Path, until: str | None = None) -> None:
    """Raise a one-line HeirloomError if the run would fail for a reason knowable now."""
    from .runner import STAGES

    reached = set(STAGES if until not in STAGES else STAGES[: STAGES.index(until) + 1])
    check_run_dir(run_dir)
    prompts = _check(config, "prompts", lambda: _load_prompts(config))
    _check_teachers(config)
    _check_arm_teachers(config)
    if reached & {"train", "profile"}:
        _check_student(config)
    if "profile" in reached:
        _check(config, "profiling", lambda: _check_profile_data(config))
    if "train" in reached:  # last: loading the student's tokenizer is the slowest check
        _check(config, "student.training.max_length", lambda: _check_max_length(config, prompts))
        if config.student.training.lora_layers is not None:
            _check_lora_layers(config)


def _check(config: RunConfig, field: str, fn):
    try:
        return fn()
    except HeirloomError as e:
        raise HeirloomError(f"{_where(config)}: {field}: {e}") from None


def _where(config: RunConfig) -> str:
    return getattr(config, "_source", None) or "run config"


# --- 1. the run directory ------------------------------------------------------------
def is_run_dir(path: Path) -> bool:
    """A directory an earlier `heirloom run` wrote: its run.json record, or a stage marker."""
    from .layout import RUN_META, STALE, STARTED

    try:
        doc = json.loads((path / RUN_META).read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "config" in doc:
            return True
    except (OSError, ValueError):
        pass
    return (path / STALE).is_dir() or any(path.glob(f"*/{STARTED}"))


def check_run_dir(run_dir: str | Path) -> None:
    from .lock import LOCK

    path = Path(run_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise HeirloomError(f"run directory {path}: is a file")
    entries = sorted(p.name for p in path.iterdir() if p.name != LOCK)  # the lock file is ours
    if not entries or is_run_dir(path):
        return
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise HeirloomError(f"run directory {path}: holds files heirloom did not make ({shown}); a run writes "
                        "config.yaml, run.json and its stages there: give a new or empty directory, "
                        "or an earlier run's directory")


# --- 2-4. prompts and models ----------------------------------------------------------
def _load_prompts(config: RunConfig):
    from ..prompts import load_prompt_sources

    p = config.prompts
    return load_prompt_sources(p.source, column=p.column, split=p.split, limit=p.limit)


def _check_teachers(config: RunConfig) -> None:
    from ..generation import check_options, common_options
    from ..models import check_model
    from ..models.refs import ModelRef

    for i, t in enumerate(config.teachers):
        if t.outputs is not None:
            for f in t.outputs:
                if not Path(f).is_file():
                    raise HeirloomError(f"{_where(config)}: teachers.{i}.outputs: {f}: no such file")
            continue
        ref = ModelRef.parse(t.model)
        # The options the generate stage passes: the per-teacher settings its backend declares, then `options`.
        options = {**common_options(ref, {"device": t.device, "batch_size": t.batch_size}), **t.options}
        _check(config, f"teachers.{i}.model", lambda: check_model(ref))
        _check(config, f"teachers.{i}.options", lambda: check_options(ref, options))


def teacher_names(config: RunConfig) -> list[str]:
    """The names the pool's `teacher` column will hold: live identities, imported files' generators."""
    import os

    from ..models.refs import ModelRef
    from ..tables import read_table

    names: list[str] = []
    for t in config.teachers:
        if t.model is not None:
            names.append(ModelRef.parse(t.model).identity)
            continue
        for f in t.outputs:
            stem = os.path.splitext(os.path.basename(f))[0]
            data = read_table(f)
            if "generator" in data.columns:  # as pools.import_outputs names them
                names.extend(data["generator"].fillna(stem).astype(str).unique())
            else:
                names.append(stem)
    return list(dict.fromkeys(names))


def _check_arm_teachers(config: RunConfig) -> None:
    restricted = [(i, a) for i, a in enumerate(config.arms) if a.teachers is not None]
    if not restricted:
        return  # no file is read when no arm needs the names
    known = _check(config, "teachers", lambda: teacher_names(config))
    for i, arm in restricted:
        unknown = [t for t in arm.teachers if t not in known]
        if unknown:
            raise HeirloomError(f"{_where(config)}: arms.{i}.teachers: arm {arm.name!r} names unknown teacher(s) "
                                f"{', '.join(unknown)} (known: {', '.join(known)})")


def _check_student(config: RunConfig) -> None:
    from ..models import check_model
    from ..models.refs import ModelRef

    ref = _check(config, "student.model", lambda: ModelRef.parse(config.student.model))
    if ref.backend != "hf":
        raise HeirloomError(f"{_where(config)}: student.model: {ref} is fine-tuned with transformers: give an "
                            f"alias, a model directory, a .gguf file or a hub id, not a {ref.backend}: reference")
    _check(config, "student.model", lambda: check_model(ref))


# --- 5. profiling data ------------------------------------------------------------------
def _check_profile_data(config: RunConfig) -> None:
    from ..profiling.suites import ProfileConfig, check_data

    check_data(ProfileConfig(**config.profiling))


def _check_lora_layers(config: RunConfig) -> None:
    from transformers import AutoConfig

    from ..models.loader import local_path

    asked = config.student.training.lora_layers
    layers = getattr(AutoConfig.from_pretrained(local_path(config.student.model)), "num_hidden_layers", None)
    if layers is not None and asked > layers:
        raise HeirloomError(f"{_where(config)}: student.training.lora_layers: {asked} layers asked, "
                            f"{config.student.model} has {layers}")


# --- 6. prompt lengths ------------------------------------------------------------------
def _check_max_length(config: RunConfig, prompts) -> None:
    """Tokenize every prompt as training will: with `long_prompts: error` a prompt that leaves no room
    for its completion fails now rather than after generation; with `skip`, only when every one does."""
    import pandas as pd

    from ..models.loader import load_tokenizer
    from ..training.data import encode_pairs

    training = config.student.training
    tokenizer = load_tokenizer(config.student.model)
    pairs = pd.DataFrame({"prompt_id": prompts["prompt_id"], "prompt": prompts["prompt"], "completion": "."})
    encode_pairs(pairs, tokenizer, training.max_length, training.prompt_format, source="prompts",
                 long_prompts=training.long_prompts)
