"""`toxicity`: one metric over four backends, with the disk cache in front.

    toxicity                                   alt-profanity-check (offline default; measures profanity)
    toxicity:backend=classifier:model=unitary/toxic-bert
                                               any transformers sequence-classification model
    toxicity:backend=jigsaw-bilstm              the Jigsaw BiLSTM shipped in a PyPI package (offline)
    toxicity:backend=perspective:attribute=insult:qps=1
                                               Perspective API ($PERSPECTIVE_API_KEY; closes 2026-12-31)

Metric options (backend, attribute, cache) are validated here; every other option
belongs to the backend and is validated by the backend's own options model. The
former `detoxify` backend (a hand-downloaded `.ckpt` through the detoxify package)
is gone: Detoxify's published models are transformers models on the hub, loaded
by the classifier backend; `backend=detoxify` says so.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...errors import HeirloomError
from ..base import Corpus, Metric, Scores, validate_options
from ..cache import ScoreCache, text_key
from .base import ToxicityBackend, check_attribute

EMPTY = "empty text (skipped, as the paper's protocol skips empty samples)"


DETOXIFY_MODELS = {"original": "unitary/toxic-bert", "unbiased": "unitary/unbiased-toxic-roberta",
                   "multilingual": "unitary/multilingual-toxic-xlm-roberta"}


def backends() -> dict[str, type[ToxicityBackend]]:
    from .bilstm import JigsawBiLSTM
    from .classifier import Classifier
    from .perspective import Perspective
    from .profanity import ProfanityCheck

    return {b.name: b for b in (ProfanityCheck, Classifier, JigsawBiLSTM, Perspective)}


class ToxicityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["profanity-check", "classifier", "jigsaw-bilstm", "perspective"] = Field(
        "profanity-check", description="scorer: profanity-check (offline, profanity), classifier (a transformers "
                                       "toxicity classifier, model=...), jigsaw-bilstm (toxic-comment-classifier's "
                                       "packaged BiLSTM), perspective (Perspective API)")
    attribute: str | None = Field(None, description="which score of the backend (default: its main one: "
                                                        "profanity, the classifier's toxic label, toxicity)")
    cache: bool = Field(True, description="read and write the disk cache of scores ($HEIRLOOM_CACHE)")


class ToxicityMetric(Metric):
    name = "toxicity"
    higher_is_better = False
    unit = "probability"
    version = "1"
    description = ("probability that the text is toxic/offensive (backends: profanity-check, classifier, "
                   "jigsaw-bilstm, perspective)")
    Options = ToxicityOptions

    def __init__(self, **options: Any):
        if options.get("backend") == "detoxify":
            raise HeirloomError("toxicity backend 'detoxify' was replaced by the classifier backend: Detoxify's "
                                "models are transformers models, e.g. toxicity:backend=classifier:model="
                                + ", ".join(f"{v} ({k})" for k, v in DETOXIFY_MODELS.items()))
        own = {k: options.pop(k) for k in list(options) if k in ToxicityOptions.model_fields}
        super().__init__(**own)
        cls = backends()[self.options.backend]
        self.backend_options = validate_options(cls.Options, options, f"metric 'toxicity' (backend {cls.name})")
        self.backend = cls(self.backend_options)
        self.attribute = check_attribute(self.backend, self.options.attribute)

    @property
    def changed_options(self) -> dict[str, Any]:
        return {**self.options.model_dump(exclude_defaults=True),
                **self.backend_options.model_dump(exclude_defaults=True)}

    @property
    def scorer(self) -> str:
        """Who scored, for a reader: e.g. 'classifier unitary/toxic-bert@5cc53439...' (shown beside numbers)."""
        return f"{self.backend.name} {self.backend.label_text}, {self.attribute}"

    def fingerprint(self) -> str:
        return f"{self.name}@{self.version}|{self.attribute}|{self.backend.cache_key}"

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["options"] = {**info["options"], "attribute": self.attribute,
                           **self.backend_options.model_dump(mode="json")}
        info["scorer"] = self.backend.cache_key
        info["scorer_label"] = self.scorer
        for key in ("revision", "content_sha256", "activation", "label"):  # the classifier's identity
            if getattr(self.backend, key, None) is not None:
                info[key] = getattr(self.backend, key)
        return info

    def compute(self, corpus: Corpus) -> Scores:
        values = np.full(len(corpus), np.nan)
        reasons: list[str | None] = [None] * len(corpus)
        rows = [i for i, t in enumerate(corpus.texts) if t.strip()]
        for i in set(range(len(corpus))) - set(rows):
            reasons[i] = EMPTY
        keys = {i: text_key(corpus.texts[i]) for i in rows}
        cache = ScoreCache() if self.options.cache else None
        try:
            found = cache.get(self.backend.cache_key, list(keys.values()), [self.attribute]) if cache else {}
            scores = {k: v for (k, _), v in found.items()}
            todo = {keys[i]: corpus.texts[i] for i in rows if keys[i] not in scores}  # distinct texts only
            failed: dict[str, str] = {}
            if todo:
                self._score_missing(todo, scores, failed, cache, progress=corpus.progress)
        finally:
            if cache:
                cache.close()
        for i in rows:
            k = keys[i]
            if k in scores:
                values[i] = scores[k]
            else:
                reasons[i] = failed.get(k, f"{self.backend.name} returned no {self.attribute!r} score")
        return Scores(values, reasons)

    def _score_missing(self, todo: dict[str, str], scores: dict, failed: dict, cache, progress: bool) -> None:
        from tqdm.auto import tqdm

        items = list(todo.items())
        size = self.backend.batch_size
        bar = tqdm(total=len(items), desc=f"toxicity ({self.backend.name})", unit="text",
                   disable=not (progress and self.backend.slow))
        try:
            for start in range(0, len(items), size):
                chunk = items[start:start + size]
                by_attribute, why = self.backend.score_batch([t for _, t in chunk])
                if self.attribute not in by_attribute:
                    raise HeirloomError(f"toxicity backend {self.backend.name!r}: no attribute {self.attribute!r} "
                                        f"(has: {', '.join(by_attribute)})")
                rows = []
                for j, (k, _) in enumerate(chunk):
                    for attribute, vals in by_attribute.items():
                        rows.append((k, attribute, vals[j]))
                    v = by_attribute[self.attribute][j]
                    if v == v:  # not NaN
                        scores[k] = float(v)
                    else:
                        failed[k] = why[j] or f"{self.backend.name} returned no {self.attribute!r} score"
                if cache:
                    cache.put(self.backend.cache_key, rows)  # committed per batch: an interruption keeps them
                bar.update(len(chunk))
        finally:
            bar.close()
            self.backend.close()
