"""Which trainer checkpoint a rerun resumes from, and what a killed save left behind.

The Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler,
RNG states, `trainer_state.json` last) with no temporary name, so a kill during a
save leaves a directory that looks like the newest checkpoint but cannot be
loaded: every rerun would stop with a traceback. `checkpoint_problem` reads a
checkpoint's files for the marks a cut-short write leaves (a missing or
unparsable `trainer_state.json`, or one of another step; a safetensors file
shorter than its header says; a `torch.save` zip without its closing directory)
and `prepare_checkpoints` moves such directories aside, never deleting them
(`<out>/checkpoints-incomplete/`, named in a warning), then resumes from the newest
complete one, or from scratch. Left out: damage that leaves every length right
(a disk that lied about a flush, bit rot); those still fail loudly when loaded.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
import zipfile
from pathlib import Path

from ..errors import HeirloomError
from ..provenance import config_hash
from ..tables import write_json

_NAME = re.compile(r"^checkpoint-(\d+)$")
ASIDE = "checkpoints-incomplete"


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the checkpoint directory `path` cannot be resumed from, or None when it is complete."""
    path = Path(path)
    m = _NAME.match(path.name)
    step = int(m.group(1)) if m else None
    state = path / "trainer_state.json"
    try:
        doc = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "trainer_state.json is missing"
    except (OSError, ValueError):
        return "trainer_state.json is cut short or unreadable"
    if not isinstance(doc, dict) or (step is not None and doc.get("global_step") != step):
        return f"trainer_state.json is not the state of step {step}"
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("pytorch_model*.bin"))
    if not weights:
        return "no model weights"
    for f in sorted(path.iterdir()):
        problem = _safetensors_problem(f) if f.suffix == ".safetensors" else (
            _torch_zip_problem(f) if f.suffix in (".pt", ".pth", ".bin") else None)
        if problem:
            return f"{f.name}: {problem}"
    return None


def _safetensors_problem(f: Path) -> str | None:
    size = f.stat().st_size
    try:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size:
                return "header longer than the file (cut short)"
            header = json.loads(fh.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return "unreadable header (cut short)"
    if size != 8 + n + end:
        return f"{size} bytes where its header says {8 + n + end} (cut short)"
    return None


def _torch_zip_problem(f: Path) -> str | None:
    # torch.save writes a zip whose central directory comes last: a cut-short file has none.
    return None if zipfile.is_zipfile(f) else "not a complete torch.save archive (cut short)"


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def latest_complete(checkpoints_dir: Path, move_aside: bool) -> str | None:
    """The newest complete `checkpoint-N` in `checkpoints_dir`; incomplete ones found on the way are
    moved to `<parent>/checkpoints-incomplete/` (when `move_aside`) and named in a warning."""
    if not checkpoints_dir.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in checkpoints_dir.iterdir()
                   if p.is_dir() and (m := _NAME.match(p.name)))
    complete = None
    for _, p in reversed(found):
        problem = checkpoint_problem(p)
        if problem is None:
            complete = complete or str(p)
            continue
        where = "left in place"
        if move_aside:
            target = _free_name(checkpoints_dir.parent / ASIDE / p.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            p.rename(target)
            where = f"moved to {target}"
        print(f"warning: {p} is incomplete ({problem}; interrupted while saving?): {where}, not resumed from",
              file=sys.stderr)
    return complete


def _free_name(target: Path) -> Path:
    i = 1
    while target.exists():
        i += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{i}")
    return target


def prepare_checkpoints(checkpoints_dir: Path, fingerprint: dict, resume: bool) -> str | None:
    """The checkpoint to resume from (None: start from scratch), after checking it was made from the
    same inputs; with `resume` off, earlier checkpoints (heirloom's own) are deleted."""
    main = _is_main_process()
    run_file = checkpoints_dir / "run.json"
    last = latest_complete(checkpoints_dir, move_aside=main) if resume else None
    if last:
        made_from = json.loads(run_file.read_text()) if run_file.exists() else {}
        if made_from.get("hash") != config_hash(fingerprint):
            raise HeirloomError(
                f"{checkpoints_dir}: checkpoints were made from a different student, data or config; "
                "delete them, use another out dir, or set resume to false")
    elif checkpoints_dir.exists() and main:
        # Ours alone: a fresh run must not rotate or mix old checkpoints (incomplete ones, moved
        # aside above, are kept).
        shutil.rmtree(checkpoints_dir)
    if main:
        write_json({"hash": config_hash(fingerprint), **fingerprint}, run_file)
    return last
