"""Browser sessions and the per-item envelope of the runtime.

* :func:`private_folder`: a 0700 folder under the data root where Playwright's
  driver keeps its artifacts (``TMPDIR``), traces and downloads; folders of runs
  that no longer exist are removed at start, this run's at the end.
* :class:`Workers`: one browser context and signed-in :class:`PortalSession` per
  runner worker on the one Chromium, never more than ``portal.max_sessions`` at once.
* :meth:`Workers.envelope`: what happens around a bot's ``process`` for every
  item: log context and a fresh trace chunk, the typed :class:`~bots.runtime.item.Item`,
  the lease fence before every form post, starting again after a session expiry,
  evidence on every system error (and on business errors the bot asks for).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots.domain.errors import ApplicationError, BusinessError, LeaseLost, SessionExpired
from bots.runtime.breaker import LOGIN_REJECTED, CircuitBreaker
from bots.runtime.item import Item
from bots.runtime.runner import Runner, RunSummary
from config.logging import bind_context
from connectors.portal.browser import new_context_async
from connectors.portal.evidence import capture_evidence, restart_trace
from connectors.portal.pages.base import PortalCredentials, PortalSession

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

    from bots.runtime.bot import Bot
    from bots.runtime.ledger import WorkItem
    from config.settings import Settings

__all__ = ["Worker", "Workers", "private_folder"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@asynccontextmanager
async def private_folder(settings: Settings) -> AsyncIterator[Path]:
    """``<data root>/private/playwright/<pid>-<random>``, mode 0700, removed at the end.

    Folders left by processes that no longer run (a killed run) are removed first;
    runs of this process (Prefect tasks in threads) each have their own.
    """
    base = settings.paths.root / "private" / "playwright"
    base.mkdir(parents=True, exist_ok=True)
    for folder in (base.parent, base):
        folder.chmod(0o700)
    for old in base.iterdir():
        owner = old.name.split("-", 1)[0]
        if not (owner.isdigit() and _alive(int(owner))):
            shutil.rmtree(old, ignore_errors=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))  # 0700, a name of its own
    try:
        yield mine
    finally:
        shutil.rmtree(mine, ignore_errors=True)


@dataclass
class Worker:
    """What one runner worker holds: a browser context, its page and the signed-in session."""

    number: int
    context: BrowserContext
    page: Page
    session: PortalSession
    key_name: str

    async def begin_item(self, item: WorkItem) -> None:
        """Called by the runner before each attempt: the trace and the log lines are this item's."""
        bind_context(item_id=str(item.id), **{self.key_name: item.idempotency_key})
        await restart_trace(self.context)  # a no-op on an untraced context


class Workers:
    """The browser side of one run: worker contexts on one Chromium and the item envelope."""

    def __init__(
        self,
        bot: Bot[Any],
        browser: Browser | None,
        *,
        credentials: PortalCredentials,
        breaker: CircuitBreaker,
    ) -> None:
        self.bot = bot
        self.browser = browser
        self.credentials = credentials
        self.breaker = breaker
        self.settings = bot.run.settings
        self._sessions = asyncio.Semaphore(self.settings.portal.max_sessions)
        self._live: list[PortalSession] = []
        self._count = 0

    def setup(self) -> AbstractAsyncContextManager[Worker]:
        """The runner's ``worker_setup``: each worker gets its own context on the shared browser."""
        self._count += 1
        return self._worker(self._count)

    @asynccontextmanager
    async def _worker(self, number: int) -> AsyncIterator[Worker]:
        if self.browser is None:
            raise RuntimeError("a run without a browser has no browser workers")
        async with self._sessions:  # never more sessions against this portal than portal.max_sessions
            context = await new_context_async(self.browser, self.settings.browser)
            try:
                page = await context.new_page()
                session = PortalSession(page, self.bot.run.portal_url, self.credentials)
                self._live.append(session)
                yield Worker(number, context, page, session, self.bot.key_name)
            finally:
                if session in self._live:
                    self._live.remove(session)
                await context.close()

    async def work(self, contexts: int | None = None) -> RunSummary:
        """Runs the bot's claimable items through the envelope until none is left or the breaker opens.

        ``contexts`` workers at once (default ``settings.browser.contexts``, at most
        ``portal.max_sessions``); one without a browser.
        """
        bot, settings = self.bot, self.settings
        runner = Runner(
            bot.run.ledger, bot.name, settings=settings, run_id=bot.run.run_id, on_error=no_evidence,
            breaker=self.breaker,
        )  # fmt: skip
        if self.browser is None:
            summary = await runner.run_async(workers=1, process=self.envelope)
        else:
            workers = max(1, min(contexts or settings.browser.contexts, settings.portal.max_sessions))
            summary = await runner.run_async(workers=workers, process=self.envelope, worker_setup=self.setup)
        bot.log.info("runner finished", **{k: v for k, v in summary.as_dict().items() if k != "exceptions"})
        return summary

    def evidence_dir(self, item: WorkItem) -> Path:
        """``<evidence>/<run id>/<item id>/``."""
        folder = self.settings.paths.resolve("evidence") / self.bot.run.run_id / str(item.id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def envelope(self, work: WorkItem, worker: Worker | None) -> Mapping[str, Any] | None:
        """The runner's ``process``: one attempt of the bot on one item (see the module text).

        ``worker`` is None in a run without a browser: only the bot's own checks run.
        """
        bot = self.bot
        if worker is None:
            bind_context(item_id=str(work.id), **{bot.key_name: work.idempotency_key})
            bot.check(self._item(work))
            raise ApplicationError(
                "NO_BROWSER", f"{work.idempotency_key}: passed its checks in a run without a browser"
            )
        if self.breaker.open:
            raise self.breaker.stopped(refund=True)
        item = self._item(work)
        worker.session.before_submit = item.fence
        try:
            for expiry in range(bot.session_retries + 1):
                try:
                    return await bot.process(item, worker.session)
                except SessionExpired as exc:
                    if expiry == bot.session_retries:
                        raise
                    # Signed in again already, and nothing was posted: start the item over.
                    bot.log.info("session expired mid-item, starting the item again", reason=exc.message)
            raise AssertionError("unreachable")  # pragma: no cover
        except BusinessError as exc:
            if bot.wants_evidence(exc):
                await self._keep(work, exc, worker, folder="business-exception")
            raise
        except LeaseLost:
            raise
        except Exception as exc:
            if getattr(exc, "code", None) == LOGIN_REJECTED:
                for session in self._live:  # no other worker tries the refused password again
                    session.rejected = session.rejected or exc  # type: ignore[assignment]
            await self._keep(work, exc, worker, folder=f"attempt-{work.attempts}")
            raise
        finally:
            worker.session.before_submit = None

    def _item(self, work: WorkItem) -> Item[Any]:
        bot = self.bot
        return Item(
            work.bind(bot.run.ledger),
            work.payload_as(bot.payload),
            ledger=bot.run.ledger,
            bot=bot.name,
            run_id=bot.run.run_id,
            key_name=bot.key_name,
        )

    async def _keep(self, work: WorkItem, exc: BaseException, worker: Worker, *, folder: str) -> None:
        """Keeps this attempt's evidence in the ledger (best effort: the outcome is not)."""
        try:
            evidence = list(await capture_evidence(worker.page, self.evidence_dir(work) / folder))
            if evidence:
                await asyncio.to_thread(self.bot.run.ledger.add_evidence, work, evidence)
        except Exception as hook_exc:
            self.bot.log.warning("evidence capture failed", item_id=work.id, error=str(hook_exc))
            evidence = []
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.bot.log.warning(
            "item error", item_id=work.id, reason=reason, evidence=[e.path for e in evidence]
        )


def no_evidence(*_args: Any) -> list[Any]:
    """The runner's ``on_error`` for browser bots: the envelope already kept the evidence."""
    return []
