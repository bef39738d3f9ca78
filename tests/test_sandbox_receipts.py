"""The sandbox's "Record goods receipt" page: over HTTP (its rules) and through its page
object in real Chromium with shuffled, late-rendered forms."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from bots.domain.receipts import PoLineState
from connectors.portal.pages.base import PortalCredentials, PortalSession
from connectors.portal.pages.receipts import GoodsReceiptPages, PortalRejectedReceipt, RecordedReceipt
from sandbox.server import SandboxServer
from tests.plugins.sandbox import SANDBOX_PASSWORD
from tests.test_sandbox_http import signed_in

T = TypeVar("T")
D = Decimal


def outstanding(server: SandboxServer) -> list[tuple[str, int, str, Decimal]]:
    """(PO, line, item code, quantity still to receive) of every goods line not received in full."""
    state = server.state(sections="purchase_orders,receipts")
    received: dict[tuple[str, int], Decimal] = {}
    for r in state["receipts"]:
        for ln in r["lines"]:
            key = (r["po_number"], ln["line_no"])
            received[key] = received.get(key, D(0)) + D(ln["quantity_received"])
    return [
        (po["po_number"], ln["line_no"], ln["item_code"], left)
        for po in state["purchase_orders"]
        for ln in po["lines"]
        if ln["receipt_required"]
        and (left := D(ln["quantity"]) - received.get((po["po_number"], ln["line_no"]), D(0))) > 0
    ]


def _problems(html: str) -> list[str]:
    summary = re.search(r"There is a problem</h2>\s*<ul>(.*?)</ul>", html, re.S)
    return re.findall(r"<li>(.*?)</li>", summary.group(1)) if summary else []


@pytest.mark.slow
def test_the_record_form_refuses_what_the_portal_must_not_record_and_records_the_rest(sandbox) -> None:
    po, line, _, left = outstanding(sandbox)[0]
    client = signed_in(sandbox.url)
    form = client.get("/receipts/new", params={"po_number": po})
    assert form.status_code == 200
    assert f"Lines of {po}" in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    today = dt.date.today()

    def post(grn: str, po_number: str, day: dt.date, *lines: tuple[str, str]) -> httpx.Response:
        data = {
            "csrf_token": token,
            "grn_number": grn,
            "po_number": po_number,
            "received_date": day.isoformat(),
        }
        for n, (po_line, qty) in enumerate(lines, start=1):
            data |= {f"line-{n}-po_line": po_line, f"line-{n}-quantity": qty}
        return client.post("/receipts/new", data=data)

    refused = [
        (post("GRN-HTTP-1", "PO-999999", today, ("1", "1")), ["There is no purchase order PO-999999"]),
        (post("GRN-HTTP-1", po, today, ("99", "1")), [f"Line 1: {po} has no line 99"]),
        (
            post("GRN-HTTP-1", po, today, (str(line), str(left + 1))),
            [f"Line 1: receiving {left + 1} would take line {line} of {po} to "],
        ),
        (
            post("GRN-HTTP-1", po, today + dt.timedelta(days=2), (str(line), "1")),
            [f"The received date {today + dt.timedelta(days=2)} is in the future"],
        ),
        (post("GRN/HTTP", po, today, (str(line), "1")), ["GRN number: 3 to 40 letters"]),
        (post("GRN-HTTP-1", po, today), ["Add at least one line", "Line 1: enter the PO line number"]),
    ]
    for response, expected in refused:
        assert response.status_code == 422
        problems = _problems(response.text)
        assert len(problems) == len(expected), problems
        for problem, start in zip(problems, expected, strict=True):
            assert problem.startswith(start), (problem, start)
    assert [
        r for r in sandbox.state(sections="receipts", po_number=po)["receipts"] if "HTTP" in r["grn_number"]
    ] == []

    done = post("GRN-HTTP-1", po, today, (str(line), "1"))
    assert done.status_code == 303
    assert done.headers["location"] == "/receipts/GRN-HTTP-1?recorded=1"
    again = post("GRN-HTTP-1", po, today, (str(line), "1"))
    assert again.status_code == 422
    assert _problems(again.text) == ["Goods receipt GRN-HTTP-1 is already recorded"]

    (recorded,) = [
        r
        for r in sandbox.state(sections="receipts", po_number=po)["receipts"]
        if r["grn_number"] == "GRN-HTTP-1"
    ]
    assert recorded == {
        "grn_number": "GRN-HTTP-1",
        "po_number": po,
        "received_date": today.isoformat(),
        "lines": [{"line_no": line, "quantity_received": "1"}],
    }
    export = list(csv.reader(io.StringIO(client.get("/receipts/export.csv", params={"po_number": po}).text)))
    assert ["GRN-HTTP-1", po, str(line), "1", today.isoformat()] in export
    detail = client.get(f"/purchase-orders/{po}").text
    assert 'href="/receipts/GRN-HTTP-1"' in detail
    assert f'href="/receipts/new?po_number={po}"' in detail
    assert 'href="/receipts/new"' in client.get("/receipts").text
    assert "Goods receipt GRN-HTTP-1 recorded." in client.get(done.headers["location"]).text
    (order,) = sandbox.state(sections="purchase_orders", po_number=po)["purchase_orders"]
    assert order["status"] in ("part_received", "received")


BUYER = PortalCredentials("buyer1", SecretStr(SANDBOX_PASSWORD))


@pytest.fixture(scope="module")
def shuffled_portal() -> Iterator[SandboxServer]:
    with SandboxServer(seed=1, orders=20, chaos="shuffle=1,slow_render_ms=300,seed=11") as server:
        yield server


def in_browser(server: SandboxServer, work: Callable[[PortalSession], Awaitable[T]]) -> T:
    from playwright.async_api import async_playwright

    from config.settings import get_settings
    from connectors.portal.browser import launch_chromium_async, new_context_async

    async def main() -> T:
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw)
            try:
                context = await new_context_async(browser, get_settings().browser)
                return await work(PortalSession(await context.new_page(), server.url, BUYER))
            finally:
                await browser.close()

    return asyncio.run(main())


@pytest.mark.browser
def test_the_page_object_finds_reads_and_records_a_receipt_on_shuffled_late_forms(
    shuffled_portal: SandboxServer,
) -> None:
    by_po: dict[str, list[tuple[int, Decimal]]] = {}
    for po, line, _, left in outstanding(shuffled_portal):
        by_po.setdefault(po, []).append((line, left))
    po, lines = max(by_po.items(), key=lambda kv: len(kv[1]))  # the order with most lines to receive
    assert len(lines) >= 2  # so the form's "Add line" is used
    today = dt.date.today()

    async def work(session: PortalSession) -> tuple[Any, ...]:
        pages = GoodsReceiptPages(session)
        before = await pages.find("GRN-PAGES-1")
        unknown = await pages.open_form("PO-999999")
        state = await pages.open_form(po)
        await pages.record("GRN-PAGES-1", po, today, lines)
        found = await pages.find("GRN-PAGES-1")
        await pages.open_form(po)
        try:
            await pages.record("GRN-PAGES-2", po, today, [(lines[0][0], D(1))])
        except PortalRejectedReceipt as exc:
            rejected = exc
        return before, unknown, state, found, rejected

    before, unknown, state, found, rejected = in_browser(shuffled_portal, work)
    assert before is None
    assert unknown is None
    assert isinstance(state[lines[0][0]], PoLineState)
    assert {n: s.ordered - s.received for n, s in state.items() if s.ordered > s.received} == dict(lines)
    assert found == RecordedReceipt("GRN-PAGES-1", po, today, dict(lines))
    assert rejected.code == "PORTAL_REJECTED"
    assert f"would take line {lines[0][0]} of {po} to" in rejected.message
    recorded = [
        r
        for r in shuffled_portal.state(sections="receipts", po_number=po)["receipts"]
        if "PAGES" in r["grn_number"]
    ]
    assert [r["grn_number"] for r in recorded] == ["GRN-PAGES-1"]
