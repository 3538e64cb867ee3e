"""Gather what a run directory holds, and say what it does not (yet) hold.

Reads only the small, numeric artifacts of a run (paths in `heirloom.runs.layout`):
`config.yaml`, `run.json`, `arms/<arm>/summary.json`, `profiles/<name>/profile.json`,
`students/<arm>/train.meta.json`, and the stage markers (`.stage.json` started,
`.done.json` finished). It never opens generations (`selected.jsonl`, candidate
pools, `profiles/*/generations/`): the report shows numbers, not model text.

Only the arms of the run's config are read, and only work made from the current
pool: an arm whose markers say it was selected from earlier scores (or trained on
other pairs, or profiled from another student) is left out with a line in
`RunData.missing`; `.stale/` (earlier configs' work) is never read. Markers that do
not record their inputs (runs of older versions, hand-made directories) are trusted.
A missing artifact is not an error (a run stopped after selection still gets a
report); it becomes a line in `RunData.missing`. A damaged one (invalid JSON) is an
error naming the file. Left out: the comparisons and figures (`analysis`, `figures`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HeirloomError
from ..profiling.profile import Profile
from ..runs.layout import BASE, DONE, STALE, STARTED, RunLayout, read_json, read_marker, stage_status

__all__ = ["BASE", "RunData", "collect", "inputs_of", "is_run_dir"]


@dataclass
class RunData:
    run_dir: Path
    config: dict[str, Any]  # config.yaml as written by the runner ({} when absent)
    run_meta: dict[str, Any]  # run.json: provenance record (versions, platform, time)
    arms: list[str]  # the config's arms, in its order
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
    layout = RunLayout(path)
    return layout.root.is_dir() and (layout.config.is_file() or layout.run_meta.is_file())


def _read_config(run_dir: Path, run_meta: dict[str, Any]) -> dict[str, Any]:
    path = RunLayout(run_dir).config
    if not path.is_file():
        return run_meta.get("config") or {}  # run.json records the config too
    from ..validation import read_mapping

    return read_mapping(path, "run config")


def _arm_names(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """The config's arms; only a config with none (a hand-made directory) falls back to the directories."""
    names = [str(a.get("name")) for a in config.get("arms") or [] if isinstance(a, dict) and a.get("name")]
    if names:
        return list(dict.fromkeys(names))
    layout = RunLayout(run_dir)
    for d in (layout.arms, layout.students, layout.profiles):
        if d.is_dir():  # `.stale/` holds work of earlier configs (see runs/markers.py), not arms
            names += sorted(p.name for p in d.iterdir() if p.is_dir() and p.name not in (BASE, STALE))
    return list(dict.fromkeys(names))


def _follows(directory: Path, field: str, expected: Any) -> bool:
    """False only when the stage recorded what it was made from and that is not `expected`."""
    got = ((read_marker(directory, STARTED) or {}).get("inputs") or {}).get(field)
    return got is None or expected is None or got == expected


def _key(directory: Path) -> Any:
    return (read_marker(directory, STARTED) or {}).get("key")


def stale_work(run_dir: Path, arms: list[str]) -> dict[tuple[str, str], str]:
    """{(stage, arm): why} for work not made from the current pool: each stage's marker records the
    key (or pairs) it was made from, checked link by link up to the pool being generated now."""
    L, out = RunLayout(run_dir), {}
    scores_current = _follows(L.scores, "after", _key(L.candidates))
    for arm in arms:
        if not (scores_current and _follows(L.arm(arm), "after", _key(L.scores))):
            why = "selected from an earlier pool or scoring"
            out.update({("select", arm): why, ("train", arm): why, ("profile", arm): why})
        elif not _follows(L.student(arm), "data", (read_marker(L.arm(arm), DONE) or {}).get("pairs")):
            out.update({("train", arm): "trained on other pairs", ("profile", arm): "trained on other pairs"})
        elif not _follows(L.profile_dir(arm), "after", _key(L.student(arm))):
            out[("profile", arm)] = "profiled from an earlier student"
    return out


def _random_arm(config: dict[str, Any], summaries: dict[str, dict[str, Any]]) -> str | None:
    # the random pick from the whole pool (arms restricted to some `teachers` have their own)
    for arm, s in summaries.items():
        if s.get("objective_kind") == "random" and not s.get("arm_teachers"):
            return arm
    for a in config.get("arms") or []:
        objective = a.get("objective") if isinstance(a, dict) else None
        if isinstance(a, dict) and a.get("teachers"):
            continue
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
    L = RunLayout(run_dir)
    run_meta = read_json(L.run_meta) if L.run_meta.is_file() else {}
    config = _read_config(run_dir, run_meta)
    missing = [] if run_meta else ["run.json (provenance of the run) is missing"]
    arms = _arm_names(run_dir, config)
    data = RunData(run_dir, config, run_meta, arms, None, missing=missing)
    data.stages["generate"], data.stages["score"] = stage_status(L.candidates), stage_status(L.scores)

    stale = stale_work(run_dir, arms)
    absent: dict[tuple[str, str, str], list[str]] = {}  # (dir, file, stage status) -> names
    for stage, artifact, names in (("select", L.summary, arms), ("train", L.train_meta, arms),
                                   ("profile", L.profile, [BASE] + arms)):
        for name in names:
            path = artifact(name)
            parent = path.parent.parent.name
            if (stage, name) in stale:
                data.stages[f"{stage}:{name}"] = f"stale ({stale[stage, name]})"
                line = f"{name}: {stale[stage, name]}; left out of the report (a rerun redoes it)"
                if line not in data.missing:
                    data.missing.append(line)
                continue
            status = stage_status(path.parent)
            if status == "missing" and path.is_file():
                status = "present, no stage marker"  # made outside the runner, or copied
            data.stages[f"{stage}:{name}"] = status
            if not path.is_file():
                absent.setdefault((parent, path.name, f"{stage} stage {status}"), []).append(name)
            elif stage == "profile":
                data.profiles[name] = Profile.load(path)
            else:
                (data.summaries if stage == "select" else data.train_meta)[name] = read_json(path)
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
    L = RunLayout(data.run_dir)
    files = [L.config, L.run_meta] + [L.summary(a) for a in data.summaries]
    files += [L.train_meta(a) for a in data.train_meta] + [L.profile(p) for p in data.profiles]
    return [f.relative_to(L.root).as_posix() for f in files if f.is_file()]
