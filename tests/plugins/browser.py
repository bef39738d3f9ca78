"""Real Chromium for browser tests: ``browser`` (one per test module) and ``page`` (a fresh context),
and :func:`assert_accessible` for a page's labels, table headers and button names.

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


# Every visible form control must have a label; every table header cells.
UNLABELLED_JS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => el.labels.length === 0).map(el => el.outerHTML)"""
TABLES_WITHOUT_TH_JS = (
    "() => [...document.querySelectorAll('table')].filter(t => !t.querySelector('th')).length"
)
UNNAMED_BUTTONS_JS = (
    "() => [...document.querySelectorAll('button')].filter(b => !b.textContent.trim()).length"
)


def assert_accessible(page: Any) -> None:
    """Every visible form control has a label, every table header cells, every button a name."""
    assert page.evaluate(UNLABELLED_JS) == []
    assert page.evaluate(TABLES_WITHOUT_TH_JS) == 0
    assert page.evaluate(UNNAMED_BUTTONS_JS) == 0
