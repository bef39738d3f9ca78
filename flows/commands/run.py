"""``procbots run <bot>``: one command per registered bot, its options from the bot's parameters.

The commands are made from :mod:`bots.registry`: each parameter field becomes an
option (its :class:`bots.registry.Cli` flag, its description as help, its bounds),
plus ``--json``. Relative input paths are read from the working directory here
(from the data root in a flow run). Exit codes: 0 success, 1 some items ended in
exceptions (the output says which), 2 bad usage or configuration (one line, no
traceback). Importing this module imports the registry and the parameter models
only, never a bot.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic.fields import FieldInfo

    from bots.registry import Bot, BotParameters, RunOutcome

__all__ = ["app", "bot_command"]


class _RegistryGroup(TyperGroup):
    """``procbots run``'s commands, made from the registry when asked for (never at start-up)."""

    def list_commands(self, ctx: Any) -> list[str]:
        from bots import registry

        return [bot.name for bot in registry.bots(kind="bots")]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from bots import registry

        try:
            bot = registry.get(cmd_name)
        except KeyError:
            return None
        if bot.flow is not None:  # an operations flow: no bot to run
            return None
        one = typer.Typer(rich_markup_mode="rich")
        one.command(bot.name)(bot_command(bot))
        return typer.main.get_command(one)


app = typer.Typer(
    cls=_RegistryGroup,
    help="Run one bot now, outside Prefect (each bot of the registry is a command).",
    no_args_is_help=True,
)

_JSON = "as_json"
_REST = "more_args"


def _bounds(info: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        for attr, name in (("ge", "min"), ("le", "max")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds[name] = value
    return bounds


def _option(model: type[BotParameters], name: str, info: FieldInfo) -> inspect.Parameter:
    """One typer option for one parameter field."""
    from bots import registry

    flag = registry.cli_flag(model, name)
    help_text = (info.description or "").replace("[", "\\[")  # not rich markup
    annotation = info.annotation
    default: Any
    if annotation is bool:
        hint: Any = Annotated[bool, typer.Option(flag.flag, help=help_text)]
        default = bool(info.get_default(call_default_factory=True))
    elif annotation in (int, float):
        hint = Annotated[annotation | None, typer.Option(flag.flag, help=help_text, **_bounds(info))]
        default = None
    elif annotation == list[str]:
        hint = Annotated[list[str] | None, typer.Option(flag.flag, help=help_text)]
        default = None
    else:
        hint = Annotated[str | None, typer.Option(flag.flag, help=help_text)]
        default = None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)


def _problems(exc: Exception, model: type[BotParameters]) -> str:
    from pydantic import ValidationError

    from bots import registry

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        field = str(err["loc"][0]) if err["loc"] else ""
        lines.append(
            f"{registry.cli_flag(model, field).flag} {message}" if field in model.model_fields else message
        )
    return "; ".join(lines)


def _print(outcome: RunOutcome, bot: Bot, as_json: bool) -> None:
    from bots import registry

    data = getattr(outcome, "data", None)
    if as_json:
        if data is None:
            data = {
                "counts": dict(outcome.counts),
                "exceptions": [registry.row_dict(row) for row in outcome.exceptions],
                "reports": {name: str(path) for name, path in outcome.reports.items()},
            }
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    lines = getattr(outcome, "lines", None)
    if not lines:
        counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in outcome.counts.items() if n)
        lines = [f"{bot.title}: {counts or 'nothing to do'}"]
        lines += [f"  {registry.row_dict(row)}" for row in outcome.exceptions]
        lines += [f"{name}: {path}" for name, path in outcome.reports.items()]
    for line in lines:
        typer.echo(line)


def _execute(bot: Bot, model: type[BotParameters], given: dict[str, Any]) -> None:
    """Validate, resolve the inputs, run, print, exit with the bot's code."""
    from pydantic import ValidationError

    from bots import registry
    from bots.domain.errors import ApplicationError
    from config.settings import SettingsError, get_settings
    from connectors.portal.pages.base import LoginRejected

    command = f"procbots run {bot.name}"
    as_json = bool(given.pop(_JSON, False))
    rest = given.pop(_REST, None) or []
    values = {name: value for name, value in given.items() if value is not None}
    rest_field = next((n for n in model.model_fields if registry.cli_flag(model, n).rest), None)
    if rest:
        if rest_field is None:
            typer.echo(f"{command}: unexpected arguments: {' '.join(rest)}", err=True)
            raise typer.Exit(2)
        values[rest_field] = [*values.get(rest_field, []), *rest]
    try:
        params = model(**values)
        params = registry.resolve_inputs(
            params, Path.cwd(), label=lambda name: registry.cli_flag(model, name).flag
        )
    except (ValidationError, registry.BotInputError) as exc:
        typer.echo(f"{command}: {_problems(exc, model)}", err=True)
        raise typer.Exit(2) from None
    context = registry.RunContext(run_id=registry.new_run_id(), data_root=get_settings().paths.root)
    try:
        outcome = bot.run_callable()(params, context)
    except (registry.BotInputError, SettingsError, LoginRejected) as exc:
        typer.echo(f"{command}: {exc}", err=True)
        raise typer.Exit(2) from None
    except ApplicationError as exc:
        typer.echo(f"{command}: the portal failed: {exc}", err=True)
        raise typer.Exit(1) from None
    _print(outcome, bot, as_json)
    rows = [registry.row_dict(row) for row in outcome.exceptions]
    rejected = [row for row in rows if row.get("reason_code") == "LOGIN_REJECTED"]
    if rejected or getattr(outcome, "stopped", "") == "LOGIN_REJECTED":
        reason = (
            rejected[0].get("reason") if rejected else getattr(outcome, "stopped_message", "")
        ) or "check portal.username and the password"
        typer.echo(f"{command}: LOGIN_REJECTED: the portal refused the sign-in: {reason}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(int(outcome.exit_code))


def bot_command(bot: Bot) -> Callable[..., None]:
    """The typer command of one registry entry."""
    from bots import registry

    model = bot.parameter_model()
    assert model is not None, bot.name
    options = [_option(model, name, info) for name, info in model.model_fields.items()]
    options.append(
        inspect.Parameter(
            _JSON,
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")],
        )
    )
    rest_field = next((n for n in model.model_fields if registry.cli_flag(model, n).rest), None)
    if rest_field is not None:
        flag = registry.cli_flag(model, rest_field).flag
        options.insert(
            0,
            inspect.Parameter(
                _REST,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[
                    list[str] | None, typer.Argument(help=f"More values of {flag}, so `{flag} a b` works")
                ],
            ),
        )

    def command(*args: Any, **given: Any) -> None:
        if args:
            given[_REST] = args[0]
        _execute(bot, model, given)

    command.__signature__ = inspect.Signature(options)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in options}
    command.__name__ = bot.key
    command.__doc__ = (
        f"{bot.description} Exit 0 all done, 1 some items need a person, 2 bad usage or configuration."
    )
    return command
