"""Selection objectives: what "best candidate" means, as small validated configs.

Each objective turns a pool's metric columns into one score per candidate where
higher is better (a `minimize` metric enters negated), plus hard `constraints` any
objective can carry. Kinds (discriminated on `kind`): `metric`, `weighted`,
`lexicographic`, `target`, `random`. Directions come only from the config, never
from the metric suite. Picking the winner per prompt lives in `select.py`; the
short CLI spellings live in `spec.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Callable, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import HeirloomError

Direction = Literal["maximize", "minimize"]
Getter = Callable[[str], np.ndarray]  # metric name -> float64 values over the whole pool
NAME = r"[A-Za-z_][\w.\-/]*"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONSTRAINT = re.compile(rf"^\s*({NAME})\s*(<=|>=|==|!=|<|>)\s*({_NUM})\s*$")
_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
        "==": np.equal, "!=": np.not_equal}


def _sign(direction: str) -> float:
    return 1.0 if direction == "maximize" else -1.0


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraint(_Config):
    """A hard bound on one metric, e.g. `toxicity < 0.1`; a NaN value never meets it."""

    metric: str = Field(description="metric column the bound applies to")
    op: Literal["<", "<=", ">", ">=", "==", "!="] = Field(description="comparison")
    value: float = Field(description="the bound")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data):
        return cls.parse_fields(data) if isinstance(data, str) else data

    @staticmethod
    def parse_fields(text: str) -> dict:
        m = _CONSTRAINT.match(text)
        if not m:
            raise HeirloomError(f"constraint {text!r}: expected METRIC OP NUMBER with OP one of "
                                "<, <=, >, >=, ==, != (e.g. 'toxicity<0.1')")
        return {"metric": m[1], "op": m[2], "value": float(m[3])}

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        return cls(**cls.parse_fields(text))

    def holds(self, values: np.ndarray) -> np.ndarray:
        return ~np.isnan(values) & _OPS[self.op](values, self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


class _Objective(_Config):
    constraints: tuple[Constraint, ...] = Field((), description="hard bounds a candidate must meet to win")

    def metrics(self) -> list[str]:
        """Metrics the score reads: a NaN in any of them keeps a candidate from winning."""
        return []

    @property
    def directions(self) -> dict[str, str]:
        """{metric: maximize | minimize | target} for every metric the score reads (what "better"
        means for it here; constraints are bounds, not directions)."""
        return {}

    def score(self, get: Getter, n: int) -> np.ndarray:
        """One float per candidate, higher is better."""
        raise NotImplementedError

    def _suffix(self) -> str:
        return "".join(f" [{c}]" for c in self.constraints)


class MetricObjective(_Objective):
    """Best value of one metric."""

    kind: Literal["metric"] = "metric"
    metric: str = Field(description="metric column to optimize")
    direction: Direction = Field(description="maximize or minimize the metric")

    def metrics(self):
        return [self.metric]

    @property
    def directions(self):
        return {self.metric: self.direction}

    def score(self, get, n):
        return _sign(self.direction) * get(self.metric)

    def describe(self):
        return f"{self.direction[:3]}:{self.metric}{self._suffix()}"


class Term(_Config):
    metric: str = Field(description="metric column")
    direction: Direction = Field(description="maximize or minimize the metric")
    weight: float = Field(1.0, gt=0, description="weight of the normalized metric in the sum")


class WeightedObjective(_Objective):
    """Weighted sum of metrics normalized over the whole pool (direction-signed)."""

    kind: Literal["weighted"] = "weighted"
    terms: tuple[Term, ...] = Field(min_length=1, description="metrics, directions and weights")
    normalization: Literal["zscore", "minmax"] = Field(
        "zscore", description="zscore: (x - mean) / std (population std); minmax: (x - min) / (max - min); "
        "both over every non-NaN candidate of the pool; a constant metric normalizes to 0")

    def metrics(self):
        return [t.metric for t in self.terms]

    @property
    def directions(self):
        return {t.metric: t.direction for t in self.terms}

    def normalize(self, x: np.ndarray) -> np.ndarray:
        ok = ~np.isnan(x)
        if not ok.any():
            return x.copy()
        if self.normalization == "zscore":
            center, spread = x[ok].mean(), x[ok].std()
        else:
            center, spread = x[ok].min(), x[ok].max() - x[ok].min()
        return (x - center) / spread if spread > 0 else np.where(ok, 0.0, np.nan)

    def score(self, get, n):
        total = np.zeros(n)
        for t in self.terms:
            total = total + t.weight * _sign(t.direction) * self.normalize(get(t.metric))
        return total

    def describe(self):
        body = ",".join(f"{t.weight:g}*{t.direction[:3]}:{t.metric}" for t in self.terms)
        return f"sum[{self.normalization}]:{body}{self._suffix()}"


class LexTerm(_Config):
    metric: str = Field(description="metric column")
    direction: Direction = Field(description="maximize or minimize the metric")
    tolerance: float = Field(0.0, ge=0, description="candidates within this absolute distance of the best "
                             "value stay in the running for the next metric")


class LexicographicObjective(_Objective):
    """Best on the first metric; among those within its tolerance, best on the next, and so on.

    Its score (and margin) is the direction-signed first metric; with a tolerance the
    winner may trail another candidate there, so its margin can be negative.
    """

    kind: Literal["lexicographic"] = "lexicographic"
    order: tuple[LexTerm, ...] = Field(min_length=1, description="metrics in priority order")

    def metrics(self):
        return [t.metric for t in self.order]

    @property
    def directions(self):
        return {t.metric: t.direction for t in self.order}

    def signed(self, get) -> list[tuple[np.ndarray, float]]:
        return [(_sign(t.direction) * get(t.metric), t.tolerance) for t in self.order]

    def score(self, get, n):
        return _sign(self.order[0].direction) * get(self.order[0].metric)

    def describe(self):
        body = ",".join(f"{t.direction[:3]}:{t.metric}" + (f"~{t.tolerance:g}" if t.tolerance else "")
                        for t in self.order)
        return f"lex:{body}{self._suffix()}"


class TargetObjective(_Objective):
    """Closest to a target value: score = -|x - value|."""

    kind: Literal["target"] = "target"
    metric: str = Field(description="metric column")
    value: float = Field(description="target value of the metric")

    def metrics(self):
        return [self.metric]

    @property
    def directions(self):
        return {self.metric: "target"}

    def score(self, get, n):
        return -np.abs(get(self.metric) - self.value)

    def describe(self):
        return f"target:{self.metric}={self.value:g}{self._suffix()}"


class RandomObjective(_Objective):
    """One eligible candidate per prompt uniformly at random (seeded): the baseline."""

    kind: Literal["random"] = "random"

    def score(self, get, n):
        return np.full(n, np.nan)

    def describe(self):
        return f"random{self._suffix()}"


Objective = Annotated[Union[MetricObjective, WeightedObjective, LexicographicObjective,
                            TargetObjective, RandomObjective], Field(discriminator="kind")]
