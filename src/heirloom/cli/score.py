"""`heirloom score`: add metric columns to any table (JSONL/JSON/CSV/Parquet).

Writes the scored table and `<out>.meta.json` (input, text column, each metric's
name, version, options and spec, NaN counts and reasons, timings, versions).
"""

from __future__ import annotations

import click


@click.command("score")
@click.option("--in", "in_path", required=True, type=click.Path(dir_okay=False),
              help="table to score (.jsonl, .json, .csv, .parquet)")
@click.option("--metrics", "-m", "metrics", required=True, multiple=True,
              help="comma-separated metric specs, e.g. length,mtld,toxicity or "
                   "length:tokenizer=smollm2-135m (repeatable; see `heirloom metrics`)")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="where to write the scored table (format from its suffix)")
@click.option("--column", default="completion", help="the text column to score")
@click.option("--progress/--quiet", " /--no-progress", default=True, help="show progress bars")
@click.option("--overwrite", is_flag=True,
              help="replace OUT when it exists and was not made by `heirloom score` (also when OUT is --in)")
def command(in_path, metrics, out_path, column, progress, overwrite):
    """Score a column of texts with metrics; one float column per metric."""
    from ..outputs import check_output
    from ..runs.stages import score_pool
    from ..scoring import scoring_record
    from ..tables import table_format

    table_format(out_path)  # a bad output suffix fails before any scoring
    check_output(out_path, "score", [in_path], overwrite)
    scored = score_pool(in_path, out_path, ",".join(metrics), column=column, progress=progress)
    info = scoring_record(scored)
    for m in info["metrics"]:
        values = scored[m["column"]]
        mean = values.mean() if values.notna().any() else float("nan")
        nan = f", {m['nan']} NaN ({next(iter(m['reasons']))}{', ...' if len(m['reasons']) > 1 else ''})" \
            if m["nan"] else ""
        click.echo(f"{m['column']}: mean {mean:.4g} over {values.notna().sum()} rows{nan} [{m['seconds']:.2f}s]")
    click.echo(f"wrote {out_path} ({len(scored)} rows) and {out_path}.meta.json")
