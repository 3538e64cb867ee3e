"""Profiling suites by name: one declarative `Suite` object each, built-ins and plugins.

A `Suite` has a name, a description, its `Part`s and the statistics its attributes
name. A `Part` is one config section of `ProfileConfig` (its pydantic model, e.g.
`bbq`), the data sets it needs (`data(config) -> [DataRequest]`, checked before any
model loads) and its `run`:

    run(backend, config, *, data_dir=None, out_dir=None, progress=True) -> list[Attribute]

(`out_dir`: the profile directory, where a part may write `generations/<name>.jsonl`).
Built-in suites are declared at the bottom of their modules (`textual`, `toxicity`,
`bias`, `calibration`, `judge`); plugins are entry points of the group
`heirloom.suites` whose object is a `Suite`. Names are unique; an unknown name is an
error with the closest known one. Statistic names are `<suite or part>/<name>`, so a
saved profile names its statistic independently of where the code lives.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from ..errors import HeirloomError

GROUP = "heirloom.suites"
BUILTIN = ("textual", "toxicity", "bias", "calibration", "judge")  # also the default order of a profile


def _no_data(config: Any) -> list:
    return []


@dataclass(frozen=True)
class Part:
    name: str  # its ProfileConfig section (YAML key), e.g. "bbq"
    config: type[BaseModel]
    run: Callable[..., list]
    data: Callable[[Any], list] = _no_data  # config -> [profiling.data.DataRequest]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    parts: tuple[Part, ...]
    statistics: Mapping[str, Callable] = field(default_factory=dict)  # registered name -> items -> float


def _builtins() -> list[Suite]:
    from . import bias, calibration, judge, textual, toxicity

    return [textual.SUITE, toxicity.SUITE, bias.SUITE, calibration.SUITE, judge.SUITE]


def _load_plugin(ep: metadata.EntryPoint) -> Suite:
    try:
        obj = ep.load()
    except Exception as e:  # a broken third-party plugin: say which one, not a traceback
        raise HeirloomError(f"suite plugin {ep.name!r} ({ep.value}): cannot load ({type(e).__name__}: {e})") from None
    if not isinstance(obj, Suite):
        raise HeirloomError(f"suite plugin {ep.name!r} ({ep.value}): not a heirloom.profiling.registry.Suite")
    if obj.name != ep.name:
        raise HeirloomError(f"suite plugin {ep.name!r} ({ep.value}): its Suite is named {obj.name!r}")
    return obj


def plugin_names() -> list[str]:
    """Names of the installed suite plugins (entry points; nothing is imported)."""
    return [ep.name for ep in metadata.entry_points(group=GROUP)]


def names() -> list[str]:
    return [*BUILTIN, *(n for n in plugin_names() if n not in BUILTIN)]


@functools.cache
def catalog() -> dict[str, Suite]:
    """name -> Suite for every known suite, plugins loaded (duplicate names are an error)."""
    out = {s.name: s for s in _builtins()}
    owners = {p.name: s.name for s in out.values() for p in s.parts}
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in out:
            raise HeirloomError(f"suite name {ep.name!r} is defined twice: by heirloom and by plugin {ep.value}")
        suite = _load_plugin(ep)
        for p in suite.parts:
            if p.name in owners or p.name in _RESERVED:
                raise HeirloomError(f"suite plugin {ep.name!r}: part name {p.name!r} is taken "
                                    f"(by {owners.get(p.name, 'ProfileConfig')})")
            owners[p.name] = suite.name
        out[suite.name] = suite
    return out


_RESERVED = {"suites", "size", "seed", "batch_size", "data_dir"}  # ProfileConfig's own fields


def unknown_suite(name: str) -> HeirloomError:
    known = names()
    parts = [p.name for s in _builtins() for p in s.parts if p.name not in known]
    close = difflib.get_close_matches(name, known + parts, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return HeirloomError(f"unknown suite {name!r} ({hint}suites: {', '.join(known)}; or one part of a suite: "
                         f"{', '.join(parts)})")


def get_suite(name: str) -> Suite:
    suites = catalog() if name not in BUILTIN else {s.name: s for s in _builtins()}
    if name not in suites:
        raise unknown_suite(name)
    return suites[name]


def find_part(name: str) -> Part | None:
    """The part whose config section is `name`, among every known suite."""
    owner = part_owner(name)
    return next(p for p in owner.parts if p.name == name) if owner else None


def part_owner(name: str) -> Suite | None:
    """The suite that has a part named `name` (built-ins first, plugins loaded only if needed)."""
    for suites in (_builtins, lambda: catalog().values()):
        found = next((s for s in suites() if any(p.name == name for p in s.parts)), None)
        if found is not None:
            return found
    return None


def statistic(name: str) -> Callable | None:
    """The statistic registered under `name` by some suite (None if none)."""
    return next((s.statistics[name] for s in catalog().values() if name in s.statistics), None)
