"""`heirloom run`: a whole active-inheritance experiment from one YAML config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--run-dir", default=None, type=click.Path(file_okay=False),
              help="where the run's artifacts go: a new or empty directory, or an earlier run's [default: runs/<name>]")
@click.option("--until", default=None, help="stop after this stage (generate, score, select, train, profile, report)")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="data directory profiling reads (bbq/, crows_pairs/, ...); overrides data_dir in CONFIG "
                   "and HEIRLOOM_DATA")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="processes for independent stages (each arm's training and profile, the base profile); "
                   "each gets the CPU cores divided by N, or one GPU each; overrides `workers` in CONFIG "
                   "[default: the config's, 1] (docs/runs.md)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def command(config, run_dir, until, data_dir, workers, quiet):
    """Generate, score, select (one student per arm + random), train, profile, report.

    Run it again to resume: finished stages are skipped, an interrupted stage
    continues, and a stage whose config changed is redone with all that follows.
    Before any model loads, the run is checked (run directory, models, backend
    options, prompt lengths, profiling data; see docs/runs.md): a run that would
    fail stops in seconds. The run directory must be new, empty, or a run's.
    """
    from ..runs.config import load_run_config
    from ..runs.runner import run_config

    cfg = load_run_config(config)  # validated before anything runs
    if data_dir is not None:  # as if CONFIG said so, profiling's own data_dir included
        cfg.data_dir = cfg.profiling["data_dir"] = data_dir
    run_dir = Path(run_dir) if run_dir else Path("runs") / cfg.name
    click.echo(f"run {cfg.name!r} -> {run_dir}")
    result = run_config(cfg, run_dir, progress=not quiet, until=until, log=click.echo, workers=workers)
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
    skipped = f" (reused: {', '.join(result.skipped)})" if result.skipped else ""
    click.echo(f"done in {result.wall:.0f}s: {timing}{skipped}")
