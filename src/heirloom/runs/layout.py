"""Where everything lives in a run directory: the one place the runner, the report and the CLI read it from.

    config.yaml, run.json              the validated config as run, and its provenance
    candidates/                        prompts.jsonl, candidates.jsonl (work file), pool.parquet (+ .meta.json)
    scores/scored.parquet              one column per metric (+ .meta.json)
    arms/<arm>/                        selected.jsonl (+ .meta.json), candidates.parquet, summary.json
    students/<arm>/                    adapter/, merged/, checkpoints/, train_log.jsonl, train.meta.json
    profiles/base/, profiles/<arm>/    profile.json (+ per-suite generations)
    report/                            index.html, summary.md, figures/*.png, CSVs

Every stage directory holds markers: `.stage.json` (started: the stage's key and
the inputs it was keyed on) and `.done.json` (finished, same key). Work made under
an earlier config is moved to `.stale/<directory>-<key>/` beside its directory.
Left out: what a stage does (`stages`), when it is redone (`markers`, `keys`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import HeirloomError

CONFIG = "config.yaml"
RUN_META = "run.json"
STARTED = ".stage.json"
DONE = ".done.json"
STALE = ".stale"
BASE = "base"  # profiles/base: the student before fine-tuning; not an arm name


class RunLayout:
    """The paths of one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # the run
    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def run_meta(self) -> Path:
        return self.root / RUN_META

    # generate
    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    @property
    def prompts(self) -> Path:
        return self.candidates / "prompts.jsonl"

    @property
    def work_file(self) -> Path:
        return self.candidates / "candidates.jsonl"

    @property
    def pool(self) -> Path:
        return self.candidates / "pool.parquet"

    # score
    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def scored(self) -> Path:
        return self.scores / "scored.parquet"

    # select, train, profile: one directory per arm (profiles also `base`)
    @property
    def arms(self) -> Path:
        return self.root / "arms"

    def arm(self, name: str) -> Path:
        return self.arms / name

    def selected(self, arm: str) -> Path:
        return self.arm(arm) / "selected.jsonl"

    def selection_record(self, arm: str) -> Path:
        return self.arm(arm) / "candidates.parquet"

    def summary(self, arm: str) -> Path:
        return self.arm(arm) / "summary.json"

    @property
    def students(self) -> Path:
        return self.root / "students"

    def student(self, arm: str) -> Path:
        return self.students / arm

    def merged(self, arm: str) -> Path:
        return self.student(arm) / "merged"

    def train_meta(self, arm: str) -> Path:
        return self.student(arm) / "train.meta.json"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    def profile_dir(self, name: str) -> Path:
        return self.profiles / name

    def profile(self, name: str) -> Path:
        return self.profile_dir(name) / "profile.json"

    @property
    def report(self) -> Path:
        return self.root / "report"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; a damaged file is an error naming it."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HeirloomError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict):
        raise HeirloomError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def read_marker(directory: str | Path, marker: str) -> dict[str, Any] | None:
    """The `STARTED` or `DONE` marker of a stage directory, or None when it has none."""
    path = Path(directory) / marker
    return read_json(path) if path.is_file() else None


def stage_status(directory: str | Path) -> str:
    """done / started / missing."""
    directory = Path(directory)
    if (directory / DONE).is_file():
        return "done"
    return "started" if (directory / STARTED).is_file() else "missing"
