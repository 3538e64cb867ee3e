"""Completion markers that make a run restartable and never reuse stale work.

Each stage owns a directory. `begin(key)` records the hash of everything the
stage depends on (see `keys`); if the directory holds work started under another
key, that work is stale: it is moved aside to `<parent>/.stale/<directory>-<its key>/`,
never mixed with new work and never deleted (hours of generation are not thrown
away because a config changed, or because a new heirloom version added a field).
When the config comes back to a key whose work was moved aside, `is_done()` puts
that work back first, so switching a config back and forth costs nothing.
`.stale/` can be deleted at any time. `finish()` writes the done marker;
`is_done()` lets a rerun skip the stage. Work inside a stage (candidate batches,
training checkpoints) resumes by its own means when the key is unchanged.
`retire_others` moves aside the directories of arms a config no longer has.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..provenance import config_hash, record
from ..tables import write_json
from .layout import DONE, STALE, STARTED, read_marker

Log = Callable[[str], Any]


def _quiet(message: str) -> None:
    pass


@dataclass
class Stage:
    directory: Path
    name: str
    key: str
    log: Log = _quiet

    @classmethod
    def of(cls, directory: str | Path, name: str, inputs: Any, log: Log | None = None) -> "Stage":
        return cls(Path(directory), name, config_hash(inputs), log or _quiet)

    def _stale_slot(self, key: str) -> Path:
        return self.directory.parent / STALE / f"{self.directory.name}-{key}"

    def _started_key(self) -> str | None:
        started = read_marker(self.directory, STARTED)
        return None if started is None else started.get("key")

    def _move_aside(self) -> None:
        """Work made under another key goes to its stale slot (replacing an older copy of it)."""
        key = self._started_key()
        if key is None or key == self.key:
            return
        slot = _move_to_stale(self.directory, key)
        self.log(f"[{self.name}] config changed: earlier work moved aside to {slot}")

    def _restore(self) -> None:
        slot = self._stale_slot(self.key)
        if self._started_key() == self.key or not slot.exists():
            return
        self._move_aside()
        if self.directory.exists():  # work with no stage marker: nothing we made, leave it alone
            return
        slot.rename(self.directory)
        self.log(f"[{self.name}] config matches earlier work: restored from {slot}")

    def is_done(self) -> bool:
        self._restore()
        done = read_marker(self.directory, DONE)
        return done is not None and done.get("key") == self.key

    def begin(self, inputs: Any = None) -> Path:
        self._restore()
        self._move_aside()  # made under another config: never mixed with new work
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / DONE).unlink(missing_ok=True)
        write_json(record(stage=self.name, key=self.key, inputs=inputs), self.directory / STARTED)
        return self.directory

    def finish(self, **summary: Any) -> None:
        write_json(record(stage=self.name, key=self.key, **summary), self.directory / DONE)


def _move_to_stale(directory: Path, key: str) -> Path:
    slot = directory.parent / STALE / f"{directory.name}-{key}"
    if slot.exists():
        shutil.rmtree(slot)  # an older copy of the very same work
    slot.parent.mkdir(parents=True, exist_ok=True)
    directory.rename(slot)
    return slot


def retire_others(parent: Path, keep: Iterable[str], log: Log = _quiet) -> list[Path]:
    """Move aside every stage directory under `parent` whose name is not in `keep` (arms a config
    dropped): to `.stale/` like any stale work, so they stay out of the report. Directories with no
    stage marker are the user's, and stay."""
    keep, moved = set(keep), []
    if not parent.is_dir():
        return moved
    for d in sorted(parent.iterdir()):
        if not d.is_dir() or d.name == STALE or d.name in keep:
            continue
        started = read_marker(d, STARTED)
        if started is None or not started.get("key"):
            continue
        moved.append(_move_to_stale(d, started["key"]))
        log(f"[{started.get('stage', 'run')}] {d.name} is not in the config: moved aside to {moved[-1]}")
    return moved
