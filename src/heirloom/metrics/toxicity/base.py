"""The interface every toxicity scorer implements, and the metric that uses it.

A backend scores a batch of texts and returns, per attribute it knows (e.g.
Perspective's six), one probability per text, plus a reason per text it could
not score (NaN). `ToxicityMetric` (metric `toxicity`) picks one attribute, skips
empty texts (NaN, as the paper's protocol skips empty samples), and keeps every
score in the disk cache (`heirloom.metrics.cache`) keyed by the backend's
`cache_key`, storing all attributes a call returned, so asking later for another
attribute of the same texts costs nothing. Backends load their model or client
lazily: a fully cached run needs neither.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...errors import HeirloomError
from ..base import NoOptions


class ToxicityBackend(ABC):
    name: ClassVar[str] = ""
    batch_size: ClassVar[int] = 256  # texts per call, and per cache commit
    slow: ClassVar[bool] = False  # show a progress bar per batch
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel):
        self.options = options
        self.check()

    def check(self) -> None:
        """Fail early (missing dependency, key, checkpoint) before any text is scored."""

    @property
    @abstractmethod
    def attributes(self) -> tuple[str, ...]:
        """Lower-case names of the attributes one call returns."""

    @property
    def default_attribute(self) -> str:
        return self.attributes[0]

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """Scorer name, version and every setting that changes the values."""

    @property
    def label_text(self) -> str:
        """The scorer for a reader, beside every number it produced (model and revision, version)."""
        return self.cache_key

    @abstractmethod
    def score_batch(self, texts: list[str]) -> tuple[dict[str, np.ndarray], list[str | None]]:
        """({attribute: values}, reasons) for non-empty texts; NaN values need a reason."""

    def close(self) -> None:
        """Release clients or models (no-op by default)."""


def check_attribute(backend: ToxicityBackend, attribute: str | None) -> str:
    attribute = (attribute or backend.default_attribute).lower()
    if attribute not in backend.attributes:
        raise HeirloomError(f"toxicity backend {backend.name!r}: no attribute {attribute!r} "
                            f"(has: {', '.join(backend.attributes)})")
    return attribute
