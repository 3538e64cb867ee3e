"""The `heirloom` command line: one click group, one module per command.

Each command lives in `heirloom/cli/<name>.py` and exposes `command`; adding a
command means adding its module name to `COMMANDS`. Commands import heavy
libraries (torch, transformers) inside their bodies so `heirloom --help` is fast.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import HeirloomError

COMMANDS = [
    "models", "generate", "serve", "score", "metrics", "select", "train",
    "run", "profile", "compare", "report", "pool", "data",
]


class _LazyGroup(click.Group):
    """Loads a command's module only when that command is used or listed."""

    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx, name):
        return self._load(name) if name in COMMANDS else None

    @staticmethod
    def _load(name):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                return None  # command not built (yet)
            raise
        return module.command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="heirloom")
def cli():
    """heirloom: decide what a student LLM inherits from synthetic data.

    prompts -> candidates -> scores -> selection -> SFT -> profiles -> report
    """


def main(argv=None):
    try:
        cli.main(args=argv, standalone_mode=False)
    except HeirloomError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:  # a bad option value: one line, like every other error
        where = f"{e.ctx.command_path}: " if e.ctx is not None else ""
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {where}{e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
