"""Gather what a run directory holds, and say what it does not (yet) hold.

Reads only the small, numeric artifacts of a run (layout in `heirloom.runs.runner`):
`config.yaml`, `run.json`, `arms/<arm>/summary.json`, `profiles/<name>/profile.json`,
`students/<arm>/train.meta.json`, and the stage markers (`.stage.json` started,
`.done.json` finished). It never opens generations (`selected.jsonl`, candidate
pools, `profiles/*/generations/`): the report shows numbers, not model text.

A missing artifact is not an error (a run stopped after selection still gets a
report); it becomes a line in `RunData.missing`. A damaged one (invalid JSON) is an
error naming the file. Left out: the comparisons and figures (`analysis`, `figures`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HeirloomError
from ..profiling.profile import Profile
from ..runs.stages import STALE

BASE = "base"  # profiles/base: the student before fine-tuning


@dataclass
class RunData:
    run_dir: Path
    config: dict[str, Any]  # config.yaml as written by the runner ({} when absent)
    run_meta: dict[str, Any]  # run.json: provenance record (versions, platform, time)
    arms: list[str]  # config order, then any other arm directory found
    random_arm: str | None
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)  # BASE and arm names
    train_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)  # "select:mtld" -> done / started / missing
    missing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.run_dir.name)

    @property
    def has_profiles(self) -> bool:
        """Some comparison is possible: base and an arm, or the random arm and another arm."""
        arms = [a for a in self.arms if a in self.profiles]
        return (BASE in self.profiles and bool(arms)) or (self.random_arm in arms and len(arms) > 1)


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "run.json").is_file())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HeirloomError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict):
        raise HeirloomError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _read_config(run_dir: Path, run_meta: dict[str, Any]) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return run_meta.get("config") or {}  # run.json records the config too
    from ..validation import read_mapping

    return read_mapping(path, "run config")


def _stage_status(directory: Path) -> str:
    if (directory / ".done.json").is_file():
        return "done"
    return "started" if (directory / ".stage.json").is_file() else "missing"


def _arm_names(run_dir: Path, config: dict[str, Any]) -> list[str]:
    names = [str(a.get("name")) for a in config.get("arms") or [] if isinstance(a, dict) and a.get("name")]
    for parent in ("arms", "students", "profiles"):
        d = run_dir / parent
        if d.is_dir():
            # `.stale/` holds work of earlier configs (see runs/stages.py), not arms
            names += sorted(p.name for p in d.iterdir() if p.is_dir() and p.name != BASE and p.name != STALE)
    return list(dict.fromkeys(names))


def _random_arm(config: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> str | None:
    for arm, s in summaries.items():
        if s.get("objective_kind") == "random":
            return arm
    for a in config.get("arms") or []:
        objective = a.get("objective") if isinstance(a, dict) else None
        if objective == "random" or (isinstance(objective, dict) and objective.get("kind") == "random"):
            return str(a.get("name"))
    return None


def collect(run_dir: str | Path) -> RunData:
    """Everything the report needs from `run_dir`; a HeirloomError if it is not a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise HeirloomError(f"{run_dir}: no such run directory")
    if not is_run_dir(run_dir):
        raise HeirloomError(f"{run_dir}: not a heirloom run directory (no config.yaml or run.json; "
                            "`heirloom run CONFIG --run-dir DIR` makes one)")
    run_meta = _read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    config = _read_config(run_dir, run_meta)
    missing = [] if run_meta else ["run.json (provenance of the run) is missing"]
    arms = _arm_names(run_dir, config)
    data = RunData(run_dir, config, run_meta, arms, None, missing=missing)
    for stage, sub in (("generate", "candidates"), ("score", "scores")):
        data.stages[stage] = _stage_status(run_dir / sub)

    absent: dict[tuple[str, str, str], list[str]] = {}  # (dir, file, stage status) -> names
    for stage, parent, artifact, names in (("select", "arms", "summary.json", arms),
                                           ("train", "students", "train.meta.json", arms),
                                           ("profile", "profiles", "profile.json", [BASE] + arms)):
        for name in names:
            d = run_dir / parent / name
            status = _stage_status(d)
            if status == "missing" and (d / artifact).is_file():
                status = "present, no stage marker"  # made outside the runner, or copied
            data.stages[f"{stage}:{name}"] = status
            if not (d / artifact).is_file():
                absent.setdefault((parent, artifact, f"{stage} stage {status}"), []).append(name)
            elif stage == "profile":
                data.profiles[name] = Profile.load(d / artifact)
            else:
                (data.summaries if stage == "select" else data.train_meta)[name] = _read_json(d / artifact)
    for (parent, artifact, why), names in absent.items():
        which = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
        data.missing.append(f"{parent}/{which}/{artifact}: not written ({why})")
    data.random_arm = _random_arm(config, data.summaries)
    if data.random_arm is None:
        data.missing.append("no random arm: comparisons against the random baseline are left out")
    if not data.has_profiles:
        data.missing.append("no two student profiles to compare (base and an arm, or the random arm and "
                            "another arm): only selection-level findings are shown")
    return data


def inputs_of(data: RunData) -> list[str]:
    """The run files the report was made from (relative paths), for its provenance."""
    files = ["config.yaml", "run.json"]
    files += [f"arms/{a}/summary.json" for a in data.summaries]
    files += [f"students/{a}/train.meta.json" for a in data.train_meta]
    files += [f"profiles/{p}/profile.json" for p in data.profiles]
    return [f for f in files if (data.run_dir / f).is_file()]
