"""A model's family, read without loading it: `model_type` from its `config.json`.

Provenance only (does a teacher share a base with the student? some traits transfer only
between models of one base): anything not at hand (hub ids not in a local directory,
servers, GGUF files) is None, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path

from .embedded import EMBEDDED
from .refs import ModelRef


def model_type(text: str) -> str | None:
    """`model_type` from a local or embedded model's config.json, without loading it; None if not at hand."""
    try:
        ref = ModelRef.parse(text)
        while ref.backend == "ray":
            ref = ModelRef.parse(ref.name)
        if ref.backend == "openai":
            return None
        path = EMBEDDED[ref.name].locate() if ref.name in EMBEDDED else Path(ref.name).expanduser()
        config = path / "config.json" if path.is_dir() else None
        if config is None or not config.is_file():
            return None
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") or None
    except Exception:  # provenance only: never fail a run over it
        return None
