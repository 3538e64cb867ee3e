"""How an artifact was made: package versions, platform, seeds, config.

Every file heirloom writes carries this record (in a sidecar `*.meta.json`
or inside the artifact), so that a result can be traced back to its inputs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from importlib import metadata
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
