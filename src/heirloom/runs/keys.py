"""What decides a stage's output, as values a stage key can hash.

- `metric_fingerprints`: each metric's `Metric.fingerprint()` (name, version, the
  options that change values, a scorer model's identity), so a new metric version
  or toxicity classifier revision redoes scoring; the column a spec renames to is
  part of the scoring key too (it names the output).
- `model_identity`: `ModelRef.identity`, with a local model directory or file named
  by its content hash instead of its path: a student retrained in place is a new
  student; a renamed copy of the same weights is the same one. Aliases and hub ids
  stay names.
- `content_hash` (defined in `provenance.py`, where metrics can reach it too):
  sha256 over a file or a directory's files, cached in `$HEIRLOOM_CACHE`.
- `profile_scorers`: fingerprints of the metric specs the profiling suites score with.
Left out: which stage hashes what (`runner`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..provenance import content_hash  # noqa: F401  (a stage key ingredient; lives low so metrics can use it)


def metric_fingerprints(specs: Iterable[str]) -> list[str]:
    from ..metrics.registry import get_metrics

    specs = list(specs)
    return [m.fingerprint() for m in get_metrics(specs)] if specs else []


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
