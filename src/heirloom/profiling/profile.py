"""The profile of one model: named attributes with their per-item evidence.

Every suite (textual, toxicity, bias, calibration, judge) returns `Attribute`s.
An attribute keeps its per-item values and the name of the statistic that turns
them into one number, so `compare` can bootstrap any attribute the same way
(resample items, recompute the statistic) without knowing which suite made it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HeirloomError
from ..tables import write_json


@dataclass
class Attribute:
    name: str  # e.g. "textual/mtld", "toxicity/expected_max_toxicity", "bias/bbq/Age/ambiguous_bias"
    suite: str
    value: float  # statistic(items); NaN when undefined (with `note` saying why)
    statistic: str  # registered name (statistics.resolve): "mean", "toxicity/expected_max_toxicity", ...
    items: list[Any]  # per-item evidence the statistic is computed from
    higher_is_better: bool | None = None  # None: neither (bias scores: 0 is best)
    unit: str = ""
    n: int = 0  # items used
    note: str = ""


@dataclass
class Profile:
    model: str
    attributes: dict[str, Attribute] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # suites, sizes, seeds, sampling
    provenance: dict[str, Any] = field(default_factory=dict)

    def add(self, attrs: list[Attribute]) -> None:
        for a in attrs:
            self.attributes[a.name] = a

    def save(self, path: str | Path) -> Path:
        doc = {"model": self.model, "config": self.config, "provenance": self.provenance,
               "attributes": {k: asdict(a) for k, a in self.attributes.items()}}
        return write_json(doc, path)

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        path = Path(path)
        if path.is_dir():
            path = path / "profile.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HeirloomError(f"{path}: no such profile file") from None
        except json.JSONDecodeError as e:
            raise HeirloomError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        except UnicodeDecodeError:
            raise HeirloomError(f"{path}: not a text file (a profile is profile.json or its directory)") from None
        except IsADirectoryError:
            raise HeirloomError(f"{path}: a directory, not a profile file") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("attributes"), dict):
            raise HeirloomError(f"{path}: not a heirloom profile (no 'attributes')")
        try:
            attrs = {k: Attribute(**v) for k, v in doc["attributes"].items()}
        except TypeError as e:
            raise HeirloomError(f"{path}: not a heirloom profile (bad attribute: {e})") from None
        from .statistics import canonical

        for a in attrs.values():  # JSON has no NaN: undefined values are stored as null
            if a.value is None:
                a.value = float("nan")
            a.statistic = canonical(a.statistic)  # profiles saved with module:function names
        return cls(model=doc.get("model", "?"), attributes=attrs,
                   config=doc.get("config", {}), provenance=doc.get("provenance", {}))
