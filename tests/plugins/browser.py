"""Real Chromium for browser tests: ``browser`` (one per test module) and ``page`` (a fresh context).

The page's context accepts downloads and waits up to 15 s for an element or action.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.portal.browser import launch_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium through Playwright's sync API, closed after the module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a new browser context (its own cookies), closed after the test."""
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
