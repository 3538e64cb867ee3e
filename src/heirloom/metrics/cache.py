"""A disk cache of scores, so a slow or paid scorer never scores a text twice.

Rows are keyed by (scorer, sha256 of the text, attribute); `scorer` names the
scorer and every setting that changes its values (e.g. "profanity-check@1.9.1",
"classifier|unitary/toxic-bert@<commit>|sigmoid|max_length=model", or for a local
model directory "classifier|dir-sha256:<content hash>|..."), so a new version, model
revision or setting never reads stale scores and two models never share them.
It is one SQLite file, `$HEIRLOOM_CACHE/scores.sqlite` (default
`~/.cache/heirloom`), safe to share between processes (SQLite locking; writes are
committed per batch, so an interrupted run keeps what it paid for).

Only defined values are stored: a failed or undefined score is asked again next
time rather than remembered as a NaN. Eviction is left to the user (delete the file).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import HeirloomError

_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
    scorer TEXT NOT NULL, text_sha256 TEXT NOT NULL, attribute TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (scorer, text_sha256, attribute)) WITHOUT ROWID"""
_CHUNK = 500  # SQLite caps the number of bound parameters per statement


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_path() -> Path:
    from ..models.loader import cache_root

    return cache_root() / "scores.sqlite"


class ScoreCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (sqlite3.Error, OSError) as e:
            raise HeirloomError(f"{self.path}: cannot open the score cache ({e})") from None

    def get(self, scorer: str, keys: Sequence[str], attributes: Iterable[str]) -> dict[tuple[str, str], float]:
        """{(text key, attribute): value} for the pairs that are cached."""
        attributes = list(attributes)
        found: dict[tuple[str, str], float] = {}
        unique = list(dict.fromkeys(keys))
        marks = ",".join("?" * len(attributes))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            rows = self._db.execute(
                f"SELECT text_sha256, attribute, value FROM scores WHERE scorer = ? "
                f"AND text_sha256 IN ({','.join('?' * len(chunk))}) AND attribute IN ({marks})",
                [scorer, *chunk, *attributes])
            for key, attribute, value in rows:
                found[(key, attribute)] = value
        return found

    def put(self, scorer: str, rows: Iterable[tuple[str, str, float]]) -> None:
        """Store (text key, attribute, value) rows; NaN values are skipped (see module doc)."""
        rows = [(scorer, k, a, float(v)) for k, a, v in rows if v == v]
        self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)
        self._db.commit()

    def count(self, scorer: str | None = None) -> int:
        if scorer is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE scorer = ?", [scorer]).fetchone()[0]

    def close(self) -> None:
        self._db.close()
