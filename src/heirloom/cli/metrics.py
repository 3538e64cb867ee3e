"""`heirloom metrics`: list the metrics (built-in and plugins), or show one's options."""

from __future__ import annotations

import click

_DIRECTION = {True: "higher", False: "lower", None: "-"}


@click.command("metrics")
@click.argument("name", required=False)
def command(name):
    """List metrics with direction (which way is better), unit and description; NAME shows its options."""
    from ..metrics.registry import catalog, list_metrics

    if name is None:
        rows = [(c.name, _DIRECTION[c.higher_is_better], c.unit, c.description) for c in list_metrics()]
        widths = [max(len(r[i]) for r in rows + [("name", "better", "unit", "")]) for i in range(3)]
        click.echo(f"{'name':<{widths[0]}}  {'better':<{widths[1]}}  {'unit':<{widths[2]}}  description")
        for r in rows:
            click.echo(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
        click.echo("\noptions: heirloom metrics NAME; spec syntax: NAME:option=value:option=value")
        return
    from ..metrics.registry import get_metric

    loaders = catalog()
    if name not in loaders:
        get_metric(name)  # raises the "did you mean" error
    cls = loaders[name]()
    click.echo(f"{cls.name} (version {cls.version}): {cls.description}")
    click.echo(f"better: {_DIRECTION[cls.higher_is_better]}; unit: {cls.unit or '-'}")
    _options(cls.Options, "options")
    if name == "toxicity":
        from ..metrics.toxicity import backends

        for backend in backends().values():
            _options(backend.Options, f"options of backend={backend.name}")


def _options(model, title):
    if not model.model_fields:
        return
    click.echo(f"{title}:")
    for key, field in model.model_fields.items():
        default = "(required)" if field.is_required() else field.default
        if isinstance(default, tuple):
            default = "+".join(map(str, default))
        click.echo(f"  {key}={default}  {field.description or ''}")
