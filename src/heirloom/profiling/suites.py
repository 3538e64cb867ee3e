"""Profile a model: run the chosen suites and write `profile.json`.

`profile_model(model, config, out_dir)` first checks that every chosen suite's data
resolves (`check_data`, no model loaded), then runs each suite of `config.suites`
(registered in `profiling.registry`: textual, toxicity, bias = BBQ + CrowS-Pairs,
calibration, judge, and plugins) on one backend, and writes:

- `out_dir/suites/<suite>.json`: that suite's attributes, its config hash, the item
  counts used, seconds taken, the data it read and provenance. A rerun with the same
  model and suite config loads it instead of recomputing, so an interrupted profile
  resumes at suite granularity (a changed config recomputes only the suites it touches).
- `out_dir/profile.json`: the `Profile` (all attributes, the config, sizes, seconds
  per suite, provenance); `out_dir/generations/*.jsonl` from the generating suites.

`size` (a quick profile) and `seed` apply to every part config that did not set its
own; `data_dir` (where larger data sets live, see `profiling.data`) and `batch_size`
are not part of any hash: they change where and how fast, not what is measured.
The model is loaded only when some suite has to run. Left out: running suites in
parallel or on several devices.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from ..errors import HeirloomError
from . import registry
from .bbq import BBQConfig
from .calibration import CalibrationConfig
from .crows_pairs import CrowsPairsConfig
from .data import Resolved, check
from .judge import JudgeConfig
from .profile import Attribute, Profile
from .textual import TextualConfig
from .toxicity import ToxicityConfig


def parse_suites(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """'textual,toxicity' -> ['textual', 'toxicity']; unknown names suggest the closest.

    An entry is a suite name (all its parts) or a part name (`bbq`, `crows_pairs`: only
    that part of its suite, e.g. CrowS-Pairs alone, whose data is packaged).
    """
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else [s.strip() for s in value]
    known = registry.names()
    if not names or any(not s for s in names):
        raise HeirloomError(f"suite list {value!r}: empty suite name (choose from {', '.join(known)})")
    for s in names:
        if s not in known and registry.part_owner(s) is None:
            raise registry.unknown_suite(s)
    return list(dict.fromkeys(names))


class ProfileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[str] = Field(list(registry.BUILTIN), description=f"suites to run, of: {', '.join(registry.BUILTIN)} "
                                                                  "(and installed plugins)")
    size: int | None = Field(None, ge=1, description="quick profile: at most N items per suite (prompts, pairs; "
                                                     "per category where a benchmark has categories)")
    seed: int = Field(0, description="seed for sampling and subsampling, for every suite that sets none")
    data_dir: str | None = Field(None, exclude=True, description="data directory laid out like heirloom's shared "
                                 "data (bbq/<Category>.jsonl, alpaca_eval_outputs/, calibration/); default: "
                                 "$HEIRLOOM_DATA; not part of any hash")
    textual: TextualConfig = Field(default_factory=TextualConfig, description="textual suite")
    toxicity: ToxicityConfig = Field(default_factory=ToxicityConfig, description="toxicity suite (RTP)")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="judge suite")
    bbq: BBQConfig = Field(default_factory=BBQConfig, description="bias suite, BBQ part")
    crows_pairs: CrowsPairsConfig = Field(default_factory=CrowsPairsConfig, description="bias suite, CrowS-Pairs part")
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description="calibration suite")
    batch_size: int | None = Field(None, ge=1, description="rows per forward pass for the hf backend profile_model "
                                                           "builds (None: sized to the device); not part of any hash")
    plugin_parts: dict[str, Any] = Field(default_factory=dict, exclude=True,
                                         description="config sections of plugin suites' parts (written at the top "
                                                     "level of the YAML, like the built-in ones)")

    @model_validator(mode="before")
    @classmethod
    def _gather_plugin_parts(cls, data):
        # A plugin part's section sits at the top level like `bbq:`; anything else unknown is
        # left for extra="forbid" to refuse with pydantic's usual message.
        if not isinstance(data, dict) or not registry.plugin_names():
            return data
        plugin = {k for k in data if k not in cls.model_fields and registry.find_part(k) is not None}
        if not plugin:
            return data
        data = dict(data)
        data["plugin_parts"] = {**(data.get("plugin_parts") or {}), **{k: data.pop(k) for k in plugin}}
        return data

    @field_validator("plugin_parts")
    @classmethod
    def _plugin_configs(cls, v: dict[str, Any]):
        from pydantic import ValidationError

        out = {}
        for name, section in v.items():
            part = registry.find_part(name)
            if part is None:
                raise ValueError(f"{name}: no installed suite has this part")
            try:
                out[name] = section if isinstance(section, part.config) else part.config.model_validate(section or {})
            except ValidationError as e:
                err = e.errors()[0]
                raise ValueError(f"{name}.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return out

    @field_validator("suites", mode="before")
    @classmethod
    def _suites(cls, v):
        try:
            return parse_suites(v)
        except HeirloomError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _spread_size_and_seed(self):
        for entry in self.suites:  # a chosen plugin suite without a section gets its defaults, in the dump too
            if entry not in registry.BUILTIN:
                suite = registry.get_suite(entry) if entry in registry.names() else registry.part_owner(entry)
                for part in suite.parts:
                    if part.name not in type(self).model_fields:
                        self.plugin_parts.setdefault(part.name, part.config())
        for name in self.part_names():
            sub = self.part_config(name)
            update = {key: value for key, value in (("size", self.size), ("seed", self.seed))
                      if key in type(sub).model_fields and key not in sub.model_fields_set and value is not None}
            if update:  # model_copy works on frozen configs too, and marks the keys as set
                self._set_part(name, sub.model_copy(update=update))
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler, info):
        out = handler(self)
        for name, sub in self.plugin_parts.items():  # back at the top level, where the YAML has them
            out[name] = sub.model_dump(mode=info.mode)
        return out

    def part_names(self) -> list[str]:
        builtin = [p.name for s in registry._builtins() for p in s.parts]
        return builtin + [n for n in self.plugin_parts if n not in builtin]

    def part_config(self, name: str) -> BaseModel:
        """The config of part `name` (a plugin part without a section gets its defaults)."""
        if name in type(self).model_fields:
            return getattr(self, name)
        if name not in self.plugin_parts:
            part = registry.find_part(name)
            if part is None:
                raise HeirloomError(f"no suite part named {name!r}")
            self.plugin_parts[name] = part.config()
        return self.plugin_parts[name]

    def _set_part(self, name: str, value: BaseModel) -> None:
        if name in type(self).model_fields:
            setattr(self, name, value)
        else:
            self.plugin_parts[name] = value

    def plan(self) -> dict[str, list[registry.Part]]:
        """suite -> the parts to run, in the order of `suites` (a part name selects just that part)."""
        chosen: dict[str, set[str]] = {}
        for entry in self.suites:
            suite = registry.get_suite(entry) if entry in registry.names() else registry.part_owner(entry)
            picked = {p.name for p in suite.parts} if entry == suite.name else {entry}
            chosen.setdefault(suite.name, set()).update(picked)
        return {name: [p for p in registry.get_suite(name).parts if p.name in parts] for name, parts in chosen.items()}

    def suite_config(self, suite: str) -> dict[str, Any]:
        """The configs of the suite's chosen parts, as JSON (what its hash and alignment are computed from)."""
        parts = self.plan().get(suite) or registry.get_suite(suite).parts
        return {p.name: self.part_config(p.name).model_dump(mode="json") for p in parts}


# --- data, checked before any model loads -------------------------------------------------
def check_data(config: ProfileConfig) -> dict[str, list[Resolved]]:
    """Resolve every enabled suite's data (no model loaded); a HeirloomError names what is missing.

    Returns suite -> where each of its data sets comes from. Offline, a hub fallback
    counts only when it is in the local cache, so this fails in seconds, never hangs.
    """
    out: dict[str, list[Resolved]] = {}
    for suite, parts in config.plan().items():
        out[suite] = [check(req, config.data_dir) for part in parts for req in part.data(config.part_config(part.name))]
    return out


# --- orchestration ----------------------------------------------------------------
def _run_suite(suite: str, backend, config: ProfileConfig, out_dir: Path, progress: bool) -> list[Attribute]:
    attrs: list[Attribute] = []
    for part in config.plan()[suite]:
        attrs += part.run(backend, config.part_config(part.name), data_dir=config.data_dir, out_dir=out_dir,
                          progress=progress)
    return attrs


def _load_partial(path: Path, digest: str) -> dict | None:
    import json

    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a damaged partial file is recomputed, not trusted
    return doc if doc.get("config_hash") == digest else None


def profile_model(model, config: ProfileConfig | None = None, out_dir: str | Path = "profile",
                  progress: bool = True, backend_options: dict[str, Any] | None = None,
                  name: str | None = None) -> Profile:
    """Run `config.suites` on `model` (a model reference or a `Backend`) and save the profile.

    `name` is the profile's display name (default: the model reference); resuming is
    keyed on the model reference and the suite config, never on the display name.
    """
    from ..generation import Backend, make_backend
    from ..models.refs import ModelRef
    from ..provenance import config_hash, record
    from ..tables import write_json

    config = config or ProfileConfig()
    out_dir = Path(out_dir)
    ref = model.model_id if isinstance(model, Backend) else str(model)
    backend = model if isinstance(model, Backend) else None
    profile = Profile(model=name or ref)
    seconds, sizes, hashes, data = {}, {}, {}, {}
    resolved = check_data(config)
    try:
        for suite in config.plan():
            digest = config_hash({"model": ref, "suite": suite, "config": config.suite_config(suite)})
            hashes[suite] = digest
            partial = out_dir / "suites" / f"{suite}.json"
            done = _load_partial(partial, digest)
            if done is None:
                if backend is None:
                    hf = ModelRef.parse(ref).backend == "hf"
                    options = {"batch_size": config.batch_size} if config.batch_size and hf else {}
                    backend = make_backend(ref, **{**options, **(backend_options or {})})
                start = time.perf_counter()
                attrs = _run_suite(suite, backend, config, out_dir, progress)
                done = {"suite": suite, "config_hash": digest, "seconds": round(time.perf_counter() - start, 3),
                        "sizes": _sizes(attrs), "data": [r.as_dict() for r in resolved[suite]],
                        "attributes": [asdict(a) for a in attrs],
                        "provenance": record(model=ref, suite=suite, config=config.suite_config(suite),
                                             backend=backend.describe())}
                write_json(done, partial)
            profile.add([Attribute(**a) for a in done["attributes"]])
            seconds[suite], sizes[suite] = done["seconds"], done["sizes"]
            data[suite] = done.get("data", [])
    finally:
        if backend is not None and backend is not model:
            backend.close()
    profile.config = {"suites": config.suites, "profile_config": config.model_dump(mode="json"),
                      "suite_configs": {s: config.suite_config(s) for s in config.plan()},
                      "suite_hashes": hashes, "sizes": sizes, "seconds": seconds, "data": data}
    profile.provenance = record(model=ref, name=name or ref, config_hash=config_hash(config.model_dump(mode="json")))
    profile.save(out_dir / "profile.json")
    return profile


def _sizes(attrs: list[Attribute]) -> dict[str, int]:
    """Items behind each attribute group (the name without a trailing /median or /std)."""
    out: dict[str, int] = {}
    for a in attrs:
        out.setdefault(a.name.removesuffix("/median").removesuffix("/std"), len(a.items))
    return out
