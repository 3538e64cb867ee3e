"""alt-profanity-check: an offline linear model (TF-IDF + calibrated SVM), the default.

Fast (thousands of texts per second on a CPU) and always available, but it
detects offensive/profane wording rather than toxicity in Perspective's sense: it
measures profanity. Use the classifier backend (a toxicity model) or perspective for toxicity.
Its one attribute is `profanity`, `profanity_check.predict_prob(texts)` exactly.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from ...errors import MissingDependency
from .base import ToxicityBackend


class ProfanityCheck(ToxicityBackend):
    name = "profanity-check"
    batch_size = 4096

    def check(self) -> None:
        try:
            self._version = metadata.version("alt-profanity-check")
        except metadata.PackageNotFoundError:
            raise MissingDependency("the profanity-check toxicity backend", "alt-profanity-check") from None

    @property
    def attributes(self) -> tuple[str, ...]:
        return ("profanity",)

    @property
    def cache_key(self) -> str:
        return f"profanity-check@{self._version}"

    @property
    def label_text(self) -> str:
        return self._version

    def score_batch(self, texts):
        from profanity_check import predict_prob

        return {"profanity": np.asarray(predict_prob(texts), dtype=np.float64)}, [None] * len(texts)
