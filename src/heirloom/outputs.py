"""Never replace a file the user did not ask to replace.

A command may write over what it made itself on an earlier run: rerunning a
command is how a user redoes it. It knows its own files by their provenance
record (`<file>.meta.json` naming the command, or, for a directory, a marker
file inside it). Anything else needs `--overwrite`:
- an output that is also an input of the same command (`select --in X --out X`
  would replace the pool with its selected rows);
- an existing file with no record: the user's own (a prompt file, notes);
- a file another command made (`generate --out` onto a scored pool).
Two outputs of one command that are the same file are always an error.

Left out: locking against two processes writing one output at the same time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from .errors import HeirloomError

PathLike = str | os.PathLike


def meta_path(path: PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def made_by(path: PathLike) -> str | None:
    """The command recorded in `<path>.meta.json` (its `stage`), or None without a readable record."""
    try:
        doc = json.loads(meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("stage"), str):
        return doc["stage"]
    if isinstance(doc.get("teachers"), dict):  # a candidates work file records its teachers' settings
        return "generate"
    return None


def same_file(a: PathLike, b: PathLike) -> bool:
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output(path: PathLike, command: str, inputs: Iterable[PathLike | None] = (), overwrite: bool = False,
                 option: str = "--out", listed_by: PathLike | None = None) -> None:
    """Refuse to write `path` unless it is new, was made by `command`, or `overwrite` is set.

    `listed_by`: for a secondary output without a record of its own (select's summary), the main
    output whose record lists it.
    """
    path = Path(path)
    if overwrite:
        return
    for source in inputs:
        if source is not None and same_file(path, source):
            raise HeirloomError(f"{option} {path}: is also an input of this command; write to another file "
                                "(or pass --overwrite to replace it)")
    if not path.exists():
        return
    if path.is_dir():
        raise HeirloomError(f"{option} {path}: is a directory, not a file")
    maker = made_by(listed_by if listed_by is not None else path)
    if maker == command:
        if listed_by is None or _lists(listed_by, path):
            return
        maker = None  # the main output is ours, but its record does not list this file
    what = f"made by `heirloom {maker}`" if maker else "not made by this command"
    raise HeirloomError(f"{option} {path}: already exists ({what}); pass --overwrite to replace it, "
                        "or write to another file")


def _lists(owner: PathLike, path: Path) -> bool:
    try:
        outputs = json.loads(meta_path(owner).read_text(encoding="utf-8")).get("outputs", {})
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(p, str) and same_file(p, path) for p in outputs.values())


def check_distinct(outputs: Mapping[str, PathLike]) -> None:
    """Two outputs of one command must be two files (`--summary` equal to `--out` loses one of them)."""
    items = list(outputs.items())
    for i, (opt_a, a) in enumerate(items):
        for opt_b, b in items[i + 1:]:
            if same_file(a, b):
                raise HeirloomError(f"{opt_a} and {opt_b} are the same file ({a}); give them different paths")


def check_output_dir(path: PathLike, markers: Iterable[str], overwrite: bool = False, option: str = "--out",
                     what: str = "this command") -> None:
    """A directory output must be new, empty, or hold one of `markers` (made by `what` before)."""
    path = Path(path)
    if overwrite or not path.exists():
        return
    if not path.is_dir():
        raise HeirloomError(f"{option} {path}: is a file, not a directory")
    entries = sorted(p.name for p in path.iterdir())
    if not entries or any((path / m).exists() for m in markers):
        return
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise HeirloomError(f"{option} {path}: holds files {what} did not make ({shown}); use a new or empty "
                        "directory, or pass --overwrite to write into it")
