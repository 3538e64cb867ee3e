"""How an artifact was made: package versions, platform, seeds, config.

Every file heirloom writes carries this record (in a sidecar `*.meta.json`
or inside the artifact), so that a result can be traced back to its inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "heirloom", "torch", "transformers", "trl", "peft", "accelerate", "gguf",
    "lexicalrichness", "alt-profanity-check", "numpy", "pandas", "vllm", "toxic-comment-classifier",
)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages that can change a result (absent ones omitted)."""
    versions = {}
    for name in _PACKAGES + extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def config_hash(obj: Any) -> str:
    """A stable short hash of a JSON-serialisable object (used to detect stale artifacts)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record(**fields: Any) -> dict[str, Any]:
    """A provenance record: the caller's fields plus versions, platform and time."""
    return {
        **fields,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- content hashes: a local model or data file named by its bytes, not its path ---------
CACHE_FILE = "content-hashes.json"


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def _stamps(root: Path, files: list[Path]) -> list[list[Any]]:
    return [[str(f.relative_to(root)) if f != root else f.name, f.stat().st_size, f.stat().st_mtime_ns]
            for f in files]


def content_hash(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, or of a directory's files (relative paths and bytes)."""
    from .models.loader import cache_root

    root = Path(path).expanduser().resolve()
    files = _files(root)
    stamps = _stamps(root, files)
    cache_path = cache_root() / CACHE_FILE
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(str(root)) if isinstance(cache, dict) else None
    if isinstance(hit, dict) and hit.get("stamps") == stamps:
        return hit["sha256"]
    total = hashlib.sha256()
    for f, (name, _, _) in zip(files, stamps):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        total.update(f"{name}\0{h.hexdigest()}\n".encode())
    digest = total.hexdigest()
    try:  # a cache that cannot be written only costs the next run the hashing again
        cache = cache if isinstance(cache, dict) else {}
        cache[str(root)] = {"stamps": stamps, "sha256": digest}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        tmp.replace(cache_path)
    except OSError:
        pass
    return digest
