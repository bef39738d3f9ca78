"""Evidence on failure (real Chromium): screenshot, HTML, trace, hashes; and no password anywhere.

A run signs in with a known password, fails two items (one business, one system
exception after retries) and keeps evidence. Then every evidence file (traces
unzipped), every log line, the ledger database and the audit log are searched
for the password: zero occurrences. A control shows the search would find it.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bots.domain.errors import BusinessError, PortalTimeout
from bots.runtime.ledger import ItemState, Ledger, WorkItem
from bots.runtime.runner import Runner
from config.settings import Settings

PASSWORD = "Kn0wn-Pa55word-7731"

LOGIN_FORM = """<!doctype html><html><body>
<h1>Sign in to the e-procurement portal</h1>
<form onsubmit="event.preventDefault(); document.getElementById('msg').textContent = 'Invalid credentials';">
  <label>Username <input name="username"></label>
  <label>Password <input name="password" type="password"></label>
  <button>Sign in</button>
</form>
<p id="msg" role="alert"></p>
<label>Requisition <input name="requisition"></label>
</body></html>"""


def _contains(data: bytes, needle: bytes) -> bool:
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(_contains(archive.read(name), needle) for name in archive.namelist())
    return needle in data


async def _sign_in(page: object, *, submit_inside: bool) -> str:
    from playwright.async_api import Page

    from connectors.portal.evidence import secret_entry

    assert isinstance(page, Page)
    await page.set_content(LOGIN_FORM)
    await page.get_by_label("Username").fill("buyer1")
    async with secret_entry(page.context):
        await page.get_by_label("Password").fill(PASSWORD)
        if submit_inside:
            await page.get_by_role("button", name="Sign in").click()
            await page.set_content(LOGIN_FORM)  # the portal answers with a fresh page
            return "Signed in"
    if not submit_inside:  # like the portal session: submit after the block
        await page.get_by_role("button", name="Sign in").click()
    return await page.get_by_role("alert").inner_text()


@pytest.mark.browser
@pytest.mark.slow
def test_failed_run_keeps_evidence_without_the_password(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import async_playwright

    from config.logging import register_secret
    from connectors.audit import AuditLog, verify_audit
    from connectors.portal.browser import launch_chromium_async, new_context_async
    from connectors.portal.evidence import restart_trace

    register_secret(PASSWORD)  # as the settings' portal password is
    settings = Settings(
        paths={"root": tmp_path / "var"},
        retry={"max_attempts": 2, "initial_s": 0, "max_s": 0, "jitter_s": 0},
    )
    audit_path = tmp_path / "var" / "audit" / "audit.jsonl"
    ledger = Ledger(f"sqlite:///{tmp_path / 'var' / 'ledger.db'}", audit=AuditLog(audit_path).append)
    ledger.add_many("purchase_orders", [("REQ-0001", {"supplier_id": "SUP-9"}), ("REQ-0002", {})])
    runner = Runner(ledger, "purchase_orders", settings=settings, run_id="run-1")

    async def key_order(item: WorkItem, worker: object) -> None:
        page = worker.page  # type: ignore[attr-defined]
        if item.idempotency_key == "REQ-0001":
            message = await _sign_in(page, submit_inside=False)
            raise BusinessError("LOGIN_REFUSED", f"The portal refused buyer1: {message}")
        message = await _sign_in(page, submit_inside=True)
        await page.get_by_label("Requisition").fill(item.idempotency_key)
        raise PortalTimeout("PORTAL_TIMEOUT", f"Requisition form did not save ({message})")

    @dataclass
    class BrowserWorker:  # what the runner hands process: a traced context and its page
        context: Any
        page: Any

        async def begin_item(self, item: WorkItem) -> None:
            await restart_trace(self.context)  # the trace then holds this attempt only

    @asynccontextmanager
    async def browser_worker(browser: Any) -> AsyncIterator[BrowserWorker]:
        context = await new_context_async(browser, settings.browser)
        try:
            page = await context.new_page()
            await _sign_in(page, submit_inside=False)
            yield BrowserWorker(context, page)
        finally:
            await context.close()

    async def main() -> None:
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw, settings.browser)
            try:
                summary = await runner.run_async(
                    workers=1, process=key_order, worker_setup=lambda: browser_worker(browser)
                )
            finally:
                await browser.close()
            assert (summary.business_exception, summary.failed, summary.retries) == (1, 1, 1)

    asyncio.run(main())
    logs = capfd.readouterr()

    refused = ledger.find("purchase_orders", "REQ-0001")
    timed_out = ledger.find("purchase_orders", "REQ-0002")
    assert refused is not None
    assert timed_out is not None
    assert refused.state is ItemState.BUSINESS_EXCEPTION
    assert timed_out.state is ItemState.FAILED
    evidence_root = tmp_path / "var" / "evidence" / "run-1"
    kept = {Path(e.path).name for e in timed_out.evidence}
    assert kept == {"page.png", "page.html", "trace.zip"}
    assert {Path(e.path).name for e in refused.evidence} >= {"page.png", "page.html"}
    for item in (refused, timed_out):
        for evidence in item.evidence:
            path = Path(evidence.path)
            assert path.parent == evidence_root / str(item.id)
            from connectors.portal.evidence import sha256_file

            assert sha256_file(path) == evidence.sha256
    with zipfile.ZipFile(evidence_root / str(timed_out.id) / "trace.zip") as trace:
        assert any(name.endswith(".trace") for name in trace.namelist())
        assert b"REQ-0002" in b"".join(trace.read(n) for n in trace.namelist())  # the step is in it
    audit = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert any(r["event"] == "workitem.evidence" and r["item_id"] == timed_out.id for r in audit)
    assert verify_audit(audit_path).ok

    secret = PASSWORD.encode()
    searched = 0
    for path in [*evidence_root.rglob("*"), *(tmp_path / "var").glob("ledger.db*"), audit_path]:
        if path.is_file():
            searched += 1
            assert not _contains(path.read_bytes(), secret), f"password found in {path}"
    assert searched >= 7
    assert "LOGIN_REFUSED" in logs.err + logs.out
    assert PASSWORD not in logs.err + logs.out
    assert "trace dropped" not in logs.err + logs.out  # kept out by secret_entry, not by the last guard


@pytest.mark.browser
def test_the_search_finds_a_password_typed_outside_secret_entry(tmp_path: Path) -> None:
    """Control: without secret_entry the trace holds the password, and capture_evidence drops that trace."""
    from playwright.async_api import async_playwright

    from config.logging import register_secret
    from connectors.portal.browser import launch_chromium_async, new_context_async
    from connectors.portal.evidence import capture_evidence

    register_secret(PASSWORD)
    settings = Settings(paths={"root": tmp_path})

    async def main() -> list[str]:
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw, settings.browser)
            context = await new_context_async(browser, settings.browser)
            page = await context.new_page()
            await page.set_content(LOGIN_FORM)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await context.tracing.stop_chunk(path=tmp_path / "control.zip")
            await context.tracing.start_chunk()
            await page.get_by_label("Password").fill(PASSWORD)
            evidence = await capture_evidence(page, tmp_path / "item")
            await browser.close()
            return [Path(e.path).name for e in evidence]

    kept = asyncio.run(main())
    assert _contains((tmp_path / "control.zip").read_bytes(), PASSWORD.encode())
    assert "trace.zip" not in kept
    assert not (tmp_path / "item" / "trace.zip").exists()
    assert not _contains((tmp_path / "item" / "page.html").read_bytes(), PASSWORD.encode())


@pytest.mark.browser
def test_secret_entry_and_evidence_work_when_tracing_is_off(tmp_path: Path) -> None:
    """With browser.trace=false, signing in and keeping evidence still work (no trace is written)."""
    from playwright.async_api import async_playwright

    from config.settings import BrowserSettings
    from connectors.portal.browser import launch_chromium_async, new_context_async
    from connectors.portal.evidence import capture_evidence

    async def scenario() -> list[str]:
        settings = BrowserSettings(trace=False)
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw, settings)
            context = await new_context_async(browser, settings)
            page = await context.new_page()
            assert await _sign_in(page, submit_inside=False) == "Invalid credentials"
            evidence = await capture_evidence(page, tmp_path / "item")
            await browser.close()
        return sorted(Path(e.path).name for e in evidence)

    assert asyncio.run(scenario()) == ["page.html", "page.png"]
