"""Run a config end to end: generate, score, select, train, profile, report.

Each stage writes into its own directory of the run (`layout`) with a marker keyed
by the hash of what decides its output (`markers.Stage`, `keys`), so:
- a finished stage is skipped on a rerun;
- a killed stage resumes (candidates batch by batch, training from its last
  checkpoint, profiles suite by suite);
- a stage whose inputs changed is redone, its earlier work moved to `.stale/`.

What each stage is keyed on (docs/runs.md has the table):
    generate  prompts, seed, sampling, each teacher's identity and stop strings
    score     the pool's key, the text column, each metric's column and fingerprint
    select    the scores' key, the objective (with constraints), seed, max_candidates
    train     the selected (prompt, completion) pairs' content hash, the student's
              identity (a local directory's content hash), the training config
    profile   the trained student's key (base: the student's identity), the profile
              config and the fingerprints of the metrics its suites score with
Selection is cheap and redone with the scores; training is keyed on the pairs it
reads, so a metric no objective uses can come and go without retraining anyone.
The work of generate, score and select is in `stages` (shared with the CLI).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..errors import HeirloomError
from ..provenance import config_hash, record
from ..tables import read_table, write_json, write_table
from .config import RunConfig
from .preflight import preflight
from .layout import BASE, RunLayout
from .lock import run_lock
from .markers import Stage, retire_others

STAGES = ("generate", "score", "select", "train", "profile", "report")


@dataclass
class RunResult:
    run_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)  # per stage (per unit with workers)
    skipped: list[str] = field(default_factory=list)
    wall: float = 0.0


class Runner:
    def __init__(self, config: RunConfig, run_dir: str | Path, progress: bool = True, log=print):
        self.config, self.dir, self.progress, self.log = config, Path(run_dir), progress, log
        self.layout = RunLayout(self.dir)
        self.result = RunResult(self.dir)

    # --- orchestration -------------------------------------------------------
    def run(self, until: str | None = None, workers: int | None = None) -> RunResult:
        if until is not None and until not in STAGES:
            raise HeirloomError(f"--until: unknown stage {until!r} (stages: {', '.join(STAGES)})")
        workers = self.config.workers if workers is None else workers
        if workers < 1:
            raise HeirloomError(f"--workers must be at least 1, got {workers}")
        start = time.perf_counter()
        preflight(self.config, self.dir, until=until)  # fails in seconds, before anything is written or loaded
        self.dir.mkdir(parents=True, exist_ok=True)
        with run_lock(self.dir):
            write_json(record(config=self.config.model_dump(mode="json"), workers=workers), self.layout.run_meta)
            _write_yaml(self.config, self.layout.config)
            if workers == 1:
                self._run_stages(until)
            else:
                self._run_workers(until, workers)
        self.result.wall = time.perf_counter() - start
        return self.result

    def _run_stages(self, until: str | None) -> None:
        for name in STAGES:
            if name == "report" and not self.config.report:
                continue
            t = time.perf_counter()
            getattr(self, f"_{name}")()
            self.result.seconds[name] = time.perf_counter() - t
            if name == until:
                break

    def _run_workers(self, until: str | None, workers: int) -> None:
        from .parallel import plan, run_parallel

        L, arms = self.layout, [a.name for a in self.config.arms]
        # What the stages do over all arms before their work, done once here, not by racing workers.
        retire_others(L.students, arms, log=self.log)
        retire_others(L.profiles, self.profile_targets(), log=self.log)
        units = plan(arms, until)
        seconds, skipped = run_parallel(self.config, self.dir, units, workers, log=self.log)
        self.result.seconds.update(seconds)
        self.result.skipped.extend(skipped)
        if until in (None, "report") and self.config.report:
            t = time.perf_counter()
            self._report()
            self.result.seconds["report"] = time.perf_counter() - t

    def _stage(self, directory: Path, name: str, inputs) -> Stage:
        stage = Stage.of(directory, name, inputs, log=self.log)
        if stage.is_done():
            where = directory.relative_to(self.dir).as_posix()
            self.result.skipped.append(name if where == name else f"{name}:{where}")
        return stage

    @cached_property
    def student_identity(self) -> str:
        from .keys import model_identity

        return model_identity(self.config.student.model)

    # --- stages ----------------------------------------------------------------
    def _prompts(self) -> pd.DataFrame:
        from ..prompts import load_prompt_sources

        p = self.config.prompts
        return load_prompt_sources(p.source, column=p.column, split=p.split, limit=p.limit)

    @cached_property
    def _generate_key(self) -> tuple[dict, pd.DataFrame]:
        from ..models.refs import ModelRef
        from .keys import content_hash

        c = self.config
        prompts = self._prompts()
        # Keyed on what decides the samples; how they are computed (servers, replicas, batch size,
        # device, backend options) is recorded in the marker but changing it does not restart the run.
        # The prompts and imported outputs are keyed by content: an edited prompt file is new work.
        key = {"prompts": c.prompts.model_dump(), "n_prompts": len(prompts), "seed": c.seed,
               "prompts_sha256": config_hash(prompts[["prompt_id", "prompt"]].to_dict("list")),
               "teachers": [{"model": t.model and ModelRef.parse(t.model).identity, "outputs": t.outputs,
                             "outputs_sha256": t.outputs and [content_hash(o) for o in t.outputs], "stop": t.stop}
                            for t in c.teachers],
               "generation": c.generation.model_dump(mode="json")}
        return key, prompts

    def _generate(self) -> None:
        from .stages import generate_pool

        c, L = self.config, self.layout
        key, prompts = self._generate_key
        stage = self._stage(L.candidates, "generate", key)
        if stage.is_done():
            return
        stage.begin({**key, "teachers": [t.model_dump() for t in c.teachers]})
        write_table(prompts, L.prompts)
        params = c.generation.sampling().model_copy(update={"seed": c.seed})
        pool = generate_pool(prompts, c.teachers, c.generation.k, params, L.pool, work=L.work_file,
                             chat=c.generation.chat, progress=self.progress, log=self.log)
        stage.finish(n_candidates=len(pool), teachers=sorted(pool["teacher"].unique()))

    @cached_property
    def _score_inputs(self) -> dict:
        from ..metrics.registry import get_metrics

        s = self.config.scoring
        return {"after": config_hash(self._generate_key[0]), "column": s.column,
                "metrics": [[m.column, m.fingerprint()] for m in get_metrics(s.metrics)]}

    def _score(self) -> None:
        from ..scoring import scoring_record
        from .stages import score_pool

        s = self.config.scoring
        inputs = self._score_inputs
        stage = self._stage(self.layout.scores, "score", inputs)
        if stage.is_done():
            return
        stage.begin({**inputs, "specs": s.metrics})
        self.log(f"[score] {self.layout.pool} with {', '.join(s.metrics)}")
        scored = score_pool(self.layout.pool, self.layout.scored, s.metrics, column=s.column, progress=self.progress)
        stage.finish(scoring=scoring_record(scored))

    def _select(self) -> None:
        from ..selection import select, with_constraints
        from ..training.data import data_hash
        from .stages import select_pool

        c, L = self.config, self.layout
        retire_others(L.arms, [a.name for a in c.arms], log=self.log)
        scored = read_table(L.scored)
        baselines: dict[tuple[str, ...] | None, object] = {}  # one random pick per restricted pool
        for arm in c.arms:
            objective = with_constraints(arm.objective, arm.constraints)
            inputs = {"after": config_hash(self._score_inputs), "objective": objective.model_dump(), "seed": c.seed,
                      "max_candidates": arm.max_candidates}
            restricted = arm.teachers is not None
            if restricted:  # only then: configs without `teachers` keep their keys
                inputs["teachers"] = sorted(arm.teachers)
            stage = self._stage(L.arm(arm.name), "select", inputs)
            if stage.is_done():
                continue
            stage.begin(inputs)
            full = scored[scored["teacher"].isin(arm.teachers)] if restricted else scored
            group = tuple(sorted(arm.teachers)) if restricted else None
            if group not in baselines:
                baselines[group] = select(full, c.random_arm(arm).objective, seed=c.seed)
            pool = full if arm.max_candidates is None else full[full["sample_index"] < arm.max_candidates]
            source = f"{L.scored} (arm {arm.name}" + (f", teachers {', '.join(arm.teachers)}" if restricted else "") + \
                (f", first {arm.max_candidates} samples per teacher)" if arm.max_candidates is not None else ")")
            extra = {"arm": arm.name, "max_candidates": arm.max_candidates, "k": c.generation.k}
            if restricted:
                extra.update(arm_teachers=list(arm.teachers), random_arm=c.random_arm(arm).name,
                             **teacher_provenance(c, arm.teachers, self.config.student.model))
            result, summary = select_pool(pool, objective, c.seed, L.selected(arm.name),
                                          L.selection_record(arm.name), L.summary(arm.name), source,
                                          baseline=baselines[group], extra=extra)
            self.log(f"[select] {arm.name}: {objective.describe()}\n{summary.render()}")
            if len(result.unqualified):
                self.log(f"[select] {arm.name}: {len(result.unqualified)} prompt(s) had no eligible candidate "
                         f"(listed in {L.summary(arm.name)})")
            stage.finish(stats=result.stats, pairs=data_hash(result.selected))

    def _train_inputs(self, arm: str) -> dict:
        # Keyed on the pairs it learns from, not on the selection's key: a rescoring that picks
        # the same pairs (a metric added or dropped elsewhere) leaves the student alone.
        from ..training.data import data_hash, open_ended, open_key

        training = self.config.student.training.model_copy(update={"seed": self.config.seed})
        pairs = read_table(self.layout.selected(arm))
        return {"data": data_hash(pairs), "student": self.student_identity, "training": training.fingerprint(),
                **open_key(open_ended(pairs, training.cut_off_completions))}

    def _train(self, only: str | None = None) -> None:
        from ..training.sft import train_student

        s, L = self.config.student, self.layout
        training = s.training.model_copy(update={"seed": self.config.seed})
        if only is None:  # a worker running one arm leaves the directory to the scheduler
            retire_others(L.students, [a.name for a in self.config.arms], log=self.log)
        elif only not in [a.name for a in self.config.arms]:
            raise HeirloomError(f"no arm named {only!r} to train (arms: {', '.join(a.name for a in self.config.arms)})")
        for arm in self.config.arms:
            if only is not None and arm.name != only:
                continue
            inputs = self._train_inputs(arm.name)
            stage = self._stage(L.student(arm.name), "train", inputs)
            if stage.is_done():
                continue
            d = stage.begin({**inputs, "student_ref": s.model})  # a killed training resumes from its checkpoint
            self.log(f"[train] {arm.name}: {s.model} ({training.method})")
            res = train_student(L.selected(arm.name), s.model, d, training, progress=self.progress)
            stage.finish(final_loss=res.final_loss, steps=res.steps, seconds=res.seconds)

    def profile_targets(self) -> list[str]:
        """What `profile` profiles: the student before training (`base`), then each arm's student."""
        return [BASE] + [a.name for a in self.config.arms]

    def _profile(self, only: str | None = None) -> None:
        from ..profiling.suites import ProfileConfig, profile_model
        from .keys import profile_scorers

        L = self.layout
        config = ProfileConfig(**self.config.profiling)
        settings = {"profiling": config.model_dump(mode="json", exclude={"batch_size"}),
                    "scorers": profile_scorers(config)}
        if only is None:
            retire_others(L.profiles, self.profile_targets(), log=self.log)
        elif only not in self.profile_targets():
            raise HeirloomError(f"nothing named {only!r} to profile (targets: {', '.join(self.profile_targets())})")
        for name in self.profile_targets():
            if only is not None and name != only:
                continue
            # A student's profile is keyed on its training's key (computed, not read from a marker:
            # a worker profiling one arm never ran `_train` in its process).
            model, after = ((self.config.student.model, None) if name == BASE else
                            (str(L.merged(name)), config_hash(self._train_inputs(name))))
            inputs = {"model": self.student_identity if after is None else None, "after": after, **settings}
            stage = self._stage(L.profile_dir(name), "profile", inputs)
            if stage.is_done():
                continue
            d = stage.begin(inputs)
            self.log(f"[profile] {name}: {', '.join(config.suites)}")
            profile_model(model, config, d, progress=self.progress, name=name)
            stage.finish()

    def _report(self) -> None:
        from ..report import write_report

        path = write_report(self.dir)
        summary = path.parent / "summary.md"
        if summary.exists():  # the targeted changes against base and random, as the paper reads them
            self.log(summary.read_text(encoding="utf-8"))
        self.log(f"[report] {path}")


def teacher_families(config: RunConfig, teachers: list[str], student: str) -> dict[str, str]:
    """{teacher: "same" | "different" | "unknown"}: does it share a model family/base with the student?"""
    return teacher_provenance(config, teachers, student)["teacher_family"]


def teacher_provenance(config: RunConfig, teachers: list[str], student: str) -> dict:
    """What a restricted arm's summary records about its teachers against the student:
    `teacher_family` {teacher: same | different | unknown} (the student's own identity, else by
    `models.family.family`: live teachers from their reference, imported ones from their
    `generator` name), `teacher_model_family` / `teacher_architecture` {teacher: value or None},
    and `student_model_family` / `student_architecture`. Families, never architectures, decide
    "same": SmolLM2 is a llama architecture but not a Llama."""
    from ..models.family import family, family_from_name, model_type, same_family
    from ..models.refs import ModelRef

    def identity(text):
        try:
            return ModelRef.parse(text).identity
        except HeirloomError:
            return None

    live = {identity(t.model): t.model for t in config.teachers if t.model is not None}
    student_id, student_family = identity(student), family(student)
    families = {n: family(live[n]) if n in live else family_from_name(n) for n in teachers}
    return {
        "teacher_family": {n: "same" if n == student_id else same_family(families[n], student_family)
                           for n in teachers},
        "teacher_model_family": families,
        "teacher_architecture": {n: model_type(live[n]) if n in live else None for n in teachers},
        "student_model_family": student_family,
        "student_architecture": model_type(student),
    }


def _write_yaml(config: RunConfig, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def run_config(config: RunConfig, run_dir: str | Path, progress: bool = True, until: str | None = None,
               log=print, workers: int | None = None) -> RunResult:
    """Run (or resume) `config` in `run_dir`; `workers` > 1 (default: the config's) runs independent
    stages in that many processes (`parallel`)."""
    return Runner(config, run_dir, progress=progress, log=log).run(until=until, workers=workers)
