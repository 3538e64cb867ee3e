"""`heirloom models`: the embedded aliases, whether they are installed and cached."""

from __future__ import annotations

import click


@click.command("models")
def command():
    """List model aliases that work offline, and what is cached."""
    from ..errors import HeirloomError
    from ..models.embedded import DEFAULT_MODEL, EMBEDDED
    from ..models.loader import cache_root, cached_path

    click.echo(f"cache: {cache_root()}")
    for alias, m in EMBEDDED.items():
        state = "not installed"
        if m.installed():
            try:
                cached = cached_path(alias) if alias == DEFAULT_MODEL or m.chat else None
            except HeirloomError:
                cached = None
            state = f"cached at {cached}" if cached else "installed (dequantized on first use)"
        default = " (default)" if alias == DEFAULT_MODEL else ""
        stop = f"\n  stop strings when none are set: {list(m.stop)}" if m.stop else ""
        click.echo(f"{alias}{default}\n  {m.description}\n  {state}" + ("" if m.installed() else f"; {m.install}")
                   + stop)
    from ..generation.registry import backend_names

    plugins = "".join(f", {name}:..." for name in backend_names() if name not in ("hf", "vllm", "openai", "ray"))
    click.echo("also accepted: a hub id, a local directory, a .gguf file, vllm:NAME, "
               f"openai:MODEL@http://host:port/v1[,URL2...], ray:REF{plugins}")
