"""`heirloom pool import|merge`: build candidate pools from offline files and other pools.

`import` turns AlpacaEval-format outputs into a pool of offline teachers; `merge`
joins pools (live and imported) by prompt_id. Both report prompts one source has
and another lacks, and write `<out>.meta.json`. Generating candidates is
`heirloom generate`'s job.
"""

from __future__ import annotations

from pathlib import Path

import click


def _report(pool, report, out: Path) -> None:
    counts = pool.groupby("teacher", sort=True).size()
    click.echo(f"wrote {len(pool)} candidates ({len(counts)} teachers, {report.n_prompts} prompts) to {out}", err=True)
    for teacher, n in counts.items():
        click.echo(f"  {teacher}: {n}", err=True)
    for line in report.lines()[1:]:
        click.echo(f"warning: {line}", err=True)


@click.group("pool")
def command():
    """Build candidate pools: import offline generations, merge pools."""


@command.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="pool file to write")
@click.option("--prompts", "prompts_path", default=None, type=click.Path(dir_okay=False),
              help="table with prompt_id and prompt (a prompt set or a live pool): match instructions to its ids")
@click.option("--overwrite", is_flag=True, help="replace OUT when it exists and was not made by `heirloom pool import`")
def import_cmd(files, out, prompts_path, overwrite):
    """Import AlpacaEval-format outputs (instruction, output, generator) as offline teachers."""
    from ..outputs import check_output
    from ..pools import OFFLINE_UNDEFINED, coverage, import_outputs
    from ..provenance import record
    from ..tables import read_table, table_format, write_json, write_table

    out = Path(out)
    table_format(out)
    check_output(out, "pool import", [*files, prompts_path], overwrite)
    prompts = read_table(prompts_path) if prompts_path else None
    pool = import_outputs(files, prompts=prompts)
    report = coverage(pool)
    extra = {}
    if prompts is not None:
        ref, got = set(prompts["prompt_id"].astype(str)), set(pool["prompt_id"])
        extra = {"not_in_prompts": sorted(got - ref), "prompts_not_imported": sorted(ref - got)}
        for what, ids in extra.items():
            if ids:
                click.echo(f"warning: {len(ids)} {what.replace('_', ' ')} (e.g. {', '.join(ids[:3])})", err=True)
    write_table(pool, out)
    write_json(record(stage="pool import", files=[str(f) for f in files], prompts=prompts_path, n_rows=len(pool),
                      teachers=pool["teacher"].value_counts().to_dict(), coverage=report.to_dict(),
                      undefined=OFFLINE_UNDEFINED, **extra), out.with_name(out.name + ".meta.json"))
    _report(pool, report, out)


@command.command("merge")
@click.argument("pools", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="merged pool file to write")
@click.option("--renumber", is_flag=True,
              help="renumber sample_index per (prompt, teacher) when the same teacher comes from several pools")
@click.option("--overwrite", is_flag=True, help="replace OUT when it exists and was not made by `heirloom pool merge`")
def merge_cmd(pools, out, renumber, overwrite):
    """Merge pools (live and imported) into one multi-source pool, by prompt_id."""
    from ..outputs import check_output
    from ..pools import merge_pools
    from ..provenance import record
    from ..tables import read_table, table_format, write_json, write_table

    out = Path(out)
    table_format(out)
    check_output(out, "pool merge", pools, overwrite)
    pool, report = merge_pools([read_table(p) for p in pools], names=[str(p) for p in pools], renumber=renumber)
    write_table(pool, out)
    write_json(record(stage="pool merge", inputs=[str(p) for p in pools], renumber=renumber, n_rows=len(pool),
                      teachers=pool["teacher"].value_counts().to_dict(), coverage=report.to_dict()),
               out.with_name(out.name + ".meta.json"))
    _report(pool, report, out)
