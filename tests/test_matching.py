"""Invoice matching decides like a payables clerk would: a table of named scenarios,
each stating the documents and the decision and reason codes expected per document
(in processing order: issue date, supplier, normalised number)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from bots.domain.matching import (
    Decision,
    MatchingPolicy,
    financial_year,
    normalise_invoice_number,
    normalise_vat,
    one_edit_apart,
    summarise,
)
from bots.domain.models import GoodsReceipt, Invoice, PurchaseOrder
from tests.matching_builders import DAY, SUPPLIER_A, SUPPLIER_B, invoice, order, receipt
from tests.oracle.differential import match_both as match_invoices
from tests.oracle.matching import match_invoice

D = Decimal


def day(n: int) -> dt.date:
    return DAY + dt.timedelta(days=n)


@dataclass
class Scenario:
    invoices: list[Invoice]
    expected: list[tuple[str, str, set[str]]]
    orders: list[PurchaseOrder] = field(default_factory=lambda: [order()])
    receipts: list[GoodsReceipt] = field(default_factory=lambda: [receipt()])
    policy: MatchingPolicy = field(default_factory=MatchingPolicy)
    notes: set[str] = field(default_factory=set)


SERVICES = [order(lines=[(1, "10", "10.00", "20", False)])]
TWO_LINES = [order(lines=[(1, "10", "10.00", "20", True), (2, "5", "100.00", "20", True)])]
GRN_BOTH = [receipt(line_no=1, qty="10"), receipt(line_no=2, qty="5", grn="GRN-2")]

SCENARIOS = [
    # --- clean matches -------------------------------------------------------------
    pytest.param(Scenario([invoice()], [("INV-1", "approve", set())]), id="exact-match-3way"),
    pytest.param(
        Scenario([invoice()], [("INV-1", "approve", set())], orders=SERVICES, receipts=[]),
        id="services-2way-needs-no-receipt",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "20"), ("2", "5", "100.00", "20")])],
            [("INV-1", "approve", set())],
            orders=TWO_LINES,
            receipts=GRN_BOTH,
        ),
        id="two-line-exact-match",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "20"), ("2", "3", "50.00", "20")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "10", "10.00", "20", True), (2, "3", "50.00", "20", False)])],
        ),
        id="mixed-goods-3way-and-services-2way",
    ),
    pytest.param(
        Scenario(
            [invoice(vat="GB 980 7806 84")], [("INV-1", "approve", set())], orders=[order(vat="980780684")]
        ),
        id="supplier-vat-compared-normalised",
    ),
    pytest.param(
        Scenario([invoice(lines=[("PO-1/1", "10", "10.00", "20")])], [("INV-1", "approve", set())]),
        id="order-line-reference-with-po-prefix",
    ),
    pytest.param(
        Scenario([invoice(totals=False)], [("INV-1", "approve", set())]),
        id="no-stated-totals-computed-from-lines",
    ),
    # --- price ---------------------------------------------------------------------
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.15", "20")])],
            [("INV-1", "approve", set())],
            notes={"PRICE_WITHIN_TOLERANCE"},
        ),
        id="price-within-percent",
    ),
    pytest.param(
        Scenario([invoice(lines=[("1", "10", "10.20", "20")])], [("INV-1", "approve", set())]),
        id="price-exactly-at-percent-tolerance",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.60", "20")])], [("INV-1", "hold", {"PRICE_OVER_TOLERANCE"})]
        ),
        id="price-over-percent",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "2", "1004.00", "20")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "2", "1000.00", "20", False)])],
            receipts=[],
        ),
        id="price-within-absolute-cap",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "2", "1006.00", "20")])],
            [("INV-1", "hold", {"PRICE_OVER_TOLERANCE"})],
            orders=[order(lines=[(1, "2", "1000.00", "20", False)])],
            receipts=[],
        ),
        id="price-over-absolute-cap-though-under-percent",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "9.50", "20")])],
            [("INV-1", "approve", set())],
            notes={"PRICE_UNDER_PO"},
        ),
        id="under-price-approved-with-note",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.60", "20")])],
            [("INV-1", "approve", set())],
            policy=MatchingPolicy(suppliers={"980 7806 84": {"price_tolerance_pct": "10"}}),
        ),
        id="supplier-override-wider-price-tolerance",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.15", "20")])],
            [("INV-1", "hold", {"PRICE_OVER_TOLERANCE"})],
            policy=MatchingPolicy(suppliers={SUPPLIER_A: {"price_tolerance_pct": "0"}}),
        ),
        id="supplier-override-zero-price-tolerance",
    ),
    # --- quantities and receipts ---------------------------------------------------
    pytest.param(
        Scenario([invoice()], [("INV-1", "hold", {"NOT_RECEIVED"})], receipts=[]),
        id="goods-not-received",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "8", "10.00", "20")])],
            [("INV-1", "hold", {"QTY_OVER_RECEIVED"})],
            receipts=[receipt(qty="5")],
        ),
        id="qty-over-received",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "12", "10.00", "20")])],
            [("INV-1", "hold", {"QTY_OVER_ORDERED"})],
            orders=SERVICES,
            receipts=[],
        ),
        id="qty-over-ordered-2way",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "12", "10.00", "20")])],
            [("INV-1", "hold", {"QTY_OVER_ORDERED"})],
            receipts=[receipt(qty="12")],
        ),
        id="over-delivered-and-billed-over-ordered",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "6", "10.00", "20")]),
                invoice("INV-2", day(10), lines=[("1", "4", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-2", "hold", {"QTY_OVER_RECEIVED"})],
            receipts=[receipt(qty="6")],
        ),
        id="partial-receipt-then-second-invoice-ahead-of-goods",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "6", "10.00", "20")]),
                invoice("INV-2", day(10), lines=[("1", "4", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-2", "approve", set())],
            receipts=[receipt(qty="6"), receipt(qty="4", grn="GRN-2")],
        ),
        id="partial-deliveries-each-invoiced",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "6", "10.00", "20")]),
                invoice("INV-2", day(10), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-2", "hold", {"QTY_OVER_ORDERED"})],
            orders=SERVICES,
            receipts=[],
        ),
        id="over-billing-across-two-invoices-2way",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "6", "10.00", "20")]),
                invoice("INV-2", day(10), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-2", "hold", {"QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"})],
        ),
        id="over-billing-across-two-invoices-3way",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "6", "10.00", "20"), ("1", "6", "10.00", "20")])],
            [("INV-1", "hold", {"QTY_OVER_RECEIVED", "QTY_OVER_ORDERED"})],
        ),
        id="two-invoice-lines-on-one-po-line-add-up",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "10", "10.60", "20")]),
                invoice("INV-2", day(5), lines=[("1", "10", "10.00", "20")]),
            ],
            [("INV-1", "hold", {"PRICE_OVER_TOLERANCE"}), ("INV-2", "approve", set())],
        ),
        id="held-invoice-does-not-consume-quantity",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "11", "10.00", "20")])],
            [("INV-1", "approve", set())],
            orders=SERVICES,
            receipts=[],
            policy=MatchingPolicy(qty_tolerance_pct=D("10")),
        ),
        id="quantity-tolerance-allows-ten-percent-over",
    ),
    # --- credit notes --------------------------------------------------------------
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("CN-1", day(3), lines=[("1", "4", "10.00", "20")], credit=True, billing="INV-1"),
                invoice("INV-2", day(6), lines=[("1", "4", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("CN-1", "approve", set()), ("INV-2", "approve", set())],
        ),
        id="credit-note-restores-quantity",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("CN-1", day(3), lines=[("1", "10", "10.00", "20")], credit=True, billing="INV-1"),
                invoice("INV-1", day(6)),
            ],
            [("INV-1", "approve", set()), ("CN-1", "approve", set()), ("INV-1", "approve", set())],
            notes={"REBILL_AFTER_CREDIT"},
        ),
        id="rebill-after-full-credit-approved-with-note",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("CN-1", day(1), lines=[("1", "10", "10.00", "20")], credit=True, billing="INV-1"),
                invoice("INV-1A", day(2)),
            ],
            [("INV-1", "approve", set()), ("CN-1", "approve", set()), ("INV-1A", "approve", set())],
        ),
        id="same-amount-after-full-credit-is-no-possible-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("CN-1", day(3), lines=[("1", "4", "10.00", "20")], credit=True, billing="INV-1"),
                invoice("INV-1", day(6)),
            ],
            [
                ("INV-1", "approve", set()),
                ("CN-1", "approve", set()),
                ("INV-1", "reject", {"DUPLICATE_INVOICE"}),
            ],
        ),
        id="rebill-after-partial-credit-still-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("CN-1", day(3), lines=[("1", "10", "10.00", "20")], credit=True, billing="INV-1"),
                invoice("INV-1", day(6)),
                invoice("INV-1", day(9)),
            ],
            [
                ("INV-1", "approve", set()),
                ("CN-1", "approve", set()),
                ("INV-1", "approve", set()),
                ("INV-1", "reject", {"DUPLICATE_INVOICE"}),
            ],
            notes={"REBILL_AFTER_CREDIT"},
        ),
        id="second-rebill-after-one-full-credit-is-a-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice("INV-2", day(6), lines=[("1", "4", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-2", "hold", {"QTY_OVER_RECEIVED", "QTY_OVER_ORDERED"})],
        ),
        id="rebilling-without-credit-note-held",
    ),
    pytest.param(
        Scenario(
            [invoice("INV-1"), invoice("CN-1", day(3), lines=[("1", "4", "10.00", "20")], credit=True)],
            [("INV-1", "approve", set()), ("CN-1", "hold", {"CREDIT_NOTE_NO_REFERENCE"})],
        ),
        id="credit-note-without-reference",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "5", "10.00", "20")]),
                invoice("CN-1", day(3), lines=[("1", "8", "10.00", "20")], credit=True, billing="INV-1"),
            ],
            [("INV-1", "approve", set()), ("CN-1", "hold", {"CREDIT_EXCEEDS_INVOICED"})],
        ),
        id="credit-exceeds-invoiced",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1"),
                invoice(
                    "CN-1", day(3), po=None, lines=[("1", "2", "10.00", "20")], credit=True, billing="INV 1"
                ),
            ],
            [("INV-1", "approve", set()), ("CN-1", "approve", set())],
            notes={"PO_FROM_BILLING_REFERENCE"},
        ),
        id="credit-note-finds-po-through-billing-reference",
    ),
    pytest.param(
        Scenario(
            [invoice("CN-9", po=None, lines=[("1", "2", "10.00", "20")], credit=True, billing="INV-404")],
            [("CN-9", "hold", {"NO_PO"})],
        ),
        id="credit-note-unknown-reference-and-no-po",
    ),
    # --- order header --------------------------------------------------------------
    pytest.param(Scenario([invoice(po=None)], [("INV-1", "hold", {"NO_PO"})]), id="missing-po"),
    pytest.param(Scenario([invoice(po="PO-404")], [("INV-1", "hold", {"PO_NOT_FOUND"})]), id="unknown-po"),
    pytest.param(
        Scenario([invoice(vat=SUPPLIER_B)], [("INV-1", "hold", {"SUPPLIER_MISMATCH"})]), id="wrong-supplier"
    ),
    pytest.param(
        Scenario([invoice(vat=None)], [("INV-1", "hold", {"SUPPLIER_MISMATCH"})]),
        id="invoice-without-supplier-vat",
    ),
    pytest.param(
        Scenario([invoice(currency="EUR")], [("INV-1", "hold", {"CURRENCY_MISMATCH"})]), id="wrong-currency"
    ),
    pytest.param(
        Scenario([invoice(lines=[])], [("INV-1", "hold", {"LINE_NOT_ON_PO"})]),
        id="invoice-without-lines",
    ),
    pytest.param(
        Scenario([invoice(lines=[("9", "1", "10.00", "20")])], [("INV-1", "hold", {"LINE_NOT_ON_PO"})]),
        id="line-not-on-po",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[(None, "5", "100.00", "20")], item_ids=["GLV-M"])],
            [("INV-1", "approve", set())],
            orders=[
                order(
                    lines=[(1, "10", "10.00", "20", True), (2, "5", "100.00", "20", True)],
                    item_codes=["GLV-S", "GLV-M"],
                )
            ],
            receipts=GRN_BOTH,
        ),
        id="line-without-reference-found-by-item-code",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[(None, "5", "100.00", "20")])],
            [("INV-1", "hold", {"LINE_NOT_ON_PO"})],
            orders=TWO_LINES,
            receipts=GRN_BOTH,
        ),
        id="line-without-reference-on-multi-line-po",
    ),
    # --- VAT and totals ------------------------------------------------------------
    pytest.param(
        Scenario([invoice(lines=[("1", "10", "10.00", "5")])], [("INV-1", "hold", {"VAT_RATE_MISMATCH"})]),
        id="vat-rate-differs-from-po",
    ),
    pytest.param(
        Scenario([invoice(lines=[("1", "10", "10.00", "17.5")])], [("INV-1", "hold", {"VAT_RATE_MISMATCH"})]),
        id="vat-rate-not-a-uk-rate",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "20", "Z")])], [("INV-1", "hold", {"VAT_RATE_MISMATCH"})]
        ),
        id="zero-rated-category-with-standard-rate",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "0", "Z")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "10", "10.00", "0", True)])],
        ),
        id="zero-rated-line",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "0", "E")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "10", "10.00", "0", True)])],
        ),
        id="exempt-line",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "10", "10.00", "20"), ("2", "5", "100.00", "5")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "10", "10.00", "20", True), (2, "5", "100.00", "5", True)])],
            receipts=GRN_BOTH,
        ),
        id="two-vat-rate-groups",
    ),
    pytest.param(
        Scenario(
            [invoice(lines=[("1", "3", "0.35", "20"), ("2", "3", "0.35", "20")])],
            [("INV-1", "approve", set())],
            orders=[order(lines=[(1, "3", "0.35", "20", False), (2, "3", "0.35", "20", False)])],
            receipts=[],
        ),
        id="vat-rounded-per-rate-group-not-per-line",
    ),
    pytest.param(
        Scenario([invoice(tax_delta="0.02")], [("INV-1", "approve", set())], notes={"VAT_ROUNDING"}),
        id="vat-arithmetic-off-by-2p-accepted",
    ),
    pytest.param(
        Scenario([invoice(tax_delta="1.00")], [("INV-1", "hold", {"VAT_ARITHMETIC"})]),
        id="vat-arithmetic-off-by-1-pound",
    ),
    pytest.param(
        Scenario([invoice(net_delta="0.50")], [("INV-1", "approve", set())], notes={"TOTALS_ROUNDING"}),
        id="header-small-difference-accepted",
    ),
    pytest.param(
        Scenario([invoice(net_delta="5.00")], [("INV-1", "hold", {"TOTALS_ARITHMETIC"})]),
        id="header-difference-over-tolerance",
    ),
    pytest.param(
        Scenario([invoice(line_net_delta="3.00")], [("INV-1", "hold", {"TOTALS_ARITHMETIC"})]),
        id="line-net-above-quantity-times-price",
    ),
    pytest.param(
        Scenario(
            [invoice(line_net_delta="-3.00")],
            [("INV-1", "approve", set())],
            notes={"LINE_DISCOUNT"},
        ),
        id="line-net-below-quantity-times-price-is-a-discount",
    ),
    # --- duplicates ----------------------------------------------------------------
    pytest.param(
        Scenario(
            [invoice("INV-1", lines=[("1", "5", "10.00", "20")]), invoice("INV-1", day(20))],
            [("INV-1", "approve", set()), ("INV-1", "reject", {"DUPLICATE_INVOICE"})],
        ),
        id="duplicate-exact",
    ),
    pytest.param(
        Scenario(
            [invoice("INV-0042", lines=[("1", "5", "10.00", "20")]), invoice("inv 42", day(20))],
            [("INV-0042", "approve", set()), ("inv 42", "reject", {"DUPLICATE_INVOICE"})],
        ),
        id="duplicate-normalised-number",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", dt.date(2025, 1, 10), lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1", dt.date(2025, 3, 30), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-1", "reject", {"DUPLICATE_INVOICE"})],
        ),
        id="duplicate-same-financial-year-across-calendar-years",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", dt.date(2024, 6, 1), lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1", dt.date(2025, 6, 1), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-1", "approve", set())],
        ),
        id="same-number-next-financial-year-not-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", dt.date(2025, 3, 31), lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1", dt.date(2025, 4, 1), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1", "approve", set()), ("INV-1", "hold", {"POSSIBLE_DUPLICATE"})],
        ),
        id="same-number-across-year-end-possible-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-100", lines=[("1", "5", "10.00", "20")]),
                invoice("ZX-7", day(2), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-100", "approve", set()), ("ZX-7", "hold", {"POSSIBLE_DUPLICATE"})],
        ),
        id="possible-duplicate-same-amount-within-3-days",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-100", lines=[("1", "5", "10.00", "20")]),
                invoice("ZX-7", day(4), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-100", "approve", set()), ("ZX-7", "approve", set())],
        ),
        id="same-amount-4-days-apart-not-duplicate",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1001", lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1007", day(30), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1001", "approve", set()), ("INV-1007", "hold", {"POSSIBLE_DUPLICATE"})],
        ),
        id="possible-duplicate-number-one-edit-apart",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1001", lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1002", day(30), lines=[("1", "5", "10.00", "20")]),
            ],
            [("INV-1001", "approve", set()), ("INV-1002", "approve", set())],
            policy=MatchingPolicy(suppliers={SUPPLIER_A: {"similar_numbers": False}}),
        ),
        id="fixed-fee-supplier-with-similar-number-check-off",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1001", lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1007", day(30), lines=[("1", "4", "10.00", "20")]),
            ],
            [("INV-1001", "approve", set()), ("INV-1007", "approve", set())],
        ),
        id="numbers-one-edit-apart-different-amount",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "5", "10.00", "20")]),
                invoice("INV-1", lines=[("1", "5", "10.00", "20")], vat=SUPPLIER_B, po="PO-2"),
            ],
            [("INV-1", "approve", set()), ("INV-1", "approve", set())],
            orders=[order(), order("PO-2", vat=SUPPLIER_B)],
            receipts=[receipt(), receipt("PO-2")],
        ),
        id="same-number-different-supplier",
    ),
    pytest.param(
        Scenario(
            [
                invoice("INV-1", lines=[("1", "6", "10.00", "20")]),
                invoice("inv-01", day(1), lines=[("1", "6", "10.00", "20")]),
                invoice("INV-2", day(9), lines=[("1", "4", "10.00", "20")]),
            ],
            [
                ("INV-1", "approve", set()),
                ("inv-01", "reject", {"DUPLICATE_INVOICE"}),
                ("INV-2", "approve", set()),
            ],
        ),
        id="rejected-duplicate-does-not-consume-quantity",
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: Scenario) -> None:
    """Each document gets the expected decision and exactly the expected reason codes."""
    decisions = match_invoices(scenario.orders, scenario.receipts, scenario.invoices, scenario.policy)
    got = [(d.invoice_number, d.decision, set(d.codes)) for d in decisions]
    assert got == scenario.expected, [r.message for d in decisions for r in d.reasons]
    for decision in decisions:
        for reason in decision.reasons:
            assert reason.message, reason
            if reason.line_no is not None:
                assert f"Line {reason.line_no}" in reason.message
    if scenario.notes:
        assert scenario.notes <= {note.code for d in decisions for note in d.notes}


def test_there_are_at_least_forty_named_scenarios() -> None:
    assert len(SCENARIOS) >= 40
    assert len({p.id for p in SCENARIOS}) == len(SCENARIOS)


# --- messages a payables clerk can act on -----------------------------------------------


def test_price_message_names_line_prices_and_tolerance() -> None:
    decision = match_invoice(
        invoice(lines=[("1", "10", "10.00", "20"), ("2", "5", "10.60", "20")]),
        [order(lines=[(1, "10", "10.00", "20", True), (2, "5", "10.00", "20", True)])],
        [receipt(), receipt(line_no=2, qty="5", grn="GRN-2")],
    )
    assert decision.decision == "hold"
    assert [r.to_dict() for r in decision.reasons] == [
        {
            "code": "PRICE_OVER_TOLERANCE",
            "line_no": 2,
            "message": "Line 2: unit price £10.60 is 6.0% over the PO price £10.00 (tolerance 2% / £5.00)",
        }
    ]


def test_quantity_message_says_what_was_already_invoiced() -> None:
    first = invoice("INV-1", lines=[("1", "6", "10.00", "20")])
    second = invoice("INV-2", day(3), lines=[("1", "6", "10.00", "20")])
    decision = match_invoice(second, [order()], [receipt()], history=[first])
    messages = [r.message for r in decision.reasons]
    assert (
        "Line 1: invoiced quantity would reach 12 on PO line 1 but only 10 was ordered (already invoiced 6)"
        in (messages)
    )


def test_duplicate_message_names_the_original() -> None:
    original = invoice("INV-0042")
    copy = invoice("inv 42", day(5))
    decision = match_invoice(copy, [order()], [receipt()], history=[original])
    assert decision.decision == "reject"
    assert decision.reasons[0].message.startswith("Duplicate of invoice INV-0042 dated 1 May 2025")
    assert "2025/26" in decision.reasons[0].message


def test_decision_carries_po_gross_and_json_shape() -> None:
    decision = match_invoice(invoice(), [order()], [receipt()])
    data = decision.to_dict()
    assert data["decision"] == "approve"
    assert data["po_number"] == "PO-1"
    assert data["gross_amount"] == "120.00"
    assert set(data) >= {"invoice_number", "supplier_vat", "decision", "reasons"}


# --- policy -------------------------------------------------------------------------------


def test_policy_from_settings_uses_configured_defaults(settings_env: Any) -> None:
    from config.settings import get_settings

    policy = MatchingPolicy.from_settings(get_settings().matching)
    assert policy.price_tolerance_pct == D("2")
    assert policy.price_tolerance_abs == D("5.00")
    assert policy.vat_tolerance == D("0.05")
    assert policy.vat_rates == (D("20"), D("5"), D("0"))
    assert policy.duplicate_days == 3


def test_policy_supplier_override_applies_only_to_that_supplier() -> None:
    policy = MatchingPolicy(suppliers={"GB 980 7806 84": {"price_tolerance_abs": "0.50"}})
    assert policy.for_supplier("980780684").price_tolerance_abs == D("0.50")
    assert policy.for_supplier(SUPPLIER_B).price_tolerance_abs == D("5.00")
    assert policy.for_supplier(None) is policy


def test_policy_rejects_unknown_supplier_setting() -> None:
    with pytest.raises(ValueError, match="price_tolerence_pct"):
        MatchingPolicy(suppliers={SUPPLIER_A: {"price_tolerence_pct": "5"}})


def test_policy_rejects_bad_supplier_value_at_construction() -> None:
    with pytest.raises(ValueError, match="duplicate_days"):
        MatchingPolicy(suppliers={SUPPLIER_A: {"duplicate_days": "soon"}})


def test_policy_is_frozen() -> None:
    policy = MatchingPolicy()
    with pytest.raises(ValueError):
        policy.price_tolerance_pct = D("50")  # type: ignore[misc]


# --- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        pytest.param("INV-000123", "INV123", id="leading-zeros-in-digit-run"),
        pytest.param(" inv 123 ", "INV123", id="spaces-and-case"),
        pytest.param("0042", "42", id="all-digits"),
        pytest.param("A/B.10-05", "AB105", id="punctuation-and-each-digit-run"),
        pytest.param("2024/0007", "20247", id="zeros-stripped-before-runs-merge"),
        pytest.param("100", "100", id="inner-zeros-kept"),
        pytest.param("INV-0", "INV0", id="single-zero-kept"),
    ],
)
def test_normalise_invoice_number(raw: str, normalised: str) -> None:
    assert normalise_invoice_number(raw) == normalised


def test_normalise_vat_drops_prefix_spaces_and_case() -> None:
    assert normalise_vat("gb 980 7806 84") == normalise_vat("980780684") == "980780684"
    assert normalise_vat("GBHA500") == "GBHA500"
    assert normalise_vat(None) == ""


@pytest.mark.parametrize(
    ("day_", "year"),
    [(dt.date(2025, 3, 31), 2024), (dt.date(2025, 4, 1), 2025), (dt.date(2026, 1, 1), 2025)],
)
def test_financial_year_runs_april_to_march(day_: dt.date, year: int) -> None:
    assert financial_year(day_) == year


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("INV1001", "INV1007", True),
        ("INV1001", "INV101", True),
        ("INV101", "INV1001", True),
        ("INV1001", "INV1001", False),
        ("INV1001", "INV1010", False),
        ("AB", "BA", False),
        ("", "A", True),
    ],
)
def test_one_edit_apart(a: str, b: str, expected: bool) -> None:
    assert one_edit_apart(a, b) is expected


def test_busy_supplier_amount_bucket_still_finds_one_edit_neighbours() -> None:
    """A supplier billing the same amount 40 times (numbers far apart) switches to the
    hashed index and still holds the one that is one edit from an earlier number."""
    numbers: list[str] = []
    candidate = 0
    while len(numbers) < 40:
        candidate += 1
        number = f"Q{candidate * 7919 % 100000}X"
        if not any(one_edit_apart(number, kept) for kept in numbers):
            numbers.append(number)
    docs = [
        invoice(number, day(n * 5), lines=[("1", "1", "10.00", "20")]) for n, number in enumerate(numbers)
    ]
    twin = numbers[5][:-1] + "Y"
    docs.append(invoice(twin, day(400), lines=[("1", "1", "10.00", "20")]))
    orders = [order(lines=[(1, "100", "10.00", "20", False)])]
    decisions = match_invoices(orders, [], docs)
    held = [d.invoice_number for d in decisions if d.decision != "approve"]
    assert held == [twin]
    assert numbers[5] in decisions[-1].reasons[0].message


def test_duplicate_po_numbers_in_order_book_are_an_error() -> None:
    with pytest.raises(ValueError, match="PO-1 appears more than once"):
        match_invoices([order(), order()], [], [invoice()])


def test_summary_counts_values_reasons_and_suppliers() -> None:
    docs = [
        invoice("INV-1", lines=[("1", "5", "10.00", "20")]),
        invoice("INV-2", day(10), lines=[("1", "5", "10.60", "20")]),
        invoice("INV-1", day(20), lines=[("1", "5", "10.00", "20")]),
    ]
    decisions: list[Decision] = match_invoices([order()], [receipt()], docs)
    summary = summarise(decisions)
    assert summary["counts"] == {"approve": 1, "hold": 1, "reject": 1}
    assert summary["values"]["approve"] == "60.00"
    assert summary["values"]["hold"] == "63.60"
    assert summary["top_reasons"][0]["code"] in {"PRICE_OVER_TOLERANCE", "DUPLICATE_INVOICE"}
    assert {r["code"] for r in summary["top_reasons"]} == {"PRICE_OVER_TOLERANCE", "DUPLICATE_INVOICE"}
    assert summary["by_supplier"] == [
        {"supplier_vat": SUPPLIER_A, "documents": 3, "approve": 1, "hold": 1, "reject": 1, "value": "183.60"}
    ]
