"""`toxicity:backend=classifier`: any transformers sequence-classification model as the scorer.

    toxicity:backend=classifier:model=unitary/toxic-bert:revision=<commit>
    toxicity:backend=classifier:model=/models/roberta_toxicity_classifier:device=cuda:batch_size=64
    toxicity:backend=classifier:model=DIR:attribute=insult       another head of a multi-label model

The score of a text is the probability of the model's toxic label: softmax over the labels for a
single-label head, sigmoid per label for a multi-label head (the config's `problem_type`;
`activation=` overrides a config that does not say). Every label is an attribute (lower-cased), so a
multi-label model's other heads are asked with `attribute=` and land in the cache from the same call.
The toxic label is `label=`, or else the one label whose name contains "toxic" (an exact `toxic` or
`toxicity` wins) and is not a negation (`non-toxic`, `not_toxic`, `nontoxic`...).

The model is identified by what decides its values: a hub id by the commit its files resolve to
(`revision=` pins it; unpinned, the commit `main` resolves to is recorded and then loaded), a
local directory by the SHA-256 of its files' names and contents (so the same model at two paths shares cached
scores and two different models never do). Texts longer than the model's limit (`max_length=`, else
the tokenizer's `model_max_length` or the config's position embeddings) are truncated to it: the
score is then the score of the text's beginning. Left out: regression heads, pair (two-text)
classification, models that need `trust_remote_code`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...errors import HeirloomError
from .base import ToxicityBackend

_NEGATED = re.compile(r"(non|not|no|un)[\s_\-]*toxic", re.IGNORECASE)
_PLAIN = ("toxic", "toxicity")
_COMMIT = re.compile(r"/snapshots/([0-9a-f]{40})/")


class ClassifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="hub id or local directory of a transformers sequence-classification model")
    revision: str | None = Field(None, description="hub revision (commit, tag or branch) to load; the resolved "
                                                   "commit is recorded (hub ids only)")
    label: str | None = Field(None, description="the toxic label (default: the label named like 'toxic', "
                                                "negations such as non-toxic excluded)")
    activation: Literal["auto", "softmax", "sigmoid"] = Field(
        "auto", description="softmax (single-label) or sigmoid (multi-label); auto follows the config's problem_type")
    device: str = Field("cpu", description="torch device (cpu, cuda, cuda:1, mps)")
    batch_size: int = Field(32, ge=1, description="texts per forward pass")
    max_length: int | None = Field(None, ge=1, description="tokens per text at most; longer texts are truncated "
                                                           "(default: the model's limit)")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def pick_label(labels: list[str], wanted: str | None, where: str) -> str:
    """The toxic label among `labels` (see the module doc), or a one-line error saying how to choose."""
    if wanted is not None:
        match = [l for l in labels if l.lower() == wanted.lower()]
        if not match:
            raise HeirloomError(f"{where}: no label {wanted!r} (labels: {', '.join(labels)})")
        return match[0]
    named = [l for l in labels if "toxic" in l.lower() and not _NEGATED.search(l)]
    plain = [l for l in named if l.lower() in _PLAIN]
    if plain or len(named) == 1:
        return (plain or named)[0]
    what = "several labels name toxicity" if named else "no label names toxicity"
    raise HeirloomError(f"{where}: {what} (labels: {', '.join(labels)}); choose one with label=NAME")


class Classifier(ToxicityBackend):
    name = "classifier"
    Options = ClassifierOptions

    def check(self) -> None:
        from transformers import AutoConfig

        o = self.options
        path = Path(o.model).expanduser()
        self.local = path.exists()
        where = f"toxicity classifier {o.model}"
        if self.local and not path.is_dir():
            raise HeirloomError(f"{where}: not a directory (give a model directory or a hub id)")
        if not self.local and (o.model.startswith(("/", "./", "../", "~")) or o.model.count("/") > 1):
            raise HeirloomError(f"{where}: no such directory")
        if self.local and o.revision:
            raise HeirloomError(f"{where}: revision= applies to hub ids, not to a local directory")
        self.source = str(path) if self.local else o.model
        try:
            config = AutoConfig.from_pretrained(self.source, revision=o.revision)
        except (OSError, ValueError, KeyError) as e:
            hint = "" if self.local else " (offline, a hub id must already be in the Hugging Face cache)"
            raise HeirloomError(f"{where}: cannot read a transformers config ({_first_line(e)}){hint}") from None
        archs = list(getattr(config, "architectures", None) or [])
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise HeirloomError(f"{where}: not a sequence-classification model (architectures: "
                                f"{', '.join(archs) or 'none'})")
        id2label = {int(k): str(v) for k, v in config.id2label.items()}
        self.labels = [id2label[i] for i in sorted(id2label)]
        if len({l.lower() for l in self.labels}) != len(self.labels):
            raise HeirloomError(f"{where}: labels differ only by case ({', '.join(self.labels)})")
        problem = getattr(config, "problem_type", None)
        if o.activation != "auto":
            self.activation = o.activation
        else:
            self.activation = "sigmoid" if problem == "multi_label_classification" else "softmax"
        if (o.activation == "auto" and problem == "regression") or (len(self.labels) == 1 and
                                                                     self.activation == "softmax"):
            raise HeirloomError(f"{where}: a regression head (one output) gives no class probabilities; "
                                "if its output is a logit, say activation=sigmoid")
        self.label = pick_label(self.labels, o.label, where)
        # What identifies the weights: the resolved hub commit, or the directory's content hash.
        self.revision = None if self.local else _hub_commit(self.source, o.revision, where)
        if self.local:  # the same content hash run stages key models on (remembered by file size and mtime)
            from ...provenance import content_hash

            self.content_sha256 = content_hash(path)
        else:
            self.content_sha256 = None
        self._model = self._tokenizer = None

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(l.lower() for l in self.labels)

    @property
    def default_attribute(self) -> str:
        return self.label.lower()

    @property
    def identity(self) -> str:
        if self.local:
            return f"dir-sha256:{self.content_sha256}"
        return f"{self.options.model}@{self.revision}"

    @property
    def cache_key(self) -> str:
        return f"classifier|{self.identity}|{self.activation}|max_length={self.options.max_length or 'model'}"

    @property
    def label_text(self) -> str:
        if self.local:
            return f"{Path(self.source).name} (dir sha256 {self.content_sha256[:12]})"
        return f"{self.options.model}@{self.revision[:12]}"

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            where = f"toxicity classifier {self.options.model}"
            revision = self.revision if not self.local else None
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.source, revision=revision)
                model = AutoModelForSequenceClassification.from_pretrained(self.source, revision=revision)
                self._device = torch.device(self.options.device)
                self._model = model.to(self._device).eval()
            except (OSError, ValueError, RuntimeError) as e:
                raise HeirloomError(f"{where}: cannot load ({_first_line(e)})") from None
            self._max_length = self.options.max_length or _model_limit(self._tokenizer, model.config)
        return self._model

    def score_batch(self, texts):
        import torch

        model = self._load()
        probs = np.empty((len(texts), len(self.labels)))
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        step = self.options.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                idx = order[start:start + step]
                enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                      max_length=self._max_length, return_tensors="pt").to(self._device)
                logits = model(**enc).logits.float()
                p = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=-1)
                probs[idx] = p.cpu().numpy()
        return {a: probs[:, j] for j, a in enumerate(self.attributes)}, [None] * len(texts)

    def close(self) -> None:
        self._model = self._tokenizer = None  # the weights can be large: free them after a scoring call


def _hub_commit(model: str, revision: str | None, where: str) -> str:
    """The commit a hub id's files resolve to (its snapshot folder in the Hugging Face cache)."""
    from transformers.utils import cached_file

    try:
        path = str(cached_file(model, "config.json", revision=revision))
    except (OSError, ValueError) as e:
        raise HeirloomError(f"{where}: cannot resolve its revision ({_first_line(e)})") from None
    found = _COMMIT.search(path.replace(os.sep, "/"))
    if found:
        return found.group(1)
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    raise HeirloomError(f"{where}: cannot tell which commit its files are; pin revision=<40-hex commit>")


def _model_limit(tokenizer, config) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 100_000:  # transformers uses ~1e30 for "not set"
        return limit
    return int(getattr(config, "max_position_embeddings", 512) or 512)
