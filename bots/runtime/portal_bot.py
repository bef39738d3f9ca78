"""What every browser bot shares: one worker per browser context, the per-portal cap
on browser sessions, and evidence kept per item.

A browser bot (purchase orders, invoice inbox) subclasses :class:`PortalBot` and
gives the runner ``process`` and :meth:`PortalBot.worker_setup`; each runner worker
then holds a :class:`PortalWorker`: its own context and page on the one shared
Chromium, signed in through a :class:`~connectors.portal.pages.base.PortalSession`.

Example:
    >>> class MyBot(PortalBot):
    ...     item_key_name = "contract_id"
    ...     async def process(self, item, worker): ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bots.runtime.ledger import Evidence, Ledger, WorkItem
from config.logging import bind_context
from connectors.portal.browser import new_context_async
from connectors.portal.evidence import capture_evidence, restart_trace
from connectors.portal.pages.base import LoginRejected, PortalCredentials, PortalSession

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

    from config.settings import Settings

__all__ = ["PortalBot", "PortalWorker"]


@dataclass
class PortalWorker:
    """What one runner worker holds: a browser context, its page and the signed-in session."""

    number: int
    context: BrowserContext
    page: Page
    session: PortalSession
    item_key_name: str = "idempotency_key"

    async def begin_item(self, item: WorkItem) -> None:
        """Called by the runner before each attempt: the trace and the log lines are this item's."""
        bind_context(item_id=str(item.id), **{self.item_key_name: item.idempotency_key})
        await restart_trace(self.context)  # a no-op on an untraced context


class PortalBot:
    """Base of the browser bots: worker contexts, session cap and evidence.

    Subclasses set ``ledger``, ``portal_url``, ``credentials``, ``settings``,
    ``run_id`` and ``log`` in ``__init__`` and call :meth:`_init_portal`.
    """

    #: Name under which an item's idempotency key is bound to the log context.
    item_key_name: ClassVar[str] = "idempotency_key"

    ledger: Ledger
    portal_url: str
    credentials: PortalCredentials
    settings: Settings
    run_id: str
    log: Any

    def _init_portal(self) -> None:
        self.rejected: LoginRejected | None = None
        self._sessions: asyncio.Semaphore | None = None

    def evidence_dir(self, item: WorkItem) -> Path:
        """``<evidence>/<run id>/<item id>/`` as the runner names it."""
        folder = self.settings.paths.resolve("evidence") / self.run_id / str(item.id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @asynccontextmanager
    async def worker(self, browser: Browser, number: int = 0) -> AsyncIterator[PortalWorker]:
        """A browser context on the shared browser with a portal session (signs in on first use)."""
        if self._sessions is None:
            # Never more browser sessions against this portal than portal.max_sessions.
            self._sessions = asyncio.Semaphore(self.settings.portal.max_sessions)
        async with self._sessions:
            # Timeouts from settings, and a trace (when browser.trace) kept as evidence on failure.
            context = await new_context_async(browser, self.settings.browser)
            try:
                page = await context.new_page()
                session = PortalSession(page, self.portal_url, self.credentials)
                session.rejected = self.rejected
                yield PortalWorker(number, context, page, session, self.item_key_name)
            finally:
                await context.close()

    def worker_setup(self, browser: Browser) -> Callable[[], AbstractAsyncContextManager[PortalWorker]]:
        """The runner's ``worker_setup``: each worker gets its own context on the shared browser."""
        counter = iter(range(1, 1_000_000))

        def setup() -> AbstractAsyncContextManager[PortalWorker]:
            return self.worker(browser, next(counter))

        return setup

    async def _keep_evidence(
        self, item: WorkItem, exc: BaseException, worker: PortalWorker, *, folder: str
    ) -> None:
        """Keeps this attempt's evidence (system errors: one folder per attempt) in the ledger."""
        evidence = await self._capture(item, worker, folder=folder)
        if evidence:
            await asyncio.to_thread(self.ledger.add_evidence, item, evidence)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.log.warning(
            "system exception", item_id=item.id, reason=reason, evidence=[e.path for e in evidence]
        )

    async def _capture(self, item: WorkItem, worker: PortalWorker | None, *, folder: str) -> list[Evidence]:
        if worker is None:
            return []
        target = self.evidence_dir(item) / folder
        try:
            return list(await capture_evidence(worker.page, target))
        except Exception as exc:  # evidence is best effort; the item's outcome is not
            self.log.warning("evidence capture failed", item_id=item.id, error=str(exc))
            return []
