"""The goods-receipts loop in the sample data, without a browser: `procbots sandbox data`
writes despatch advices and scans for part of the deliveries whose invoices wait for a
receipt; recording those receipts turns exactly those invoices from hold NOT_RECEIVED
to approve."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.match_tables import match_documents
from bots.domain.models import GoodsReceipt, ReceiptLine
from bots.domain.receipts import PoLineState, check_receipt
from connectors.match_inputs import load_invoices, load_orders, load_receipts
from connectors.peppol import read_document
from connectors.receipt_inputs import receipt_drafts
from sandbox.datafiles import write_input_files
from sandbox.seed import AWAITING_RECEIPT, generate


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("sample")
    return out, write_input_files(out, seed=1, orders=200)


def test_open_orders_two_weeks_old_are_invoiced_for_their_goods_and_two_in_three_get_delivery_files(
    sample: tuple[Path, dict[str, object]],
) -> None:
    out, result = sample
    data = generate(1, 200)
    awaiting = [inv for inv in data.invoices if inv.scenario == AWAITING_RECEIPT]
    assert len(awaiting) == len(data.deliveries) == result["awaiting_receipt"] == 10
    assert Counter(d.channel for d in data.deliveries) == {"despatch": 5, "scan": 2, "none": 3}
    for delivery in data.deliveries:
        order = next(o for o in data.orders if o.po_number == delivery.po_number)
        assert order.status == "open"
        assert delivery.lines == [ln for ln in order.lines if ln.receipt_required]
    files = sorted(p.name for p in (out / "goods-receipts").iterdir())
    assert files == sorted(
        [f"{d.despatch_id}.xml" for d in data.deliveries if d.channel == "despatch"]
        + ["point-of-use-scans.csv"]
    )
    advice = read_document(out / "goods-receipts" / files[0])
    assert advice.document_type == "despatch_advice"
    assert advice.findings == ()


def test_recording_the_receipts_the_files_ask_for_approves_exactly_the_invoices_held_not_received(
    sample: tuple[Path, dict[str, object]],
) -> None:
    out, _ = sample
    orders = load_orders(out / "orders.csv")
    receipts = load_receipts(out / "receipts.csv")
    invoices = load_invoices([out / "invoices"])
    received: dict[tuple[str, int], Decimal] = {}
    for grn in receipts:
        for ln in grn.lines:
            received[(ln.po_number, ln.line_no)] = received.get((ln.po_number, ln.line_no), Decimal(0)) + (
                ln.quantity_received
            )
    book = {
        o.po_number: {
            ln.line_no: PoLineState(
                ln.line_no, ln.item_code, ln.quantity, received.get((o.po_number, ln.line_no), Decimal(0))
            )
            for ln in o.lines
        }
        for o in orders
    }
    drafts, errors = receipt_drafts((out / "goods-receipts").iterdir())
    assert errors == []
    new = [
        GoodsReceipt(
            grn_number=d.grn_number,
            po_number=d.po_number,
            received_date=d.received_date,
            lines=[
                ReceiptLine(
                    po_number=d.po_number, line_no=n, quantity_received=q, received_date=d.received_date
                )
                for n, q in check_receipt(d, book[d.po_number or ""], dt.date.today())
            ],
        )
        for d in drafts
    ]
    assert len(new) == 7  # 5 despatch advices, 2 orders scanned

    def decisions(grns: list[GoodsReceipt]) -> dict[str, tuple[str, set[str]]]:
        return {
            d.invoice_number: (d.decision, {r.code for r in d.reasons})
            for d in match_documents(orders, grns, invoices)
        }

    before, after = decisions(receipts), decisions(receipts + new)
    changed = {n: (before[n], after[n]) for n in before if before[n] != after[n]}
    receipted = {d.po_number for d in drafts}
    awaiting = {
        inv.invoice_number: inv.po_number
        for inv in generate(1, 200).invoices
        if inv.scenario == AWAITING_RECEIPT
    }
    assert set(changed) == {n for n, po in awaiting.items() if po in receipted}
    assert all(b == ("hold", {"NOT_RECEIVED"}) and a == ("approve", set()) for b, a in changed.values())
    still_held = {n for n, po in awaiting.items() if po not in receipted}
    assert len(still_held) == 3
    assert all(after[n] == ("hold", {"NOT_RECEIVED"}) for n in still_held)
