"""Edge inputs on which ``match_tables`` once disagreed with ``match_invoices``, found
by adversarial search (tests/test_match_tables_adversarial.py) and by reading the
column rules: the same PO number on adjacent orders, line numbers beyond the integer
keys, and a VAT group too large for the columns hiding a possible duplicate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.domain.match_tables import MatchTables, match_tables
from bots.domain.models import GoodsReceipt, Invoice, ReceiptLine
from tests.matching_builders import invoice, order, receipt
from tests.oracle.matching import match_invoices
from tests.test_match_tables_adversarial import Run, runs
from tests.test_match_tables_adversarial import _same as adversarial_same


def _outcome(call: Any) -> Any:
    try:
        return [d.to_dict() for d in call()]
    except Exception as error:  # the reference engine's error must be the same
        return repr(error)


def _same(orders: Any, receipts: Any, invoices: list[Invoice]) -> None:
    expected = _outcome(lambda: match_invoices(orders, receipts, invoices))
    got = _outcome(lambda: match_tables(MatchTables.from_models(orders, receipts, invoices)).decisions())
    assert got == expected


def test_the_same_po_number_on_two_consecutive_orders_is_an_error() -> None:
    """match_invoices raises ValueError; _encode only detects a PO number that comes
    back after another PO (its check counts runs of equal consecutive codes)."""
    orders = [order("PO-1"), order("PO-1", [(1, "5", "10.00", "20", False)])]
    with pytest.raises(ValueError, match="appears more than once"):
        match_invoices(orders, [receipt()], [invoice()])
    with pytest.raises(ValueError, match="appears more than once"):
        MatchTables.from_models(orders, [receipt()], [invoice()])


def test_a_receipt_line_number_beyond_2_20_is_not_another_pos_receipt() -> None:
    """rc_key = po_code * 2**20 + line_no: a receipt for PO-1 line 2**20 + 5 lands on
    PO-2 line 5 (the next PO code), so PO-2's invoice is approved instead of NOT_RECEIVED."""
    orders = [
        order("PO-1", [(1, "10", "10.00", "20", True)]),
        order("PO-2", [(5, "10", "10.00", "20", True)]),
    ]
    odd = GoodsReceipt(
        grn_number="GRN-1",
        po_number="PO-1",
        lines=[ReceiptLine(po_number="PO-1", line_no=2**20 + 5, quantity_received=Decimal(10))],
    )
    _same(orders, [odd], [invoice("INV-9", po="PO-2", lines=[("5", "10", "10.00", "20")])])


def test_a_vat_group_too_large_for_the_columns_leaves_the_gross_unknown() -> None:
    """A document whose 20% group overflows the columns (its other lines, zero-rated
    credits, keep the net sum small) gets a column gross without that group's VAT (£0
    instead of £120m); its supplier's other documents are not sent to the reference
    engine, so INV-Y (same supplier, same £120m gross, next day) loses its
    POSSIBLE_DUPLICATE hold."""
    x = invoice(
        "INV-X",
        dt.date(2025, 5, 1),
        po=None,
        totals=False,
        lines=[
            (None, "2000", "150000", "20"),
            (None, "2000", "150000", "20"),
            (None, "2000", "-150000", "0"),
            (None, "2000", "-150000", "0"),
        ],
    )
    y = invoice("INV-Y", dt.date(2025, 5, 2), po="PO-1", totals=False, lines=[("1", "1000", "100000", "20")])
    _same([order("PO-1", [(1, "1000", "100000", "20", False)])], [], [x, y])


@pytest.mark.parametrize("where", ["invoice_line", "order_line", "receipt_line"])
def test_line_numbers_beyond_int64_do_not_crash_the_load(where: str) -> None:
    """A 20-digit line reference (or PO / receipt line number) raises OverflowError in
    MatchTables._encode (np.array(..., dtype=np.int64)); the reference engine decides."""
    huge = 10**20
    orders = [order("PO-1", [(huge if where == "order_line" else 1, "10", "10.00", "20", False)])]
    receipts = []
    if where == "receipt_line":
        receipts = [
            GoodsReceipt(
                grn_number="GRN-1",
                po_number="PO-1",
                lines=[ReceiptLine(po_number="PO-1", line_no=huge, quantity_received=Decimal(1))],
            )
        ]
    ref = str(huge) if where == "invoice_line" else "1"
    _same(orders, receipts, [invoice(lines=[(ref, "10", "10.00", "20")])])


def test_bulk_columns_with_a_po_line_twice_are_two_orders_with_one_number() -> None:
    from benchmarks.bench_matching import generate, match_columns

    columns = match_columns(generate(40))
    lines = columns["order_lines"]
    for name in lines:
        lines[name].insert(1, lines[name][0])  # PO-0000000 line 1 again, adjacent
    with pytest.raises(ValueError, match="purchase order PO-0000000 appears more than once"):
        MatchTables.from_columns(**columns)


def test_an_empty_order_book_holds_every_invoice_as_the_reference_engine_does() -> None:
    """No order lines at all: every lookup misses (once an IndexError in the columns)."""
    _same([], [receipt()], [invoice(), invoice("INV-2", lines=[("1", "2", "10.00", "20")])])


# Knobs of the column-wise engine that test sizes never reach by themselves: the
# sorted fallbacks of the direct tables (sparse keys), and line blocks smaller than a
# document (a document's lines split across blocks).
KNOBS = {
    "sorted paths": {"_DIRECT_SLACK": -(10**12)},
    "blocks of 2 lines": {"_CHUNK_LINES": 2},
    "blocks of 3 lines, sorted paths": {"_CHUNK_LINES": 3, "_DIRECT_SLACK": -(10**12)},
}


@pytest.mark.parametrize("knobs", KNOBS.values(), ids=list(KNOBS))
def test_every_path_decides_as_the_reference_engine_on_the_named_scenarios(
    knobs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bots.domain.match_tables as module
    from tests.test_matching import SCENARIOS, Scenario

    for name, value in knobs.items():
        monkeypatch.setattr(module, name, value)
    for param in SCENARIOS:
        scenario = param.values[0]
        assert isinstance(scenario, Scenario)
        expected = _outcome(lambda s=scenario: match_invoices(s.orders, s.receipts, s.invoices, s.policy))
        got = _outcome(
            lambda s=scenario: match_tables(
                MatchTables.from_models(s.orders, s.receipts, s.invoices), s.policy
            ).decisions()
        )
        assert got == expected, scenario


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(run=runs(), knobs=st.sampled_from(list(KNOBS.values())))
def test_every_path_decides_as_the_reference_engine_on_adversarial_runs(
    run: Run, knobs: dict[str, int]
) -> None:
    import bots.domain.match_tables as module

    with pytest.MonkeyPatch.context() as patch:
        for name, value in knobs.items():
            patch.setattr(module, name, value)
        adversarial_same(run)


@pytest.mark.parametrize("block", [2, 3, 1 << 15])
def test_one_po_line_billed_twice_by_one_invoice_is_the_reference_engines(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two lines of one invoice on the same PO line, each within the order but together
    over it: the reference engine counts them cumulatively (over-billed); the column-wise
    rules see each line alone, so such a document must go to the reference engine, also
    when its lines sit in a later block of lines than the first."""
    import bots.domain.match_tables as module

    monkeypatch.setattr(module, "_CHUNK_LINES", block)
    orders = [
        order("PO-1", [(1, "10", "10.00", "20", False)]),
        order("PO-2", [(1, "10", "10.00", "20", False), (2, "5", "4.00", "20", False)]),
    ]
    invoices = [
        invoice("INV-1", po="PO-1", lines=[("1", "10", "10.00", "20")]),
        invoice(
            "INV-2",
            po="PO-2",
            lines=[("2", "5", "4.00", "20"), ("1", "6", "10.00", "20"), ("1", "6", "10.00", "20")],
        ),
    ]
    expected = match_invoices(orders, [], invoices)
    assert [d.decision for d in expected] == ["approve", "hold"]
    assert "QTY_OVER_ORDERED" in expected[1].codes
    result = match_tables(MatchTables.from_models(orders, [], invoices))
    assert result.decisions() == expected
    assert result.sequential_documents == 1
