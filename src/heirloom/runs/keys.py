"""What decides a stage's output, as values a stage key can hash.

- `metric_fingerprints`: each metric's `Metric.fingerprint()` (name, version, the
  options that change values, a scorer model's identity), so a new metric version
  or toxicity classifier revision redoes scoring; the column a spec renames to is
  part of the scoring key too (it names the output).
- `model_identity`: `ModelRef.identity`, with a local model directory or file named
  by its content hash instead of its path: a student retrained in place is a new
  student; a renamed copy of the same weights is the same one. Aliases and hub ids
  stay names.
- `content_hash`: sha256 over a file or a directory's files (relative path and
  bytes; names starting with "." such as `.git/` or `.cache/` are left out).
  Hashing gigabytes takes seconds, so a digest is remembered in
  `$HEIRLOOM_CACHE/content-hashes.json` by path, size and mtime of every file.
- `profile_scorers`: fingerprints of the metric specs the profiling suites score with.
Left out: which stage hashes what (`runner`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

CACHE_FILE = "content-hashes.json"


def metric_fingerprints(specs: Iterable[str]) -> list[str]:
    from ..metrics.registry import get_metrics

    specs = list(specs)
    return [m.fingerprint() for m in get_metrics(specs)] if specs else []


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
    from ..models.loader import cache_root

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


def model_identity(text: str) -> str:
    """`ModelRef.identity`; a local model directory or file is `sha256:<content hash>` (`vllm:sha256:...`)."""
    from ..models.refs import ModelRef

    ref = ModelRef.parse(text)
    inner = ref
    while inner.backend == "ray":
        inner = ModelRef.parse(inner.name)
    path = Path(inner.name).expanduser()
    if inner.backend != "openai" and path.exists():  # the engine stays part of it (hf and vllm differ)
        return ("" if inner.backend == "hf" else f"{inner.backend}:") + f"sha256:{content_hash(path)}"
    return ref.identity


def profile_scorers(config) -> dict[str, list[str]]:
    """{suite: fingerprints} for every suite of a `ProfileConfig` that names its metrics (`metric`/`metrics`)."""
    out: dict[str, list[str]] = {}
    for suite in config.suites:
        sub = getattr(config, suite, None)
        fields = getattr(type(sub), "model_fields", {})
        specs: list[str] = []
        if isinstance(getattr(sub, "metric", None), str) and "metric" in fields:
            specs.append(sub.metric)
        if "metrics" in fields and getattr(sub, "metrics", None):
            specs += list(sub.metrics)
        if specs:
            out[suite] = metric_fingerprints(specs)
    return out
