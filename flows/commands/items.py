"""`procbots items`: look at and repair work items in the ledger.

``list`` shows items (optionally of one state or bot), ``show`` one item with its
history, checkpoints and evidence, ``retry`` puts a business exception, failed or
needs-review item back in the queue, ``release`` frees an item stuck in progress
(its worker died and the lease has not run out yet).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bots.runtime.ledger import Ledger

app = typer.Typer(help="Work items in the ledger: list, show, retry, release.", no_args_is_help=True)

STATES = [
    "pending",
    "in_progress",
    "done",
    "business_exception",
    "system_exception",
    "failed",
    "needs_review",
]


def _ledger() -> Ledger:
    from bots.runtime.ledger import Ledger
    from config.settings import get_settings

    return Ledger.from_settings(get_settings())


def _london(value: Any) -> str:
    if value is None:
        return ""
    from zoneinfo import ZoneInfo

    return str(value.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M:%S %Z"))


def _bad_usage(message: str) -> typer.Exit:
    typer.echo(f"procbots items: {message}", err=True)
    return typer.Exit(2)


@app.command("list")
def list_items(
    state: Annotated[str | None, typer.Option("--state", help=f"One of: {', '.join(STATES)}")] = None,
    bot: Annotated[str | None, typer.Option("--bot", help="Only this bot's items")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table")] = False,
) -> None:
    """List work items, oldest first."""
    if state is not None and state not in STATES:
        raise _bad_usage(f"--state {state!r} is not a state; use one of {', '.join(STATES)}")
    items = _ledger().list(state=state, bot=bot, limit=limit)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json", exclude={"payload", "lease_token"}) for i in items]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "bot", "key", "state", "attempts", "reason", "updated (London)")
    for item in items:
        reason = f"{item.reason_code}: {item.reason_message}" if item.reason_code else ""
        table.add_row(
            str(item.id),
            item.bot,
            item.idempotency_key,
            item.state.value,
            str(item.attempts),
            reason,
            _london(item.updated_at),
        )
    Console().print(table)
    if not items:
        typer.echo("no work items match")


@app.command("show")
def show(
    item_id: Annotated[int, typer.Argument(help="Item id (from `procbots items list`)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one item: state, reason, checkpoints, evidence and its full history."""
    ledger = _ledger()
    try:
        item = ledger.get(item_id)
    except LookupError as exc:
        raise _bad_usage(str(exc)) from None
    history = ledger.history(item_id)
    if as_json:
        body = item.model_dump(mode="json", exclude={"lease_token"})
        body["history"] = [t.model_dump(mode="json") for t in history]
        typer.echo(json.dumps(body))
        return
    typer.echo(f"item {item.id}  {item.bot}  {item.idempotency_key}")
    typer.echo(
        f"state      {item.state.value} (attempts {item.attempts}, lease expiries {item.lease_expiries})"
    )
    if item.lease_owner:
        typer.echo(f"leased to  {item.lease_owner} until {_london(item.lease_expires_at)}")
    if item.reason_code:
        typer.echo(f"reason     {item.reason_code}: {item.reason_message}")
    if item.result:
        typer.echo(f"result     {json.dumps(item.result)}")
    typer.echo("checkpoints")
    for name, value in item.checkpoints.items():
        typer.echo(f"  {name}: {value if value is not None else '(done)'}")
    typer.echo("evidence")
    for evidence in item.evidence:
        typer.echo(f"  {evidence.path}  sha256 {evidence.sha256}")
    typer.echo("history")
    for t in history:
        line = f"  {_london(t.at)}  {t.event:<17} {t.from_state or '-'} -> {t.to_state}  attempt {t.attempt}"
        if t.owner:
            line += f"  by {t.owner}"
        if t.reason_code:
            line += f"  [{t.reason_code}]"
        if t.detail:
            line += f"  {t.detail}"
        typer.echo(line)


@app.command("retry")
def retry(
    item_id: Annotated[int, typer.Argument(help="Item id")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log")] = None,
) -> None:
    """Put a business_exception, failed or needs_review item back in the queue."""
    try:
        item = _ledger().retry(item_id, reason=reason)
    except (LookupError, ValueError) as exc:
        raise _bad_usage(str(exc)) from None
    typer.echo(f"item {item.id} ({item.idempotency_key}) is pending again")


@app.command("release")
def release(
    item_id: Annotated[int, typer.Argument(help="Item id")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log")] = None,
) -> None:
    """Free an item stuck in progress so another worker can claim it."""
    try:
        item = _ledger().release(item_id, reason=reason)
    except (LookupError, ValueError) as exc:
        raise _bad_usage(str(exc)) from None
    typer.echo(f"item {item.id} ({item.idempotency_key}) released: pending")
