"""The one evidence writer: what a browser bot keeps when an item fails.

On a business or system exception in a browser step the runner saves, under
``<evidence folder>/<run id>/<item id>/``:

* ``page.png``: a full-page screenshot with every password input masked;
* ``page.html``: the page's HTML, with known secret values redacted;
* ``trace.zip``: the Playwright trace chunk of this item (screenshots and DOM
  snapshots, open with ``playwright show-trace``).

Each file's SHA-256 goes to the ledger (``item.evidence``) and the audit log.

Secrets: a trace's DOM snapshots record the *value* of every input, its
action log records what was typed, and its network log records request bodies
(the sign-in form's POST holds the password) into files under the trace folder
while the trace runs. So a password is typed inside
``async with secret_entry(context):``, which stops tracing altogether before
(the chunk so far is dropped, the network recorder stops) and starts a new
trace after, once no password input holds a value: nothing of the sign-in is
ever recorded, not even in files a killed run leaves behind. As a last guard,
a trace that still contains a registered secret (see
``config.logging.register_secret``) is deleted rather than kept.

Example:
    >>> async with secret_entry(page.context):  # doctest: +SKIP
    ...     await page.get_by_label("Password").fill(password)
    ...     await page.get_by_role("button", name="Sign in").click()
    ...     await page.wait_for_url("**/home")
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bots.domain.evidence import Evidence
from config.logging import get_logger, redact, registered_secrets
from connectors.portal.browser import TRACING_MARK

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

__all__ = ["capture_evidence", "clear_password_inputs", "restart_trace", "secret_entry", "sha256_file"]

_CLEAR_PASSWORDS = (
    "() => { for (const e of document.querySelectorAll('input[type=password]')) e.value = ''; }"
)

log = get_logger("evidence")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


_SECRET_FIELD_HAS_VALUE = (
    "() => [...document.querySelectorAll('input[type=password]')].some(e => e.value !== '')"  # noqa: S105
)
_PAUSED = "_procbots_trace_paused"


def _context_of(target: BrowserContext | Page) -> BrowserContext:
    from playwright.async_api import Page as AsyncPage

    return target.context if isinstance(target, AsyncPage) else target


async def clear_password_inputs(context: BrowserContext) -> None:
    """Empties every password input of every page and frame of the context."""
    for page in context.pages:
        for frame in page.frames:
            try:
                await frame.evaluate(_CLEAR_PASSWORDS)
            except Exception as exc:  # a frame navigating away has no password left to clear
                log.debug("could not clear password inputs", frame=frame.url, error=str(exc))


async def _password_filled(context: BrowserContext) -> bool:
    for page in context.pages:
        for frame in page.frames:
            try:
                if await frame.evaluate(_SECRET_FIELD_HAS_VALUE):
                    return True
            except Exception as exc:  # navigating: its next document starts empty
                log.debug("could not read password inputs", frame=frame.url, error=str(exc))
    return False


async def _resume(context: BrowserContext) -> None:
    """Starts a new trace chunk once no password input holds a value any more."""
    if not getattr(context, _PAUSED, False):
        return
    if await _password_filled(context):
        # The secret is still in a field (the submit comes after the block): a DOM
        # snapshot would record it, so wait for the next page load.
        for page in context.pages:
            page.once("domcontentloaded", lambda _page: _resume(context))
        return
    setattr(context, _PAUSED, False)
    await _start_tracing(context)


async def _start_tracing(context: BrowserContext) -> None:
    await context.tracing.start(screenshots=True, snapshots=True)
    await context.tracing.start_chunk()


@asynccontextmanager
async def secret_entry(target: BrowserContext | Page) -> AsyncIterator[None]:
    """Stops tracing while a secret is typed and sent.

    The current chunk is discarded and the network recorder stops, so nothing
    recorded since the last chunk start is kept and the sign-in request is never
    written anywhere. Tracing starts afresh after the block, or, when a password input
    still holds a value (the form is submitted after the block), at the next
    page load; ``capture_evidence`` and ``restart_trace`` clear such inputs first.
    Accepts a page or its context.
    """
    context = _context_of(target)
    if not getattr(context, TRACING_MARK, False):
        yield  # tracing is off for this context: nothing to pause
        return
    if not getattr(context, _PAUSED, False):
        try:
            await context.tracing.stop()
        except Exception:  # tracing is off for this context
            yield
            return
        setattr(context, _PAUSED, True)
    try:
        yield
    finally:
        await _resume(context)


async def restart_trace(context: BrowserContext) -> None:
    """Starts a fresh trace chunk (at the start of an item), dropping the previous one."""
    if not getattr(context, TRACING_MARK, False):
        return
    if getattr(context, _PAUSED, False):
        await clear_password_inputs(context)
        await _resume(context)
        return
    try:
        await context.tracing.stop_chunk()
    except Exception:
        return  # tracing is off
    await context.tracing.start_chunk()


def _trace_holds_secret(path: Path) -> bool:
    secrets = [s.encode("utf-8") for s in registered_secrets()]
    if not secrets:
        return False
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            if any(secret in data for secret in secrets):
                return True
    return False


async def capture_evidence(page: Page, item_dir: Path) -> list[Evidence]:
    """Saves a masked full-page screenshot, the HTML and the trace chunk into ``item_dir``.

    Returns:
        one :class:`~bots.runtime.ledger.Evidence` (path, SHA-256) per file written.
    """
    item_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    screenshot = item_dir / "page.png"
    try:
        await page.screenshot(path=screenshot, full_page=True, mask=[page.locator("input[type=password]")])
        written.append(screenshot)
    except Exception as exc:  # a crashed page still has a trace worth keeping
        log.warning("screenshot failed", path=str(screenshot), error=str(exc))
    html = item_dir / "page.html"
    try:
        html.write_text(redact(await page.content()), encoding="utf-8")
        written.append(html)
    except Exception as exc:
        log.warning("page html not saved", path=str(html), error=str(exc))
    trace = item_dir / "trace.zip"
    context = page.context
    if not getattr(context, TRACING_MARK, False):
        return [Evidence(path=str(path), sha256=sha256_file(path)) for path in written]
    if getattr(context, _PAUSED, False):
        # Failed while a secret was still in a field: no chunk of this attempt exists.
        await clear_password_inputs(context)
        await _resume(context)
        return [Evidence(path=str(path), sha256=sha256_file(path)) for path in written]
    try:
        await context.tracing.stop_chunk(path=trace)
    except Exception as exc:
        log.debug("no trace chunk to save", error=str(exc))
    else:
        await context.tracing.start_chunk()
        if trace.exists():
            if _trace_holds_secret(trace):
                trace.unlink()
                log.warning(
                    "trace dropped: it held a secret (type secrets inside secret_entry)", path=str(trace)
                )
            else:
                written.append(trace)
    return [Evidence(path=str(path), sha256=sha256_file(path)) for path in written]
