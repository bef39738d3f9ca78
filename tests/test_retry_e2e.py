"""Retry means the items: against the sandbox portal in Chromium, corrected data is what gets raised.

Monday's file has two requisitions whose need-by date is in the past. Dropping the
corrected file again raises the first one with the corrected date (the ledger takes
the new payload); the second is corrected by a person (``replace_payload_and_retry``,
as the console does) and Wednesday's run, started for another file, raises it first
and lists it in its results.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bots.purchase_orders import BOT, STATUS_BUSINESS, STATUS_RAISED, london_today, run_purchase_orders
from bots.runtime.ledger import Ledger
from sandbox.server import SandboxServer
from tests.test_purchase_orders_e2e import po_portal, portal_env, portal_orders, write_requisitions

pytestmark = [pytest.mark.browser, pytest.mark.slow]

__all__ = ["po_portal", "portal_env"]  # fixtures shared with the purchase-order tests

PAST = {
    "REQ-2026-000001": ("need_by", "past", "NEED_BY_IN_PAST"),
    "REQ-2026-000002": ("need_by", "past", "NEED_BY_IN_PAST"),
}


def test_corrected_data_is_raised_by_a_redrop_and_by_the_next_run_of_another_file(
    po_portal: SandboxServer, portal_env: Path, tmp_path: Path
) -> None:
    from config.settings import get_settings

    server, prefix = po_portal, "RETRY-"
    first, second = f"{prefix}REQ-2026-000001", f"{prefix}REQ-2026-000002"
    monday = run_purchase_orders(
        write_requisitions(tmp_path / "monday.xlsx", 2, PAST, prefix=prefix),
        portal_url=server.url,
        contexts=1,
    )
    assert {r.requisition_ref: r.status for r in monday.results} == {
        first: STATUS_BUSINESS,
        second: STATUS_BUSINESS,
    }

    # Tuesday: the same file with the first date corrected, dropped again.
    corrected = write_requisitions(
        tmp_path / "monday-corrected.xlsx", 2, {"REQ-2026-000002": PAST["REQ-2026-000002"]}, prefix=prefix
    )
    tuesday = run_purchase_orders(corrected, portal_url=server.url, contexts=1)
    statuses = {r.requisition_ref: r.status for r in tuesday.results}
    assert statuses == {first: STATUS_RAISED, second: STATUS_BUSINESS}
    (raised,) = portal_orders(server, prefix)
    assert raised["requisition_ref"] == first
    assert raised["need_by"] == (london_today() + dt.timedelta(days=30)).isoformat()  # the corrected date

    # A person corrects the second one (the console's "Replace data and retry").
    ledger = Ledger.from_settings(get_settings())
    item = ledger.find(BOT, second)
    assert item is not None
    fixed = {**item.payload, "need_by": (london_today() + dt.timedelta(days=60)).isoformat()}
    ledger.replace_payload_and_retry(
        item.id, fixed, "need-by confirmed by the ward", operator="console:jsmith"
    )

    # Wednesday: a run for another file raises it first and lists it.
    wednesday = run_purchase_orders(
        write_requisitions(tmp_path / "wednesday.xlsx", 1, prefix="WED-"), portal_url=server.url, contexts=1
    )
    by_ref = {r.requisition_ref: r for r in wednesday.results}
    assert by_ref[second].status == STATUS_RAISED
    assert "retried by an operator" in str(by_ref[second].reason)
    assert by_ref["WED-REQ-2026-000001"].status == STATUS_RAISED
    assert {o["requisition_ref"] for o in portal_orders(server, prefix)} == {first, second}
    claims = [t for t in ledger.history(item.id) if t.event == "claimed"]
    wednesday_item = ledger.find(BOT, "WED-REQ-2026-000001")
    assert wednesday_item is not None
    first_claim_of_wed = next(t for t in ledger.history(wednesday_item.id) if t.event == "claimed")
    assert claims[-1].at <= first_claim_of_wed.at  # the retried item went first
