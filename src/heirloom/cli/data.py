"""`heirloom data`: where every profiling suite's data comes from right now, and what is missing."""

from __future__ import annotations

import click


def _size(path) -> str:
    from pathlib import Path

    p = Path(path)
    n = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def rows(config) -> tuple[list[dict], list[str]]:
    """One row per data set of every known suite (resolved as the config says), and the errors."""
    from ..errors import HeirloomError
    from ..profiling import registry
    from ..profiling.data import check

    out, errors = [], []
    for name in registry.names():
        suite = registry.get_suite(name)
        for part in suite.parts:
            for req in part.data(config.part_config(part.name)):
                src = req.source
                row = {"suite": name, "option": req.option, "data": src.title if src else "(file)",
                       "license": src.license if src else "", "source": "MISSING", "location": "-", "size": "-"}
                try:
                    res = check(req, config.data_dir)
                except HeirloomError as e:
                    errors.append(str(e))
                else:
                    row["source"] = {"data_dir": "data dir"}.get(res.kind, res.kind)
                    row["location"] = res.hub.describe().removeprefix("hub ") if res.hub else res.location
                    row["size"] = "remote" if res.hub else _size(res.location)
                out.append(row)
    return out, errors


@click.command("data")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="data directory laid out like heirloom's shared data (bbq/, alpaca_eval_outputs/, calibration/) "
                   "[$HEIRLOOM_DATA]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="a profile config (YAML/JSON): list the data its settings resolve to")
def command(data_dir, config_file):
    """List every profiling suite's data: the source it resolves to now (packaged, explicit
    file, data directory, or Hugging Face hub id), its size and license, and what is missing.

    Resolution order: a path set in the config; the paper's small subsets packaged with
    heirloom (Dolly-200, RTP toxic prompts, CrowS-Pairs; checksums verified); the data
    directory (--data-dir, `data_dir` in a config, or $HEIRLOOM_DATA); the public hub id
    (offline, HF_HUB_OFFLINE, only when cached).
    """
    from ..profiling.data import data_dir as find_dir
    from ..profiling.suites import ProfileConfig
    from ..validation import read_mapping, validate

    doc = read_mapping(config_file, "profile config") if config_file else {}
    if data_dir is not None:
        doc["data_dir"] = data_dir
    config = validate(ProfileConfig, doc, config_file or "options")
    root, named_by = find_dir(config.data_dir)
    click.echo(f"data directory: {root} (from {named_by})" if root else
               "data directory: none (set --data-dir, data_dir in a config, or $HEIRLOOM_DATA)")
    table, errors = rows(config)
    head = ["suite", "option", "data", "source", "location", "size", "license"]
    widths = {h: max(len(h), *(len(str(r[h])) for r in table)) for h in head}
    click.echo("  ".join(h.ljust(widths[h]) for h in head).rstrip())
    for r in table:
        click.echo("  ".join(str(r[h]).ljust(widths[h]) for h in head).rstrip())
    for e in errors:
        click.echo(f"missing: {e}")
    if not errors:
        click.echo("all data available")
