"""Browser worker sessions: one traced context and page per runner worker.

:func:`browser_worker` is the ``worker_setup`` of :meth:`bots.runtime.runner.Runner.run_async`
for browser bots: it opens a context (tracing on, timeouts from settings) and a
page on the shared Chromium, runs the bot's login once, and yields a
:class:`BrowserWorker` whose ``page`` the runner uses for evidence.

Example:
    >>> async def login(page):  # doctest: +SKIP
    ...     await page.goto(portal_url)
    ...     async with secret_entry(page.context):
    ...         await page.get_by_label("Password").fill(password)
    ...         await page.get_by_role("button", name="Sign in").click()
    >>> await runner.run_async(workers=4, process=key_order,  # doctest: +SKIP
    ...                        worker_setup=lambda: browser_worker(browser, login=login))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.portal.browser import new_context_async
from connectors.portal.evidence import restart_trace

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

    from config.settings import BrowserSettings

__all__ = ["BrowserWorker", "browser_worker"]


@dataclass
class BrowserWorker:
    """What one runner worker drives: its own context and page."""

    context: BrowserContext
    page: Page

    async def begin_item(self, item: Any) -> None:
        """Called by the runner before each attempt: the trace then holds this attempt only."""
        await restart_trace(self.context)


@asynccontextmanager
async def browser_worker(
    browser: Browser,
    *,
    login: Callable[[Page], Awaitable[None]] | None = None,
    settings: BrowserSettings | None = None,
) -> AsyncIterator[BrowserWorker]:
    """Opens a traced context and page, logs in once, and closes them at the end."""
    context = await new_context_async(browser, settings)
    try:
        page = await context.new_page()
        if login is not None:
            await login(page)
        yield BrowserWorker(context, page)
    finally:
        await context.close()
