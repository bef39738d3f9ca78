"""The one browser launcher of procbots: the only module that starts Playwright and Chromium.

Playwright's own Chromium when it is installed (``playwright install chromium``),
else the system Chromium (Debian's ``chromium``), else the executable named in
settings. Bots never call this module: the runtime (:mod:`bots.runtime.session`)
opens the browser with :func:`open_chromium` and closes it, whatever happens.

Playwright's driver keeps artifacts (trace resources, downloads, the browser
profile) under ``$TMPDIR``; :func:`open_chromium` starts the driver with
``TMPDIR`` pointing at a private folder the runtime owns, so nothing it writes
lands in a shared ``/tmp``.

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
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser as AsyncBrowser
    from playwright.async_api import BrowserContext as AsyncBrowserContext
    from playwright.async_api import Playwright as AsyncPlaywright
    from playwright.sync_api import Browser, Playwright

    from config.settings import BrowserSettings

__all__ = [
    "CHROMIUM_ARGS",
    "find_chromium",
    "launch_chromium",
    "launch_chromium_async",
    "new_context_async",
    "open_chromium",
]

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

_DRIVER_START = threading.Lock()

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


@asynccontextmanager
async def open_chromium(
    settings: BrowserSettings | None = None, *, private_dir: Path | None = None
) -> AsyncIterator[AsyncBrowser]:
    """Starts Playwright and one Chromium; stops both on the way out, whatever happened.

    Args:
        settings: browser settings (default: the process settings).
        private_dir: a folder only this user may read (0700). The driver's
            ``TMPDIR``, the trace folder and downloads go there.
    """
    from playwright.async_api import async_playwright

    manager = async_playwright()
    with _DRIVER_START:  # runs in other threads of this process must not see or change our TMPDIR
        saved = os.environ.get("TMPDIR")
        if private_dir is not None:
            # The driver reads TMPDIR once, when it starts: its artifacts folder is under it.
            os.environ["TMPDIR"] = str(private_dir)
        try:
            pw = await manager.__aenter__()
        finally:
            if private_dir is not None:
                if saved is None:
                    os.environ.pop("TMPDIR", None)
                else:
                    os.environ["TMPDIR"] = saved
    # Chromium's own TMPDIR holds only its singleton socket, whose path must stay under
    # 108 bytes, so it gets a short private folder of its own (the profile is in private_dir).
    # (A long TMPDIR would not fit: then the system's /tmp.) It never holds anything but the socket.
    short = tempfile.gettempdir() if len(tempfile.gettempdir()) <= 40 else "/tmp"  # noqa: S108
    sockets = tempfile.mkdtemp(prefix="procbots-chromium-", dir=short) if private_dir is not None else None
    try:
        settings, executable = _executable(pw, settings)
        browser = await pw.chromium.launch(
            headless=settings.headless,
            executable_path=str(executable) if executable else None,
            args=CHROMIUM_ARGS,
            traces_dir=private_dir / "traces" if private_dir is not None else None,
            downloads_path=private_dir / "downloads" if private_dir is not None else None,
            env={**os.environ, "TMPDIR": sockets} if sockets is not None else None,
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await manager.__aexit__(None, None, None)
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)


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
