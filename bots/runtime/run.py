"""One run of a bot: items into the ledger, the browser and workers, the results read back.

:func:`run_bot` is the whole life of a run, the same for every browser bot:

1. file the payloads in the ledger (an item already there keeps its state);
2. if the ledger holds anything claimable for the bot (pending items, or items
   whose lease ran out because a run was killed), start Playwright and Chromium
   (:func:`connectors.portal.browser.open_chromium`, with Playwright's files in a
   private folder) and run the workers through the envelope
   (:class:`~bots.runtime.session.Workers`) until nothing is claimable or the
   circuit breaker stops the run;
3. close everything, whatever happened;
4. read every item back from the ledger and build the result rows.

Example:
    >>> run = run_sync(run_bot(PurchaseOrderBot, requisitions, source=path))  # doctest: +SKIP
    >>> run.counts, run.stopped  # doctest: +SKIP
    ({'Raised': 45, 'Business exception': 5}, None)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from bots.runtime.bot import Bot, RunContext
from bots.runtime.breaker import CircuitBreaker
from bots.runtime.ids import new_run_id
from bots.runtime.ledger import Ledger, WorkItem
from bots.runtime.results import BotRun, ResultRow
from bots.runtime.runner import RunSummary
from bots.runtime.session import Workers, private_folder
from config.logging import get_logger
from connectors.audit import audit_event
from connectors.portal.browser import open_chromium
from connectors.portal.pages.base import PortalCredentials

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["browser_crew", "run_bot", "work"]

P = TypeVar("P", bound=BaseModel)


async def run_bot(
    bot_type: type[Bot[P]],
    payloads: Sequence[P],
    *,
    settings: Settings | None = None,
    portal_url: str | None = None,
    credentials: PortalCredentials | None = None,
    ledger: Ledger | None = None,
    run_id: str | None = None,
    contexts: int | None = None,
    dry_run: bool = False,
    source: Path | None = None,
    options: Mapping[str, Any] | None = None,
    audit: Mapping[str, Any] | None = None,
    finish: Callable[[BotRun[Any], Mapping[str, WorkItem]], None] | None = None,
    run_type: type[BotRun[Any]] = BotRun,
) -> BotRun[Any]:
    """Runs ``bot_type`` over ``payloads``; returns the run with a row per payload, in order.

    Args:
        bot_type: the bot declaration.
        payloads: one payload per item (the bot's ``key`` names each).
        settings: procbots settings (default: the process settings).
        portal_url: the portal (default ``settings.portal.url``).
        credentials: the portal user (default from settings).
        ledger: the work-item ledger (default from settings).
        run_id: names evidence folders, outputs and audit events (default: new).
        contexts: browser contexts at once (default ``settings.browser.contexts``).
        dry_run: the items live in a throwaway ledger; the bot must not act.
        source: the input file (named, with its SHA-256, in the audit events).
        options: keyword options for the bot's constructor.
        audit: more fields for the run-started audit event.
        finish: called with the run and its items by key before the run-finished
            audit event (write the results workbook, other outputs).
        run_type: the bot's subclass of :class:`BotRun`, if it has one.

    Raises:
        config.settings.SettingsError: no portal password is configured.
    """
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    run_id = run_id or new_run_id()
    url = (portal_url or settings.portal.url).rstrip("/")
    credentials = credentials or PortalCredentials.from_settings(settings)
    log = get_logger(bot_type.name).bind(run_id=run_id)
    started = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source is not None else None
    started_fields: dict[str, Any] = {"source": str(source), "sha256": digest} if source is not None else {}
    started_fields.update(items=len(payloads), portal=url, dry_run=dry_run, **(audit or {}))
    audit_event(f"{bot_type.name}_run_started", bot=bot_type.name, run_id=run_id, **started_fields)
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if dry_run:
        # A dry run leaves the real ledger alone: its items live in a throwaway one.
        scratch = tempfile.TemporaryDirectory(prefix="procbots-dry-run-")
        ledger = Ledger(f"sqlite:///{scratch.name}/ledger.db", audit=False)
    elif ledger is None:
        ledger = Ledger.from_settings(settings)
    try:
        bot = bot_type(RunContext(settings, ledger, run_id, url, dry_run), **(options or {}))
        keyed = [(bot.key(p), p) for p in payloads]
        keys = [key for key, _ in keyed]
        before = ledger.find_many(bot.name, keys)
        earlier = {key for key, item in before.items() if str(item.state) == "done"}
        ledger.add_many(bot.name, keyed)
        breaker = CircuitBreaker()
        summary = await work(bot, credentials=credentials, contexts=contexts, breaker=breaker)
        retries = summary.retries if summary is not None else 0
        items = ledger.find_many(bot.name, keys)
        rows: list[ResultRow] = [bot.result_row(p, items.get(key), key in earlier) for key, p in keyed]
        rows += _retried_rows(bot, ledger, started, set(keys))
        run = run_type(
            run_id=run_id,
            results=rows,
            bot=bot.name,
            title=bot.title,
            source=source,
            dry_run=dry_run,
            retries=retries,
            stopped=breaker.reason,
            stopped_message=breaker.message,
            started_at=started,
        )
        if breaker.open:
            log.error("run stopped early", reason=breaker.reason, message=breaker.message)
        run.finished_at = dt.datetime.now(dt.UTC)
        if finish is not None:
            finish(run, items)
        finished: dict[str, Any] = {"counts": run.counts, "stopped": run.stopped}
        if run.workbook is not None:
            finished.update(
                results=str(run.workbook),
                results_sha256=hashlib.sha256(run.workbook.read_bytes()).hexdigest(),
            )
        audit_event(f"{bot.name}_run_finished", bot=bot.name, run_id=run_id, **finished)
        return run
    finally:
        if scratch is not None:
            ledger.close()
            scratch.cleanup()


def _retried_rows(bot: Bot[Any], ledger: Ledger, started: dt.datetime, in_input: set[str]) -> list[ResultRow]:
    """Rows for the items an operator retried that this run processed although not in its input.

    A retried item is claimed first by the next run of its bot, whatever file that run
    was started for; the run's results list it, saying so.
    """
    rows = []
    for item in ledger.retried_since(bot.name, started):
        if item.idempotency_key in in_input:
            continue
        row = bot.result_row(item.payload_as(bot.payload), item, False)
        note = "retried by an operator; not in this run's input"
        rows.append(row.model_copy(update={"reason": f"{row.reason} ({note})" if row.reason else note}))
    return rows


@asynccontextmanager
async def browser_crew(
    bot: Bot[Any], *, credentials: PortalCredentials, breaker: CircuitBreaker | None = None
) -> AsyncIterator[Workers]:
    """Playwright and one Chromium (files in the private folder) for the bot's workers; closed after.

    For a bot that needs the portal before it has items (the invoice inbox reads the
    portal to plan them): ``async with crew.setup() as collector`` gives one signed-in
    worker, then :meth:`Workers.work` runs the claimable items.
    """
    settings = bot.run.settings
    async with (
        private_folder(settings) as private,
        open_chromium(settings.browser, private_dir=private) as chromium,
    ):
        yield Workers(bot, chromium, credentials=credentials, breaker=breaker or CircuitBreaker())


async def work(
    bot: Bot[Any],
    *,
    credentials: PortalCredentials,
    contexts: int | None = None,
    breaker: CircuitBreaker | None = None,
    browser: bool = True,
) -> RunSummary | None:
    """Works the bot's claimable items until none is left or the breaker stops the run.

    The part of :func:`run_bot` between filing the items and reading them back, for bots
    that file their items themselves (a drop folder). Claimable includes items whose
    lease ran out (a killed run): they are finished now, after their last checkpoint.

    Args:
        bot: the bot, made with its run context.
        credentials: the portal user.
        contexts: browser contexts at once (default ``settings.browser.contexts``).
        breaker: the run's circuit breaker (default: a new one).
        browser: False when every claimable item fails the bot's own checks (bad data):
            only :meth:`~bots.runtime.bot.Bot.check` runs, no Chromium is started.

    Returns:
        the runner's summary, or None when nothing was claimable.
    """
    if not bot.run.ledger.claimable(bot.name):
        return None
    breaker = breaker or CircuitBreaker()
    if not browser:
        return await Workers(bot, None, credentials=credentials, breaker=breaker).work(contexts)
    async with browser_crew(bot, credentials=credentials, breaker=breaker) as crew:
        return await crew.work(contexts)
