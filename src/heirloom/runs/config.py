"""The run config: small configs per stage, composed and validated before anything runs.

    name, seed
    prompts     where the prompts come from
    teachers    live models and/or imported generations (multi-source when several)
    generation  k and sampling
    scoring     metrics scored on every candidate
    arms        one selection objective per arm (a seeded random arm is always added)
    student     the model fine-tuned per arm, and how (`training`)
    profiling   the suites run on the base student and on every trained arm

Each field is described once (pydantic `Field(description=...)`); errors name
the file, the field path and what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_serializer, model_validator

from ..errors import HeirloomError
from ..generation.base import SamplingParams
from ..models.embedded import DEFAULT_MODEL
from ..models.refs import ModelRef
from ..training.config import TrainConfig
from ..validation import read_mapping, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptsConfig(_Strict):
    source: str | list[str] = Field("quickstart", description="built-in set name, prompt file, or hub dataset id; "
                                                             "a list concatenates several (duplicates kept once)")
    column: str | None = Field(None, description="prompt column (default: first of prompt, instruction, inputs, question, text)")
    split: str = Field("train", description="split, for a hub dataset")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")


class TeacherConfig(_Strict):
    model: str | None = Field(None, description="a live teacher: model reference (alias, hub id, dir, .gguf, vllm:, openai:, ray:)")
    outputs: list[str] | None = Field(None, description="an offline teacher: files of generations made elsewhere (AlpacaEval format)")
    batch_size: int | None = Field(None, ge=1, description="rows decoded together (hf backend)")
    device: str = Field("auto", description="device for the hf backend")
    stop: list[str] | None = Field(None, description="stop strings for this teacher (base models need them)")
    options: dict = Field(default_factory=dict, description="backend options, e.g. {max_concurrency: 32} (openai), "
                          "{tensor_parallel_size: 2} (vllm), {replicas: 4, num_gpus: 1} (ray)")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.model is None) == (self.outputs is None):
            raise ValueError("give exactly one of `model` (live) or `outputs` (imported generations)")
        return self


class GenerationConfig(SamplingParams):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(4, ge=1, description="candidates per prompt per live teacher")
    chat: bool | None = Field(None, description="chat template (true), raw text (false), or auto (null)")

    def sampling(self, stop: list[str] | None = None) -> SamplingParams:
        fields = self.model_dump(include=set(SamplingParams.model_fields))
        if stop:
            fields["stop"] = tuple(fields["stop"]) + tuple(stop)
        return SamplingParams(**fields)


class ScoringConfig(_Strict):
    metrics: list[str] = Field(["length", "mtld"], min_length=1, description="metric specs scored on every candidate")
    column: str = Field("completion", description="the pool column scored")


class ArmConfig(_Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="arm name (a directory name)")
    objective: Any = Field(..., description="selection objective: spec (max:mtld, random, ...) or mapping")
    constraints: list[str] = Field([], description="hard constraints, e.g. 'toxicity<0.1'")
    max_candidates: int | None = Field(
        None, ge=1, description="select among the first N samples of each teacher only (sweeps of k)")
    teachers: list[str] | None = Field(
        None, min_length=1, description="select among these teachers' candidates only (names as in the pool's "
        "`teacher` column: a live teacher's model identity, an imported file's `generator`); default: all")

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        data = handler(self)
        if self.teachers is None and isinstance(data, dict):  # an arm without teachers is written as before
            data.pop("teachers", None)
        return data

    @field_validator("teachers")
    @classmethod
    def _unique_teachers(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a teacher is listed twice")
        return value

    @field_validator("objective")
    @classmethod
    def _parse(cls, value):
        from ..selection import parse_objective

        try:
            return parse_objective(value)
        except HeirloomError as e:
            raise ValueError(str(e)) from None


class StudentConfig(_Strict):
    model: str = Field(DEFAULT_MODEL, description="the student: model reference fine-tuned in every arm")
    training: TrainConfig = Field(default_factory=TrainConfig, description="how the student is fine-tuned")


class RunConfig(_Strict):
    name: str = Field("run", description="run name")
    seed: int = Field(0, description="seed for sampling, the random arm and training")
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    teachers: list[TeacherConfig] = Field(default_factory=lambda: [TeacherConfig(model=DEFAULT_MODEL)], min_length=1)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    arms: list[ArmConfig] = Field(..., min_length=1, description="selection arms; each trains one student")
    student: StudentConfig = Field(default_factory=StudentConfig)
    profiling: dict[str, Any] = Field(default_factory=dict, description="profile config (see `heirloom profile --help`)")
    data_dir: str | None = Field(None, description="data directory laid out like the project's shared data "
                                 "(bbq/, crows_pairs/, ...) where profiling finds the data no path names; "
                                 "overrides HEIRLOOM_DATA (profiling.data_dir, when set, wins)")
    report: bool = Field(True, description="write the HTML report and figures at the end")
    workers: int = Field(1, ge=1, description="processes for independent stages (each arm's training and "
                         "profile, the base profile), each with the CPU cores divided by this, or one GPU "
                         "each; `heirloom run --workers` overrides it (docs/runs.md)")

    _source: str | None = PrivateAttr(None)  # the file it was read from, for error messages

    @model_validator(mode="after")
    def _check(self):
        names = [a.name for a in self.arms]
        if "base" in names:
            raise ValueError("an arm cannot be named 'base' (the untouched student's profile has that name)")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"arm names must be unique (repeated: {', '.join(sorted(dup))})")
        seen: dict[str, int] = {}
        for i, t in enumerate(self.teachers):
            if t.model is None:
                continue
            try:
                identity = ModelRef.parse(t.model).identity
            except HeirloomError as e:
                raise ValueError(f"teachers.{i}.model: {e}") from None
            if identity in seen:  # servers and replicas aside, the same model gives the same samples
                raise ValueError(f"teachers {seen[identity]} and {i} are the same model ({identity}); list it once")
            seen[identity] = i
        if not any(a.objective.kind == "random" and a.teachers is None for a in self.arms):
            # every result is read against the random baseline on the same pool
            name = "random" if "random" not in names else "random.all"  # "random" may be a restricted arm
            self.arms.append(ArmConfig(name=name, objective="random"))
        # ... and an arm restricted to some teachers against a random pick from those teachers' candidates
        for arm in list(self.arms):
            if arm.teachers is not None and self.random_arm(arm) is None:
                name = base = "random." + re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(sorted(arm.teachers)))
                taken = {a.name for a in self.arms}
                n = 2
                while name in taken:
                    name, n = f"{base}.{n}", n + 1
                self.arms.append(ArmConfig(name=name, objective="random", teachers=sorted(arm.teachers)))
        # Checked against the columns scoring will write (a spec's `column=` renames one), so a
        # wrong name fails here rather than at the select stage, after generation.
        from ..pools import POOL_METRIC_COLUMNS
        from ..selection.objectives import Constraint

        produced = scored_columns(self.scoring.metrics)
        available = ", ".join([*produced, *POOL_METRIC_COLUMNS])
        for i, arm in enumerate(self.arms):
            try:
                bounds = [Constraint.parse(c).metric for c in arm.constraints]
            except HeirloomError as e:
                raise ValueError(f"arms.{i}.constraints: {e}") from None
            for where, names in (("objective", arm.objective.metrics() + [c.metric for c in arm.objective.constraints]),
                                 ("constraints", bounds)):
                missing = [m for m in dict.fromkeys(names) if m not in produced and m not in POOL_METRIC_COLUMNS]
                if missing:
                    raise ValueError(f"arms.{i}.{where} uses {', '.join(missing)}, which scoring does not produce "
                                     f"(metric columns: {available})")
        if self.data_dir is not None:
            self.profiling.setdefault("data_dir", self.data_dir)  # the profile stage reads it from there
        return self

    def random_arm(self, arm: ArmConfig | None = None) -> ArmConfig | None:
        """The random arm `arm` is read against: the one drawn from the same teachers' candidates
        (the whole pool when `arm` is None or has no `teachers`)."""
        teachers = None if arm is None or arm.teachers is None else set(arm.teachers)
        return next((a for a in self.arms if a.objective.kind == "random"
                     and (None if a.teachers is None else set(a.teachers)) == teachers), None)


def scored_columns(specs: list[str]) -> list[str]:
    """The columns `score_table` writes for these metric specs (each metric's name, or its `column=`)."""
    from ..metrics.registry import get_metrics

    return [m.column for m in get_metrics(specs)]


def load_run_config(path: str | Path) -> RunConfig:
    """Parse and validate a YAML run config; every error names the file and the field."""
    from ..profiling.suites import ProfileConfig

    data = read_mapping(path, "run config")
    try:
        config = validate(RunConfig, data, str(path))
    except HeirloomError as e:
        msg = str(e)
        raise HeirloomError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    validate(ProfileConfig, config.profiling, str(path), prefix="profiling")
    config._source = str(path)
    return config
