"""A person's day in the console, in real Chromium: sign in, the queue after a chaos run, an item's
screenshot, Replace data and retry, the item done after the bot's next run, the audit naming them.

Real parts throughout: the sandbox portal in its own process (with chaos for the first run),
the purchase-order bot driving Chromium, a SQLite ledger, the audit log, and the console
served by uvicorn on a thread of this process. The pages' screenshots are written to
``test-output/`` (``docs/img/console-*.png`` are copies of them).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bots.purchase_orders import BOT, STATUS_BUSINESS, london_today, run_purchase_orders
from bots.runtime.ledger import Ledger
from config.settings import Settings, get_settings
from connectors.audit import reset_default_audit_log, verify_audit
from connectors.console_links import console_link
from flows.console.auth import hash_password
from flows.console.server import ConsoleServer
from tests.plugins.browser import assert_accessible
from tests.plugins.sandbox import SANDBOX_PASSWORD
from tests.test_purchase_orders_e2e import INVALID, SEED, SEEDED_ORDERS, write_requisitions

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "Console-Browser-Password-1"
PAST_NEED_BY = "REQ-2026-000002"
# 30% of portal requests fail (half of the failed POSTs after saving): the page objects ride out
# failed pages, and at least one new-order POST per run fails, so its item keeps a screenshot
# (each of seven trial runs with seeds 1-3 did).
CHAOS = "error_rate=0.3,latency_ms=20,seed=1"


@pytest.fixture
def console_env(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh data root, the sandbox's password for the bot, one console user: Jane Smith."""
    users = {"jsmith": {"name": "Jane Smith", "password_hash": hash_password(PASSWORD)}}
    monkeypatch.setenv("PROCBOTS_CONSOLE__USERS", json.dumps(users))
    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
    monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.2")
    monkeypatch.setenv("PROCBOTS_RETRY__MAX_S", "2")
    get_settings.cache_clear()
    reset_default_audit_log()
    yield get_settings()
    reset_default_audit_log()


def sign_in(page: Any, url: str, password: str = PASSWORD) -> None:
    page.goto(url + "/")
    page.get_by_label("Name").fill("jsmith")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_person_works_a_chaos_runs_exceptions_in_the_console(
    console_env: Settings, sandbox_factory: Any, page: Any, tmp_path: Path, test_output: Path
) -> None:
    """Sign in (a wrong password first), see the queue by reason code, open an item's screenshot
    and download its trace, replace a requisition's past need-by date, and after the bot's next
    run (another file, the portal recovered) the item is done and the audit names Jane Smith."""
    settings = console_env
    page.set_viewport_size({"width": 1280, "height": 900})
    chaotic = sandbox_factory(seed=SEED, orders=SEEDED_ORDERS, chaos=CHAOS)
    source = write_requisitions(tmp_path / "requisitions.xlsx", 6, {PAST_NEED_BY: INVALID["REQ-2026-000035"]})
    first = run_purchase_orders(source, portal_url=chaotic.url, contexts=1)
    assert first.counts[STATUS_BUSINESS] == 1, first.counts
    ledger = Ledger.from_settings(settings)
    blocked = ledger.find(BOT, PAST_NEED_BY)
    assert blocked is not None
    assert (str(blocked.state), blocked.reason_code) == ("business_exception", "NEED_BY_IN_PAST")
    shot_items = [i for i in ledger.list(bot=BOT) if any(e.path.endswith(".png") for e in i.evidence)]
    assert shot_items, "the chaos run hit no portal error, so no item kept a screenshot"

    with ConsoleServer(settings, port=0) as console:
        url = console.url
        # Sign in: a wrong password is refused, the right one opens the queues.
        page.goto(url + "/")
        assert page.url.startswith(url + "/login")
        assert_accessible(page)
        page.screenshot(path=test_output / "console-sign-in.png")
        sign_in(page, url, password="not-her-password")
        assert page.get_by_role("alert").inner_text() == "Wrong name or password."
        sign_in(page, url)
        page.get_by_role("heading", name="Work queues").wait_for()
        assert "Signed in as Jane Smith" in page.locator("header").inner_text()
        waiting = page.get_by_role("table", name="Exceptions by bot, state and reason code")
        row = waiting.get_by_role("row").filter(has_text="NEED_BY_IN_PAST")
        cells = row.get_by_role("cell").all_inner_texts()
        assert cells[:3] == ["Purchase orders", "business exception", "NEED_BY_IN_PAST"]
        assert_accessible(page)
        page.screenshot(path=test_output / "console-queues.png", full_page=True)

        row.get_by_role("link", name="1").click()
        page.get_by_role("heading", name="Purchase orders: work queue").wait_for()
        items = page.get_by_role("table", name="Items", exact=True)
        assert items.get_by_role("row").count() == 2  # the header and the one exception
        assert_accessible(page)
        items.get_by_role("link", name=PAST_NEED_BY).click()
        page.get_by_role("heading", name=f"Item {blocked.id}: {PAST_NEED_BY}").wait_for()
        assert "need-by date is before today" in page.locator("dl.facts").inner_text()

        # An item that met portal errors: its screenshot shows inline, its trace downloads.
        shot_item = shot_items[0]
        page.goto(f"{url}/items/{shot_item.id}")
        image = page.get_by_role("img", name=f"Screenshot 1 of item {shot_item.id}")
        image.wait_for()
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle())
        traces = [e.path for e in shot_item.evidence if e.path.endswith(".zip")]
        if traces:
            with page.expect_download() as download:
                page.get_by_role("link", name="download").last.click()
            assert Path(download.value.path()).read_bytes() == Path(traces[-1]).read_bytes()
        assert_accessible(page)
        page.screenshot(path=test_output / "console-item-evidence.png")

        # The reports page lists the run's results workbook and the audit log.
        page.get_by_role("link", name="Reports").click()
        page.get_by_role("heading", name="Reports and audit log").wait_for()
        assert first.workbook is not None
        assert page.get_by_role("link", name=first.workbook.name).count() == 1
        assert page.get_by_role("link", name="audit.jsonl").count() == 1
        assert_accessible(page)
        page.screenshot(path=test_output / "console-reports.png")

        # The results workbook through the link the artifacts would carry: 200 and the bytes.
        public = settings.model_copy(
            update={"console": settings.console.model_copy(update={"public_url": url})}
        )
        assert first.workbook is not None
        link = console_link(first.workbook, public)
        assert link.startswith(f"{url}/files/outbox/")
        response = page.request.get(link)
        assert response.status == 200
        assert response.body() == first.workbook.read_bytes()

        # Replace data and retry: the need-by date corrected in the form.
        page.goto(f"{url}/items/{blocked.id}")
        page.get_by_role("link", name="Replace data and retry").click()
        corrected = (london_today() + dt.timedelta(days=21)).isoformat()
        page.get_by_label("need_by").fill(corrected)
        page.get_by_label("What you corrected and why").fill("Ward 7 confirmed delivery in three weeks")
        assert_accessible(page)
        page.screenshot(path=test_output / "console-replace.png", full_page=True)
        page.get_by_role("button", name="Save and retry").click()
        page.get_by_role("heading", name=f"Item {blocked.id}: {PAST_NEED_BY}").wait_for()
        assert "pending" in page.locator("dl.facts").inner_text()

        # The bot's next run, of another file against the recovered portal, takes the item first.
        calm = sandbox_factory(seed=SEED, orders=SEEDED_ORDERS)
        other = write_requisitions(tmp_path / "next-day.xlsx", 1, prefix="N-")
        run_purchase_orders(other, portal_url=calm.url, contexts=1)
        done = ledger.get(blocked.id)
        assert str(done.state) == "done", (done.state, done.reason_message)
        assert done.payload["need_by"] == corrected
        assert str((done.result or {}).get("po_number", "")).startswith("PO-")

        page.reload()
        facts = page.locator("dl.facts").inner_text()
        assert "done" in facts
        history = page.get_by_role("table", name="Transitions, oldest first")
        replaced = history.get_by_role("row").filter(has_text="payload_replaced")
        assert "Jane Smith (jsmith)" in replaced.inner_text()
        assert f'need_by "{(london_today() - dt.timedelta(days=10)).isoformat()}"' in replaced.inner_text()
        replaced.scroll_into_view_if_needed()
        page.screenshot(path=test_output / "console-item-done.png")

    records = [json.loads(line) for line in settings.audit_path.read_text().splitlines()]
    (replacement,) = [r for r in records if r["event"] == "workitem.payload_replaced"]
    assert replacement["operator"] == "Jane Smith (jsmith)"
    assert replacement["reason"].startswith("Ward 7 confirmed delivery in three weeks (changed: need_by ")
    assert replacement["new_payload"]["need_by"] == corrected
    assert verify_audit(settings.audit_path).ok
    ledger.close()


def test_the_browser_cannot_post_without_the_csrf_token_nor_fetch_outside_the_data_folders(
    console_env: Settings, page: Any
) -> None:
    """A signed-in browser's POST without the form's token is refused (and changes nothing);
    paths out of the evidence folder are refused; a file inside downloads with its bytes."""
    settings = console_env
    ledger = Ledger.from_settings(settings)
    ledger.add(BOT, "REQ-CSRF-1", {"requisition_ref": "REQ-CSRF-1"})
    item = ledger.claim(BOT, owner="test")
    assert item is not None
    ledger.business_exception(item, "NEED_BY_IN_PAST", "need-by date is before today")
    trace = settings.paths.resolve("evidence") / "run-1" / str(item.id) / "trace.zip"
    trace.parent.mkdir(parents=True)
    trace.write_bytes(b"PK\x05\x06" + bytes(18))
    with ConsoleServer(settings, port=0) as console:
        sign_in(page, console.url)
        page.get_by_role("heading", name="Work queues").wait_for()
        refused = page.request.post(f"{console.url}/items/{item.id}/retry", form={"reason": "now"})
        assert refused.status == 403
        assert "security token" in refused.text()
        assert str(ledger.get(item.id).state) == "business_exception"
        for path in ("/files/evidence/%2e%2e/ledger.db", "/files/evidence/run-1/..%2f..%2fledger.db"):
            outside = page.request.get(console.url + path)
            assert outside.status in (403, 404), path
            assert b"SQLite format" not in outside.body()
        inside = page.request.get(f"{console.url}/files/evidence/run-1/{item.id}/trace.zip")
        assert (inside.status, inside.body()) == (200, trace.read_bytes())
    ledger.close()
