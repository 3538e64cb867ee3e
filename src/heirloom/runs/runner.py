"""Run a config end to end: generate, score, select, train, profile, report.

Each stage writes into its own directory of the run with a marker keyed by
the hash of its config and of its inputs' keys (`stages.Stage`), so:
- a finished stage is skipped on a rerun;
- a killed stage resumes (candidates batch by batch, training from its last
  checkpoint, profiles suite by suite);
- a stage whose config or inputs changed is redone from scratch, and so is
  everything downstream of it, because downstream keys include its key.

Layout of a run directory:
    config.yaml            the validated config, as run
    prompts/prompts.jsonl
    candidates/pool.parquet (+ work file candidates.jsonl while generating)
    scores/scored.parquet
    arms/<arm>/selected.jsonl, summary.json, candidates.parquet
    students/<arm>/        adapter/, merged/, train.meta.json
    profiles/base/, profiles/<arm>/   profile.json
    report/index.html, report/figures/*.png
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import HeirloomError
from ..provenance import record
from ..tables import read_table, write_json, write_table
from .config import RunConfig
from .stages import Stage

STAGES = ("generate", "score", "select", "train", "profile", "report")


@dataclass
class RunResult:
    run_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, config: RunConfig, run_dir: str | Path, progress: bool = True, log=print):
        self.config, self.dir, self.progress, self.log = config, Path(run_dir), progress, log
        self.result = RunResult(self.dir)

    # --- orchestration -------------------------------------------------------
    def run(self, until: str | None = None) -> RunResult:
        if until is not None and until not in STAGES:
            raise HeirloomError(f"--until: unknown stage {until!r} (stages: {', '.join(STAGES)})")
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(record(config=self.config.model_dump(mode="json")), self.dir / "run.json")
        _write_yaml(self.config, self.dir / "config.yaml")
        for name in STAGES:
            if name == "report" and not self.config.report:
                continue
            t = time.perf_counter()
            getattr(self, f"_{name}")()
            self.result.seconds[name] = time.perf_counter() - t
            if name == until:
                break
        return self.result

    def _stage(self, directory: str, name: str, inputs) -> Stage:
        stage = Stage.of(self.dir / directory, name, inputs, log=self.log)
        if stage.is_done():
            self.result.skipped.append(name if directory == name else f"{name}:{directory}")
        return stage

    # --- stages ----------------------------------------------------------------
    def _prompts(self) -> pd.DataFrame:
        from ..prompts import load_prompts

        p = self.config.prompts
        sources = [p.source] if isinstance(p.source, str) else p.source
        parts = [load_prompts(s, column=p.column, split=p.split) for s in sources]
        prompts = pd.concat(parts, ignore_index=True).drop_duplicates("prompt_id", ignore_index=True)
        return prompts if p.limit is None else prompts.head(p.limit)

    def _generate(self) -> None:
        from ..candidates import finalize_pool, generate_candidates
        from ..generation import make_backend
        from ..models.refs import ModelRef
        from ..pools import import_outputs, merge_pools, validate_pool

        c = self.config
        prompts = self._prompts()
        # Keyed on what decides the samples; how they are computed (servers, replicas, batch size,
        # device, backend options) is recorded in the marker but changing it does not restart the run.
        key = {"prompts": c.prompts.model_dump(), "n_prompts": len(prompts), "seed": c.seed,
               "teachers": [{"model": t.model and ModelRef.parse(t.model).identity, "outputs": t.outputs, "stop": t.stop}
                            for t in c.teachers],
               "generation": c.generation.model_dump(mode="json")}
        stage = self.gen_stage = self._stage("candidates", "generate", key)
        if stage.is_done():
            return
        d = stage.begin({**key, "teachers": [t.model_dump() for t in c.teachers]})
        write_table(prompts, d / "prompts.jsonl")
        parts, live = [], []
        for t in c.teachers:
            if t.outputs is not None:
                imported = import_outputs(t.outputs, prompts=prompts)
                imported = imported[imported["prompt_id"].isin(prompts["prompt_id"])]  # this run's prompts only
                if imported.empty:
                    raise HeirloomError(f"teachers: no generation in {', '.join(t.outputs)} matches a prompt "
                                        f"of this run (matched by instruction text)")
                missing = len(set(prompts["prompt_id"]) - set(imported["prompt_id"]))
                if missing:
                    self.log(f"[generate] {missing} prompt(s) have no imported candidate in {', '.join(t.outputs)}")
                parts.append(imported)
                continue
            ref = ModelRef.parse(t.model)
            params = c.generation.sampling(t.stop).model_copy(update={"seed": c.seed})
            options = {"device": t.device, "batch_size": t.batch_size} if ref.backend == "hf" else {}
            options.update(t.options)
            self.log(f"[generate] {ref}: {len(prompts)} prompts x k={c.generation.k}")
            backend = make_backend(ref, **options)
            generate_candidates(backend, prompts, c.generation.k, params, d / "candidates.jsonl",
                                teacher=ref.identity, chat=c.generation.chat, progress=self.progress)
            backend.close()
            live.append(ref.identity)
        if live:
            parts.insert(0, finalize_pool(d / "candidates.jsonl", prompts, live, c.generation.k))
        pool = parts[0] if len(parts) == 1 else merge_pools(parts)[0]
        pool = validate_pool(pool, str(d / "pool.parquet"))
        write_table(pool, d / "pool.parquet")
        stage.finish(n_candidates=len(pool), teachers=sorted(pool["teacher"].unique()))

    def _score(self) -> None:
        from ..scoring import score_table, scoring_record

        inputs = {"after": self.gen_stage.key, "scoring": self.config.scoring.model_dump()}
        stage = self.score_stage = self._stage("scores", "score", inputs)
        if stage.is_done():
            return
        d = stage.begin(inputs)
        pool = read_table(self.dir / "candidates" / "pool.parquet")
        self.log(f"[score] {len(pool)} candidates with {', '.join(self.config.scoring.metrics)}")
        scored = score_table(pool, self.config.scoring.metrics, column=self.config.scoring.column,
                             progress=self.progress, source=str(self.dir / "candidates" / "pool.parquet"))
        write_table(scored, d / "scored.parquet")
        stage.finish(scoring=scoring_record(scored))

    def _select(self) -> None:
        from ..selection import select, summarize, with_constraints
        from ..selection.select import require_selected

        scored = read_table(self.dir / "scores" / "scored.parquet")
        random_arm = self.config.random_arm()
        baseline = select(scored, random_arm.objective, seed=self.config.seed)
        self.select_stages = {}
        for arm in self.config.arms:
            objective = with_constraints(arm.objective, arm.constraints)
            inputs = {"after": self.score_stage.key, "objective": objective.model_dump(), "seed": self.config.seed,
                      "max_candidates": arm.max_candidates}
            stage = self.select_stages[arm.name] = self._stage(f"arms/{arm.name}", "select", inputs)
            if stage.is_done():
                continue
            d = stage.begin(inputs)
            pool = scored if arm.max_candidates is None else scored[scored["sample_index"] < arm.max_candidates]
            result = select(pool, objective, seed=self.config.seed, source=f"arm {arm.name}")
            require_selected(result, f"arm {arm.name}")
            summary = summarize(pool, result, baseline=baseline)
            write_table(result.selected, d / "selected.jsonl")
            write_table(result.candidates, d / "candidates.parquet")
            write_json({**summary.to_dict(), "arm": arm.name, "objective_kind": objective.kind,
                        "objective_metrics": objective.metrics(), "max_candidates": arm.max_candidates,
                        "k": self.config.generation.k}, d / "summary.json")
            self.log(f"[select] {arm.name}: {objective.describe()}\n{summary.render()}")
            if len(result.unqualified):
                self.log(f"[select] {arm.name}: {len(result.unqualified)} prompt(s) had no eligible candidate "
                         f"(listed in {d / 'summary.json'})")
            stage.finish(stats=result.stats)

    def _train(self) -> None:
        from ..training.sft import train_student

        s = self.config.student
        training = s.training.model_copy(update={"seed": self.config.seed})
        self.train_stages = {}
        for arm in self.config.arms:
            inputs = {"after": self.select_stages[arm.name].key, "student": s.model, "training": training.fingerprint()}
            stage = self.train_stages[arm.name] = self._stage(f"students/{arm.name}", "train", inputs)
            if stage.is_done():
                continue
            d = stage.begin(inputs)  # a killed training resumes from its checkpoint under the same key
            self.log(f"[train] {arm.name}: {s.model} ({training.method})")
            res = train_student(self.dir / "arms" / arm.name / "selected.jsonl", s.model, d, training,
                                progress=self.progress)
            stage.finish(final_loss=res.final_loss, steps=res.steps, seconds=res.seconds)

    def _profile(self) -> None:
        from ..profiling.suites import ProfileConfig, profile_model

        config = ProfileConfig(**self.config.profiling)
        targets = {"base": (self.config.student.model, None)}
        for arm in self.config.arms:
            targets[arm.name] = (str(self.dir / "students" / arm.name / "merged"), self.train_stages[arm.name].key)
        for name, (model, after) in targets.items():
            inputs = {"model": model if after is None else None, "after": after,
                      "profiling": config.model_dump(mode="json")}
            stage = self._stage(f"profiles/{name}", "profile", inputs)
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


def _write_yaml(config: RunConfig, path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def run_config(config: RunConfig, run_dir: str | Path, progress: bool = True, until: str | None = None,
               log=print) -> RunResult:
    """Run (or resume) `config` in `run_dir`."""
    return Runner(config, run_dir, progress=progress, log=log).run(until=until)
