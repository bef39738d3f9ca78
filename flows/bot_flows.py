"""The Prefect flows of every registered bot: one factory over :mod:`bots.registry`.

For each registry entry without its own flow, :func:`bot_flow` makes a flow named
after the bot (``purchase-orders``) whose single parameter ``params`` is the
entry's parameter model (the run form in the Prefect UI), and this module holds
it as ``<bot>_flow`` (``purchase_orders_flow``): the ``prefect.yaml`` entrypoint
``flows/bot_flows.py:purchase_orders_flow``. A run:

1. makes the run id (:func:`bots.registry.new_run_id`) and binds it to the logs;
2. resolves the input paths against the data root (``paths.root``) and refuses a
   missing one before any work, naming the full path (``Failed``, one sentence);
   on a retried flow run (Retry in the Prefect UI: the same flow run again), retries
   the items its earlier attempt left ``failed`` or ``needs_review``, so they go first;
3. runs the bot's run callable in one Prefect task (the bot's work-item runner
   loops over the items; Prefect sees counts, artifacts, logs), holding
   ``portal-browser-sessions`` slots for its browser contexts;
4. publishes the summary, the table of items and the links to its reports;
5. ends ``Completed`` (business exceptions alert, the bot did its job) or
   ``Failed`` (items failed after every retry), see :func:`flows.outcome.finish`.

The factory reads only the :class:`bots.registry.RunOutcome` protocol from the
run (``counts``, ``exit_code``, ``reports``, ``exceptions``), plus, when there,
``rows``, ``tables``, ``table_name``, ``message()`` and ``title``.

Example:
    >>> from flows.bot_flows import purchase_orders_flow  # doctest: +SKIP
    >>> purchase_orders_flow(params={"input": "inbox/requisitions.xlsx"})  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots import registry
from bots.registry import Bot, BotInputError, BotParameters, RunContext, RunOutcome
from flows.alerts import alert_on_completion, alert_on_crashed, alert_on_failure
from flows.common import (
    RunSummary,
    browser_session_slots,
    capped_task_runner,
    current_flow_run_id,
    flow_logging,
    publish_summary,
)
from flows.outcome import finish, refuse

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import State

    from config.settings import Settings

__all__ = ["FLOWS", "bot_flow", "run_bot"]


@dataclass(frozen=True)
class _Refused:
    """A run that could not do its work for a reason a person fixes (the task's result)."""

    problem: str


def _expected_errors() -> tuple[type[Exception], ...]:
    from config.settings import SettingsError
    from connectors.portal.pages.base import LoginRejected

    return (BotInputError, SettingsError, LoginRejected)


def _problem(exc: Exception) -> str:
    from connectors.portal.pages.base import LoginRejected

    return f"LOGIN_REJECTED: {exc}" if isinstance(exc, LoginRejected) else str(exc)


def run_bot(bot: Bot, params: BotParameters, context: RunContext) -> RunOutcome:
    """The bot's run callable on ``params`` (no Prefect: the CLI calls this too)."""
    return bot.run_callable()(params, context)


def _table(outcome: RunOutcome) -> tuple[list[dict[str, Any]], str]:
    rows = getattr(outcome, "rows", None)
    if rows is None:
        rows = [registry.row_dict(row) for row in outcome.exceptions]
    return [registry.row_dict(row) for row in rows], str(getattr(outcome, "table_name", "items"))


def _reports(outcome: Any) -> dict[str, Path | str]:
    """The outcome's reports; a runtime result without them offers its results workbook."""
    reports = getattr(outcome, "reports", None)
    if reports is not None:
        return dict(reports)
    workbook = getattr(outcome, "workbook", None)
    return {"results": workbook} if workbook is not None else {}


def _message(bot: Bot, outcome: RunOutcome) -> str:
    message = getattr(outcome, "message", None)
    if callable(message):
        return str(message())
    parts = [f"{n} {name}" for name, n in outcome.counts.items() if n]
    return f"{bot.title}: " + (", ".join(parts) if parts else "nothing to do")


def _summary(bot: Bot, outcome: RunOutcome, started: datetime) -> RunSummary:
    rows, _ = _table(outcome)
    return RunSummary(
        bot=bot.key,
        title=str(getattr(outcome, "title", bot.title)),
        counts=dict(outcome.counts),
        rows=rows,
        links=_reports(outcome),
        started_at=started,
        note=str(getattr(outcome, "note", "") or ""),
    )


def _publish(bot: Bot, outcome: RunOutcome, summary: RunSummary) -> None:
    rows, table_name = _table(outcome)
    publish_summary(
        bot.name,
        summary.title,
        summary.counts,
        rows,
        summary.links,
        message=_message(bot, outcome),
        table_name=table_name,
        tables=getattr(outcome, "tables", None),
        table_titles=getattr(outcome, "table_titles", None),
    )


def _log_outcome(log: Any, bot: Bot, outcome: RunOutcome) -> None:
    for row in map(registry.row_dict, outcome.exceptions[:50]):
        key = next((str(row[k]) for k in row if k.endswith(("_ref", "_number", "_id")) and row[k]), "")
        code = str(row.get("reason_code") or row.get("reason_codes") or row.get("status") or "")
        reason = row.get("reason") or row.get("what_to_check") or ""
        codes = code.split(", ") if ", " in code else code
        log.warning("needs a person", item=key, code=codes, reason=reason)
    if len(outcome.exceptions) > 50:
        log.warning("more items need a person", more=len(outcome.exceptions) - 50)
    log.info(f"{bot.title.lower()} finished", **{k: v for k, v in outcome.counts.items() if v})


def _retry_what_the_earlier_attempt_left(
    bot: Bot, flow_run_id: object | None, settings: Settings, log: Any
) -> int:
    """On a retried flow run (the Prefect UI's Retry), retries the items its earlier
    attempts left ``failed`` or ``needs_review``, so this attempt processes them first.

    Each is an operator's retry (:meth:`bots.runtime.ledger.Ledger.retry`), recorded
    under ``Prefect UI retry of flow run <name>``. Returns how many were retried.
    """
    from prefect.runtime import flow_run

    if not bot.ledger_bot or not flow_run_id or flow_run.get_run_count() < 2:
        return 0
    from bots.runtime.ledger import Ledger

    name = flow_run.get_name() or str(flow_run_id)
    ledger = Ledger.from_settings(settings)
    try:
        left = ledger.left_failed_by_run(bot.ledger_bot, registry.flow_run_suffix(flow_run_id))
        for item in left:
            ledger.retry(
                item.id,
                f"flow run {name} retried (attempt {flow_run.get_run_count()}); "
                f"its earlier attempt left the item {item.state}",
                operator=f"Prefect UI retry of flow run {name}",
            )
    finally:
        ledger.close()
    if left:
        log.info(
            "retrying the items the earlier attempt left failed",
            items=len(left),
            keys=[item.idempotency_key for item in left[:10]],
        )
    return len(left)


def _changed(params: BotParameters) -> dict[str, Any]:
    """The parameters that differ from their defaults (the "started" line)."""
    defaults = type(params)()
    return {
        name: value
        for name in type(params).model_fields
        if (value := getattr(params, name)) != getattr(defaults, name)
    }


def bot_flow(bot: Bot) -> Flow[..., State]:
    """The Prefect flow of a registry entry (see the module docstring)."""
    from prefect import flow, task

    model = bot.parameter_model()
    if model is None:
        raise ValueError(f"{bot.name}: has no parameter model, so no flow from the factory")

    @task(name=f"run-{bot.name}")
    def run_task(params: BotParameters, context: RunContext) -> RunOutcome | _Refused:
        # What a person must fix (an input, a setting, the portal's sign-in) is one sentence,
        # not a task traceback; anything else is a bug and keeps Prefect's traceback.
        try:
            return run_bot(bot, params, context)
        except _expected_errors() as exc:
            return _Refused(_problem(exc))

    def run(params: BotParameters) -> State:
        from config.settings import get_settings

        settings = get_settings()
        flow_run_id = current_flow_run_id()
        context = RunContext(
            run_id=registry.new_run_id(flow_run_id),
            flow_run_id=str(flow_run_id) if flow_run_id else None,
            data_root=settings.paths.root,
        )
        log = flow_logging(bot.key, run_id=context.run_id)
        started = datetime.now(UTC)
        log.info(f"{bot.title.lower()} started", **_changed(params))
        try:
            params = registry.resolve_inputs(params, settings.paths.root)
        except BotInputError as exc:
            return refuse(bot.title, str(exc))
        _retry_what_the_earlier_attempt_left(bot, flow_run_id, settings, log)
        slots = int(getattr(params, bot.browser_contexts, 0) or 0) if bot.browser_contexts else 0
        if bot.browser_contexts:
            with browser_session_slots(slots or settings.browser.contexts):
                outcome = run_task(params, context)
        else:
            outcome = run_task(params, context)
        if isinstance(outcome, _Refused):
            return refuse(bot.title, outcome.problem)
        _log_outcome(log, bot, outcome)
        summary = _summary(bot, outcome, started)
        _publish(bot, outcome, summary)
        stopped = str(getattr(outcome, "stopped", "") or "")
        if stopped:  # the breaker stopped it: the rest waits for the next run, the run is Failed
            detail = str(getattr(outcome, "stopped_message", "") or "")
            return refuse(
                summary.title, f"{stopped}: {detail} ({summary.message()})", event="run stopped early"
            )
        return finish(summary, publish=False)

    # Prefect builds the run form and validates from the signature: the entry's own model.
    default = model()
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "params", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=model
            )
        ]
    )
    run.__annotations__ = {"params": model, "return": "State"}
    run.__name__ = run.__qualname__ = bot.flow_function
    run.__doc__ = bot.description
    run.__module__ = __name__
    made: Flow[..., State] = flow(
        name=bot.name,
        description=bot.description,
        task_runner=capped_task_runner(2),
        on_failure=[alert_on_failure],
        on_crashed=[alert_on_crashed],
        on_completion=[alert_on_completion],  # one "recovered" after a failure alert
    )(run)
    return made


FLOWS: dict[str, Flow[..., State]] = {bot.name: bot_flow(bot) for bot in registry.bots(kind="bots")}
"""Every registered bot's flow by bot name."""

# The entrypoints of prefect.yaml: ``flows/bot_flows.py:<bot>_flow``.
globals().update({registry.get(name).flow_function: made for name, made in FLOWS.items()})
