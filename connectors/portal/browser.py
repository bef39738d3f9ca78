"""The one browser launcher of procbots.

Playwright's own Chromium when it is installed (``playwright install chromium``),
else the system Chromium (Debian's ``chromium``), else the executable named in
settings. Everything that opens a browser goes through :func:`launch_chromium`.

Example:
    >>> from playwright.sync_api import sync_playwright
    >>> with sync_playwright() as pw:
    ...     browser = launch_chromium(pw)
    ...     page = browser.new_page()
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser as AsyncBrowser
    from playwright.async_api import BrowserContext as AsyncBrowserContext
    from playwright.async_api import Playwright as AsyncPlaywright
    from playwright.sync_api import Browser, Playwright

    from config.settings import BrowserSettings

__all__ = ["CHROMIUM_ARGS", "find_chromium", "launch_chromium", "launch_chromium_async", "new_context_async"]

# Flags that keep a headless Chromium quiet on a closed network and in containers.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

TRACING_MARK = "_procbots_tracing"

SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _playwright_chromium(pw: Playwright | AsyncPlaywright | None = None) -> Path | None:
    if pw is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as own:
            path = Path(own.chromium.executable_path)
    else:
        path = Path(pw.chromium.executable_path)
    return path if path.exists() else None


def find_chromium(
    configured: Path | None = None, pw: Playwright | AsyncPlaywright | None = None
) -> Path | None:
    """The Chromium to launch: the configured one, Playwright's, or the system's.

    Returns ``None`` only for Playwright's own browser being present (launch
    without ``executable_path``); raises ``FileNotFoundError`` when none exists.
    """
    if configured is not None:
        if not Path(configured).exists():
            raise FileNotFoundError(f"browser.executable {configured} does not exist")
        return Path(configured)
    env = os.environ.get("PROCBOTS_BROWSER__EXECUTABLE")
    if env:
        return Path(env)
    if _playwright_chromium(pw) is not None:
        return None
    for name in SYSTEM_CHROMIUMS:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise FileNotFoundError(
        "No Chromium found. Run 'uv run playwright install chromium' (needs internet), "
        "or 'apt-get install -y chromium' as root, or set PROCBOTS_BROWSER__EXECUTABLE."
    )


_RESOLVED: dict[str, Path | None] = {}


def _executable(
    pw: Playwright | AsyncPlaywright, settings: BrowserSettings | None
) -> tuple[BrowserSettings, Path | None]:
    if settings is None:
        from config.settings import get_settings

        settings = get_settings().browser
    key = str(settings.executable)
    if key not in _RESOLVED:
        _RESOLVED[key] = find_chromium(settings.executable, pw)
    return settings, _RESOLVED[key]


def launch_chromium(pw: Playwright, settings: BrowserSettings | None = None) -> Browser:
    """Launch Chromium for this Playwright instance, configured from settings."""
    settings, executable = _executable(pw, settings)
    return pw.chromium.launch(
        headless=settings.headless,
        executable_path=str(executable) if executable else None,
        args=CHROMIUM_ARGS,
    )


async def launch_chromium_async(pw: AsyncPlaywright, settings: BrowserSettings | None = None) -> AsyncBrowser:
    """The async twin of :func:`launch_chromium` (same executable discovery and flags).

    Browser bots run one Chromium with one context per worker from one asyncio loop.

    Example:
        >>> async with async_playwright() as pw:  # doctest: +SKIP
        ...     browser = await launch_chromium_async(pw)
    """
    settings, executable = _executable(pw, settings)
    return await pw.chromium.launch(
        headless=settings.headless,
        executable_path=str(executable) if executable else None,
        args=CHROMIUM_ARGS,
    )


async def new_context_async(
    browser: AsyncBrowser, settings: BrowserSettings | None = None
) -> AsyncBrowserContext:
    """A browser context with the configured timeouts and, when ``browser.trace``, tracing on.

    Tracing records screenshots and DOM snapshots in chunks: the evidence writer
    saves the current chunk on a failure, and ``secret_entry`` drops the chunk
    around a password, so no trace ever holds it.
    """
    if settings is None:
        from config.settings import get_settings

        settings = get_settings().browser
    context = await browser.new_context()
    context.set_default_timeout(settings.timeout_ms)
    context.set_default_navigation_timeout(settings.navigation_timeout_ms)
    if settings.trace:
        await context.tracing.start(screenshots=True, snapshots=True)
        await context.tracing.start_chunk()
        # Playwright cannot tell whether a context traces (stop_chunk succeeds either
        # way), so the evidence writer reads this mark.
        setattr(context, TRACING_MARK, True)
    return context


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Find (and optionally start) the Chromium procbots will use")
    parser.add_argument("--check", action="store_true", help="launch it headless and open a blank page")
    args = parser.parse_args(argv)
    try:
        path = find_chromium()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(path or "playwright's chromium")
    if args.check:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            browser.new_page().goto("about:blank")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
