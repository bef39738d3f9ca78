"""The ``procbots`` command line.

Each command group lives in its own module under ``flows/commands`` (or
``sandbox/cli.py``) and keeps its heavy imports inside the command body, so
``procbots --help`` stays fast.

Exit codes: 0 success, 1 some items ended in exceptions, 2 bad usage or configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.commands import audit, demo, items, match, peppol, run, serve
from sandbox import cli as sandbox_cli

app = typer.Typer(
    name="procbots",
    help="Software robots for NHS procurement back offices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML settings file layered over the defaults", exists=False),
    ] = None,
) -> None:
    """Software robots for NHS procurement back offices."""
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"--config {config}: no such file")
        os.environ["PROCBOTS_CONFIG"] = str(config)
    from config.settings import get_settings

    get_settings.cache_clear()
    get_settings()  # fail at start, before any work, when a setting is bad


app.add_typer(sandbox_cli.app, name="sandbox")
app.add_typer(audit.app, name="audit")
app.add_typer(items.app, name="items")
app.add_typer(peppol.app, name="peppol")
app.add_typer(run.app, name="run")
app.command("match")(match.match)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)


class ConfigError(Exception):
    """A configuration problem reported as one clear line and exit code 2."""


def describe_validation_error(exc: Exception) -> str:
    """One line per bad setting: the key, the value given and what was expected."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        value = err.get("input")
        if isinstance(value, dict):
            value = "<section>"
        lines.append(f"setting {key}={value!r}: {err['msg']}")
    return "\n".join(lines)


def main() -> None:
    """Console-script entry point: settings errors become exit 2 without a traceback."""
    from pydantic import ValidationError

    from config.settings import SettingsError

    try:
        app()
    except (ValidationError, ConfigError, SettingsError) as exc:
        typer.echo(f"procbots: configuration error\n{describe_validation_error(exc)}", err=True)
        sys.exit(2)
