"""`procbots items`: look at and repair work items in the ledger.

``list`` shows the items that need attention (every state but done; ``--all``
for everything, ``--state`` for one), ``show`` one item with its history,
checkpoints and evidence, ``retry`` puts a business exception, failed or
needs-review item back in the queue (first in line for its bot's next run),
``release`` frees an item stuck in progress (its worker died and the lease has not
run out yet), ``resolve`` marks an exception dealt with by hand (``done``, with a
note). Each action prints one sentence and is recorded in the audit log under the
OS user running ``procbots`` with the ``--reason`` (or ``--note``) given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bots.runtime.ledger import Ledger

app = typer.Typer(help="Work items in the ledger: list, show, retry, release, resolve.", no_args_is_help=True)

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
    from connectors.audit import audit_event

    def audit_quietly(event: str, **fields: Any) -> None:
        # To the audit file only: the command prints its own sentence, not the record.
        audit_event(event, log=False, **fields)

    return Ledger.from_settings(get_settings(), audit=audit_quietly)


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
    show_all: Annotated[
        bool, typer.Option("--all", help="Every item, done ones too (default: those needing attention)")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table")] = False,
) -> None:
    """List work items, oldest first: by default every item not done yet."""
    if state is not None and state not in STATES:
        raise _bad_usage(f"--state {state!r} is not a state; use one of {', '.join(STATES)}")
    open_states = None if state is not None or show_all else [s for s in STATES if s != "done"]
    items = _ledger().list(state=state, bot=bot, limit=limit, states=open_states)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json", exclude={"payload", "lease_token"}) for i in items]))
        return
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table("id", "bot", "key", "state", "attempts", "reason", "lease (London)", "updated (London)")
    table.columns[2].overflow = "fold"  # a long key wraps in the cell; it is never cut
    for item in items:
        reason = f"{item.reason_code}: {item.reason_message}" if item.reason_code else ""
        lease = f"{item.lease_owner} until {_london(item.lease_expires_at)}" if item.lease_owner else ""
        table.add_row(
            str(item.id),
            item.bot,
            item.idempotency_key,
            item.state.value,
            str(item.attempts),
            reason,
            lease,
            _london(item.updated_at),
        )
    # On a terminal the table fits the window (long cells wrap); piped, rows stay whole.
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)
    if open_states is not None:
        typer.echo("Done items are hidden; --all shows them.")
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


def _describe(item: Any) -> str:
    return f"Item {item.id} ({item.bot} {item.idempotency_key})"


def _act(action: Callable[[Ledger, str], Any]) -> tuple[Any, str]:
    """Runs one operator action under the OS user's name; bad ids and states exit 2."""
    from bots.runtime.ledger import os_user

    operator = os_user()
    try:
        return action(_ledger(), operator), operator
    except (LookupError, ValueError) as exc:
        raise _bad_usage(str(exc)) from None


def _recorded(what: str, operator: str, reason: str | None) -> str:
    return f"Recorded as {what} by {operator}" + (f": {reason}" if reason else ".")


@app.command("retry")
def retry(
    item_id: Annotated[int, typer.Argument(help="Item id")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log")] = None,
) -> None:
    """Put a business_exception, failed or needs_review item back in the queue, first in line."""
    item, operator = _act(lambda ledger, op: ledger.retry(item_id, reason=reason, operator=op))
    typer.echo(
        f"{_describe(item)} is back in the queue; the next {item.bot} run processes it first. "
        + _recorded("retried", operator, reason)
    )


@app.command("release")
def release(
    item_id: Annotated[int, typer.Argument(help="Item id")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log")] = None,
) -> None:
    """Free an item stuck in progress so another worker can claim it."""
    holder: list[str | None] = []

    def release_it(ledger: Ledger, operator: str) -> Any:
        holder.append(ledger.get(item_id).lease_owner)
        return ledger.release(item_id, reason=reason, operator=operator)

    item, operator = _act(release_it)
    typer.echo(
        f"{_describe(item)} was taken from {holder[0] or 'its worker'} and is pending again. "
        + _recorded("released", operator, reason)
    )


@app.command("resolve")
def resolve(
    item_id: Annotated[int, typer.Argument(help="Item id")],
    note: Annotated[str, typer.Option("--note", help="What was done by hand, for the audit log")],
) -> None:
    """Mark an exception as dealt with by hand: the item is done, with your note."""
    item, operator = _act(lambda ledger, op: ledger.resolve(item_id, note, operator=op))
    typer.echo(f"{_describe(item)} is done, resolved by {operator}: {note}")
