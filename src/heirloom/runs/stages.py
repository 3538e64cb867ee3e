"""Completion markers that make a run restartable and never reuse stale work.

Each stage owns a directory. `begin(key)` records the hash of everything the
stage depends on (its config and its inputs' keys); if the directory holds work
started under another key, that work is stale: it is moved aside to
`<parent>/.stale/<directory>-<its key>/`, never mixed with new work and never
deleted (hours of generation are not thrown away because a config changed, or
because a new heirloom version added a field). When the config comes back to a
key whose work was moved aside, `is_done()` puts that work back first, so
switching a config back and forth costs nothing. `.stale/` can be deleted at any
time. `finish()` writes the done marker; `is_done()` lets a rerun skip the
stage. Work inside a stage (candidate batches, training checkpoints) resumes by
its own means when the key is unchanged.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..provenance import config_hash, record
from ..tables import write_json

STARTED = ".stage.json"
DONE = ".done.json"
STALE = ".stale"


@dataclass
class Stage:
    directory: Path
    name: str
    key: str
    log: Callable[[str], Any] = lambda message: None

    @classmethod
    def of(cls, directory: str | Path, name: str, inputs: Any, log: Callable[[str], Any] | None = None) -> "Stage":
        return cls(Path(directory), name, config_hash(inputs), log or (lambda message: None))

    def _stale_slot(self, key: str) -> Path:
        return self.directory.parent / STALE / f"{self.directory.name}-{key}"

    def _started_key(self) -> str | None:
        started = self._read(STARTED)
        return None if started is None else started.get("key")

    def _move_aside(self) -> None:
        """Work made under another key goes to its stale slot (replacing an older copy of it)."""
        key = self._started_key()
        if key is None or key == self.key:
            return
        slot = self._stale_slot(key)
        if slot.exists():
            shutil.rmtree(slot)
        slot.parent.mkdir(parents=True, exist_ok=True)
        self.directory.rename(slot)
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

    def _read(self, marker: str) -> dict | None:
        path = self.directory / marker
        return json.loads(path.read_text()) if path.exists() else None

    def is_done(self) -> bool:
        self._restore()
        done = self._read(DONE)
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
