"""The ``procbots`` command line.

Each command group lives in its own module under ``flows/commands`` and keeps its heavy
imports inside the command body, so ``procbots --help`` imports Typer and nothing of
the product's heavy dependencies (``tests/test_cli_imports.py`` holds it to that;
``benchmarks/bench_startup.py`` times it). The sandbox is imported only inside the
``sandbox`` and ``demo`` commands.

Exit codes: 0 success, 1 some items ended in exceptions, 2 bad usage or configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.commands import audit, console, demo, items, match, peppol, run, sandbox, serve

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
    if "--help" in sys.argv[1:]:
        # A command's help does no work, so it neither needs nor pays for the settings.
        # (Click hands the group callback no public view of the subcommand's arguments.)
        return
    from config.settings import get_settings

    get_settings.cache_clear()
    get_settings()  # fail at start, before any work, when a setting is bad


app.add_typer(sandbox.app, name="sandbox")
app.add_typer(audit.app, name="audit")
app.add_typer(items.app, name="items")
app.add_typer(peppol.app, name="peppol")
app.add_typer(run.app, name="run")
app.add_typer(console.app, name="console")
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
            # A rule across keys of one section: its message names the keys and values.
            lines.append(f"setting {key}: {str(err['msg']).removeprefix('Value error, ')}")
            continue
        lines.append(f"setting {key}={value!r}: {err['msg']}")
    return "\n".join(lines)


def _is_config_error(exc: BaseException) -> bool:
    """A bad setting or ``--config``. Pydantic and the settings module are looked at only
    when already imported (an exception of theirs implies they are), so ``--help`` does not
    pay for them."""
    if isinstance(exc, ConfigError):
        return True
    settings = sys.modules.get("config.settings")
    if settings is not None and isinstance(exc, settings.SettingsError):
        return True
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def main() -> None:
    """Console-script entry point: settings errors become exit 2 without a traceback."""
    try:
        app()
    except Exception as exc:
        if not _is_config_error(exc):
            raise
        typer.echo(f"procbots: configuration error\n{describe_validation_error(exc)}", err=True)
        sys.exit(2)
