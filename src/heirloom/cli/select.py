"""`heirloom select`: keep the best candidate per prompt of a scored pool.

Writes the selected pairs (usable as SFT data: `prompt`, `completion`), the
per-candidate record, the summary (chosen vs pool vs random on every metric)
and `<out>.meta.json` with the provenance. Scoring is `heirloom score`'s job.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..selection.spec import FORMS


def _beside(out: Path, tag: str, suffix: str | None = None) -> Path:
    return out.with_name(f"{out.stem}.{tag}{suffix if suffix is not None else out.suffix}")


@click.command("select")
@click.option("--in", "in_path", required=True, type=click.Path(dir_okay=False),
              help="scored pool (JSONL, JSON, CSV or Parquet)")
@click.option("--objective", "spec", default=None, help=f"short objective spec, one of: {FORMS}")
@click.option("--objective-file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON file with one objective (kind: metric|weighted|lexicographic|target|random)")
@click.option("--constraint", "constraints", multiple=True,
              help='hard bound a winner must meet, e.g. "toxicity<0.1" (repeatable)')
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="selected pairs, one row per prompt (format from the suffix)")
@click.option("--seed", default=0, type=int, help="seed of the random objective and the random baseline")
@click.option("--summary", "summary_path", default=None, type=click.Path(dir_okay=False),
              help="summary JSON [default: <out stem>.summary.json]")
@click.option("--record", "record_path", default=None, type=click.Path(dir_okay=False),
              help="per-candidate record [default: <out stem>.candidates.<out suffix>]")
@click.option("--quiet", is_flag=True, help="do not print the summary table")
@click.option("--overwrite", is_flag=True,
              help="replace outputs that exist and were not made by `heirloom select` (the input included)")
def command(in_path, spec, objective_file, constraints, out, seed, summary_path, record_path, quiet, overwrite):
    """Keep the best candidate of each prompt under an objective (vs a random baseline)."""
    from ..errors import HeirloomError
    from ..outputs import check_distinct, check_output
    from ..runs.stages import select_pool
    from ..selection import load_objective, parse_objective, with_constraints
    from ..tables import read_table, table_format

    if (spec is None) == (objective_file is None):
        raise HeirloomError("select: give exactly one of --objective SPEC or --objective-file FILE")
    out = Path(out)
    table_format(out)  # fail on a bad suffix before any work
    record_path = Path(record_path) if record_path else _beside(out, "candidates")
    summary_path = Path(summary_path) if summary_path else _beside(out, "summary", ".json")
    table_format(record_path)
    # Nothing is written over the pool, the objective file or a file this command did not make.
    inputs = [in_path, objective_file]
    check_distinct({"--out": out, "--record": record_path, "--summary": summary_path})
    check_output(out, "select", inputs, overwrite)
    check_output(record_path, "select", inputs, overwrite, option="--record", listed_by=out)
    check_output(summary_path, "select", inputs, overwrite, option="--summary", listed_by=out)
    objective = parse_objective(spec) if spec is not None else load_objective(objective_file)
    objective = with_constraints(objective, constraints)
    result, summary = select_pool(read_table(in_path), objective, seed, out, record_path, summary_path,
                                  source=str(in_path))
    if not quiet:
        click.echo(summary.render())
    if len(result.unqualified):
        first = result.unqualified.iloc[0]
        click.echo(f"warning: {len(result.unqualified)} prompt(s) have no eligible candidate and are not in "
                   f"{out} (e.g. {first.prompt_id}: {first.reason}); listed in {summary_path}", err=True)
    click.echo(f"wrote {len(result.selected)} pairs to {out}", err=True)
