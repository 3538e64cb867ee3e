"""Run a config's independent work in several worker processes (`heirloom run --workers N`).

A run is a small graph of units: generate -> score -> select -> one `train` per arm ->
that arm's `profile`; the base model's profile needs nothing and starts at once. With N
workers, up to N units run at the same time, each in its own process, chosen in pipeline
order (the critical path first, the base profile fills an idle worker). Each unit is the
runner's own stage code restricted to one arm or profile target, behind the same markers,
so a parallel run and a sequential one write the same files, and either resumes the other.

Processes, not threads: each worker runs its own model with its own torch threads and, on
a machine with several GPUs, its own GPU (worker i sees GPU i mod the number of GPUs). It pays
where workers do not share the bottleneck (one GPU each, many CPU cores); on a 2-vCPU machine
two 1-thread workers ran no faster than one 2-thread process (docs/results.md).

What it leaves out: units never split further (one teacher's generation is one unit), the
report runs in the calling process at the end, and a failed unit stops new units from
starting but lets the running ones finish (their work is kept), then raises its error.
Worker threads: the CPU count divided by N (at least 1), fixed for the whole run: bf16 samples
depend on the thread count (docs/backends.md), so a run reproduces at the same `workers`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from ..errors import HeirloomError
from .layout import BASE


@dataclass(frozen=True)
class Unit:
    stage: str  # generate, score, select, train, profile
    target: str | None = None  # the arm (train) or profile target (profile)
    needs: tuple["Unit", ...] = field(default=(), compare=False, hash=False)

    def __str__(self) -> str:
        return self.stage if self.target is None else f"{self.stage} {self.target}"


def plan(arms: list[str], until: str | None) -> list[Unit]:
    """The units up to `until` (None: all but the report), in the order workers take them up."""
    gen = Unit("generate")
    score = Unit("score", needs=(gen,))
    select = Unit("select", needs=(score,))
    trains = [Unit("train", a, needs=(select,)) for a in arms]
    units = [gen, score, select, *trains]
    if until in (None, "profile", "report"):
        units += [Unit("profile", BASE)] + [Unit("profile", t.target, needs=(t,)) for t in trains]
    order = ("generate", "score", "select", "train", "profile")
    last = order.index(until) if until in order else len(order) - 1
    return [u for u in units if order.index(u.stage) <= last]


def worker_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def run_parallel(config, run_dir, units: list[Unit], workers: int,
                 log: Callable[[str], object]) -> tuple[dict[str, float], list[str]]:
    """Run `units` on `workers` processes; returns the seconds each unit took (by its name) and
    the stages found done and reused (as `RunResult.skipped` names them)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or CUDA state
    slots = ctx.Queue()
    for i in range(workers):
        slots.put(i)
    threads = worker_threads(workers)
    log(f"[run] {workers} workers, {threads} torch thread(s) each")
    seconds: dict[str, float] = {}
    skipped: list[str] = []
    done: set[Unit] = set()
    waiting = list(units)
    running: dict[Future, tuple[Unit, float]] = {}
    failure: BaseException | None = None
    payload = (config.model_dump(mode="json"), str(run_dir))
    init = (slots, threads, _gpu_ids())
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        while waiting or running:
            for unit in [u for u in waiting if failure is None and set(u.needs) <= done]:
                if len(running) >= workers:
                    break
                waiting.remove(unit)
                running[pool.submit(_run_unit, *payload, unit.stage, unit.target)] = (unit, time.perf_counter())
                log(f"[run] {unit}: started")
            if not running:  # a failure left units that can no longer start
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                unit, t0 = running.pop(future)
                seconds[str(unit)] = time.perf_counter() - t0
                try:
                    skipped += future.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below, once the running units end
                    if failure is None:
                        failure = e
                        if running:
                            log(f"[run] {unit} failed; waiting for {len(running)} running unit(s) to finish "
                                "(their work is kept)")
                    continue
                done.add(unit)
                log(f"[run] {unit}: done in {seconds[str(unit)]:.0f}s")
    if failure is not None:
        raise failure
    return seconds, skipped


def _gpu_ids() -> list[str]:
    """The GPUs workers share out, one each: CUDA_VISIBLE_DEVICES's list, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _init_worker(slots, threads: int, gpus: list[str]) -> None:
    slot = slots.get()
    os.environ["HEIRLOOM_WORKER"] = str(slot)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if gpus:  # before this process touches CUDA: it sees one GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    import torch

    torch.set_num_threads(threads)


def _run_unit(config_json: dict, run_dir: str, stage: str, target: str | None) -> list[str]:
    from .config import RunConfig
    from .runner import Runner

    slot = os.environ.get("HEIRLOOM_WORKER", "?")
    runner = Runner(RunConfig.model_validate(config_json), run_dir, progress=False,
                    log=lambda message: print(f"[worker {slot}] {message}", flush=True))
    method = getattr(runner, f"_{stage}")
    try:
        method() if target is None else method(only=target)
    except HeirloomError as e:  # the message names the unit: the parent prints it as the run's error
        raise HeirloomError(f"{stage}{'' if target is None else ' ' + target}: {e}") from None
    return runner.result.skipped
