"""The `Metric` object: what a score means and how to compute it, in one place.

A metric has a name, a direction (`higher_is_better`: True, False, or None when
neither reading is "better", e.g. length), a unit, a version (bumped whenever its
values change), a description and validated options. It scores a batch of texts
at once and returns float64 values with NaN where the value is undefined, plus a
reason for every NaN (`score_with_reasons`).

`Corpus` holds the texts of one scoring call and the analyses computed from them
(words, sentences, syllables...), so metrics that need the same analysis share it:
a table is tokenized once, not once per metric. This module leaves the metrics
themselves, the registry and spec strings to their own modules.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import HeirloomError
from .spec import format_spec

class Scores(NamedTuple):
    values: np.ndarray  # float64, NaN where undefined
    reasons: list  # str for every NaN, None where the value is defined


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Corpus:
    """The texts of one scoring call plus analyses shared between metrics.

    Missing texts (None/NaN in a table) are kept in place as "" and remembered, so
    every metric returns NaN for them with the same reason; rows are never dropped.
    """

    def __init__(self, texts: Sequence[Any], progress: bool = False):
        self.progress = progress  # slow scorers (an API) may show a progress bar
        self.texts: list[str] = []
        self.missing: list[int] = []
        for i, t in enumerate(texts):
            if isinstance(t, str):
                self.texts.append(t)
            elif _missing(t):
                self.texts.append("")
                self.missing.append(i)
            else:
                raise HeirloomError(f"text {i}: expected a string, got {type(t).__name__} ({t!r:.40})")
        self._shared: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def shared(self, key: str, build: Callable[["Corpus"], Any]) -> Any:
        """`build(self)`, computed once per corpus and key (e.g. "readability-counts")."""
        if key not in self._shared:
            self._shared[key] = build(self)
        return self._shared[key]


def undefined(values: np.ndarray, reasons: list, mask: np.ndarray, reason: str) -> None:
    """Set `values[mask]` to NaN with `reason`."""
    for i in np.flatnonzero(mask):
        values[i] = np.nan
        reasons[i] = reason


def _split_list(value: Any) -> Any:
    # Spec strings cannot hold commas (they separate metrics), so lists are joined with "+".
    return tuple(v for v in value.split("+") if v) if isinstance(value, str) else value


def validate_options(model: type[BaseModel], options: dict[str, Any], owner: str) -> BaseModel:
    """Options as `model`, with one-line errors naming the owner and the option."""
    options = dict(options)
    for key, field in model.model_fields.items():
        origin = typing.get_origin(field.annotation)
        if key in options and origin in (list, tuple):
            options[key] = _split_list(options[key])
    try:
        return model(**options)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"])) or "options"
        known = ", ".join(model.model_fields) or "none"
        raise HeirloomError(f"{owner}: option {where!r}: {err['msg']} (options: {known})") from None


class Metric:
    """One metric. Subclasses set the class attributes and implement `compute`."""

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = None
    unit: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, **options: Any):
        self.options = validate_options(self.Options, options, f"metric {self.name!r}")
        self.column = self.name  # the table column it fills; a spec's `column=` renames it

    def compute(self, corpus: Corpus) -> Scores:
        """Values for every text of the corpus (missing texts are handled by the caller)."""
        raise NotImplementedError

    def score_with_reasons(self, texts: Sequence[str] | Corpus) -> Scores:
        """(float64 values, reasons): a reason string for each NaN, None for each defined value."""
        corpus = texts if isinstance(texts, Corpus) else Corpus(texts)
        values, reasons = self.compute(corpus)
        values = np.asarray(values, dtype=np.float64)
        reasons = list(reasons)
        if values.shape != (len(corpus),) or len(reasons) != len(corpus):
            raise HeirloomError(f"metric {self.name!r}: returned {values.shape[0] if values.ndim else 0} values "
                                f"for {len(corpus)} texts")
        for i in corpus.missing:
            values[i], reasons[i] = np.nan, "no text (missing value)"
        for i in np.flatnonzero(np.isnan(values)):
            if not reasons[i]:
                reasons[i] = "undefined (no reason given by the metric)"
        for i in np.flatnonzero(~np.isnan(values)):
            reasons[i] = None
        return Scores(values, reasons)

    def score(self, texts: Sequence[str] | Corpus) -> np.ndarray:
        """float64 values, NaN where undefined (see `score_with_reasons` for why)."""
        return self.score_with_reasons(texts).values

    @property
    def changed_options(self) -> dict[str, Any]:
        return self.options.model_dump(exclude_defaults=True)

    @property
    def spec(self) -> str:
        """A spec string that rebuilds this metric (see `heirloom.metrics.spec`)."""
        opts = dict(self.changed_options)
        if self.column != self.name:
            opts["column"] = self.column
        return format_spec(self.spec_head, opts)

    @property
    def spec_head(self) -> str:
        return self.name

    def fingerprint(self) -> str:
        """Everything that decides the values, as one string: equal fingerprints give equal scores, so a
        stage that stores scores can key on it. `column=` is left out (it only names the output); a metric
        backed by a model adds the model's identity (see ToxicityMetric)."""
        return format_spec(f"{self.name}@{self.version}", self.changed_options)

    def info(self) -> dict[str, Any]:
        """What made a column: for provenance records."""
        return {"name": self.name, "column": self.column, "spec": self.spec, "version": self.version,
                "options": self.options.model_dump(mode="json"), "higher_is_better": self.higher_is_better,
                "unit": self.unit}

    def __repr__(self) -> str:
        return f"<metric {self.spec} v{self.version}>"
