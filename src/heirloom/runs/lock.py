"""One `heirloom run` at a time per run directory.

Two runs writing one directory would interleave their candidates and race over the
same markers, and both would call the result theirs. `run_lock` holds an exclusive
advisory lock (`flock`) on `<run_dir>/.lock` for the whole run; a second run on the
same directory stops at once with an error naming the process that holds it. The
lock ends with its process, so a killed run never leaves the directory locked.
Left out: platforms without `fcntl` (Windows) run unlocked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import HeirloomError

LOCK = ".lock"


@contextmanager
def run_lock(run_dir: str | Path):
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(run_dir) / LOCK
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise HeirloomError(f"{run_dir}: another heirloom run is using this run directory ({holder}); "
                                "wait for it to end or choose another --run-dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
