"""Properties of invoice matching over generated order books and invoice runs:
the order of the inputs never changes a decision, and scaling every quantity and
price consistently never turns an approval into a hold."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.domain.matching import MatchingPolicy
from bots.domain.models import GoodsReceipt, Invoice, PurchaseOrder
from tests.matching_builders import SUPPLIER_A, SUPPLIER_B, invoice, order, receipt
from tests.oracle.differential import match_both

D = Decimal
START = dt.date(2025, 3, 25)
PRICES = ["1.00", "9.99", "10.00", "250.00", "1000.00"]
# Invoice price as a share of the PO price: under, equal, within and over tolerance.
PRICE_FACTORS = ["0.95", "1", "1.004", "1.015", "1.03"]
NUMBERS = ["INV-1", "inv 01", "INV-2", "INV-12", "X-9", "INV-100", "INV-1000"]


@dataclass
class World:
    orders: list[PurchaseOrder]
    receipts: list[GoodsReceipt]
    invoices: list[Invoice]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    orders: list[PurchaseOrder] = []
    receipts: list[GoodsReceipt] = []
    po_lines: list[tuple[str, int, str]] = []
    for p in range(draw(st.integers(1, 3))):
        po = f"PO-{p + 1}"
        specs = []
        for n in range(1, draw(st.integers(1, 3)) + 1):
            qty = draw(st.integers(1, 20))
            price = draw(st.sampled_from(PRICES))
            specs.append((n, str(qty), price, "20", draw(st.booleans())))
            po_lines.append((po, n, price))
            for g in range(draw(st.sampled_from([0, 1, 1, 2, 2]))):
                received = draw(st.sampled_from([qty, qty, max(1, qty // 2), qty + 2]))
                receipts.append(receipt(po, n, str(received), grn=f"GRN-{p}-{n}-{g}"))
        orders.append(order(po, specs, vat=SUPPLIER_A if p != 2 else SUPPLIER_B))
    invoices = []
    for _ in range(draw(st.integers(1, 8))):
        po, _line, _price = draw(st.sampled_from(po_lines))
        po_vat = next(o.supplier_vat for o in orders if o.po_number == po)
        lines = []
        for _ in range(draw(st.integers(1, 2))):
            target_po_line = draw(st.sampled_from([pl for pl in po_lines if pl[0] == po]))
            factor = D(draw(st.sampled_from(PRICE_FACTORS)))
            price = (D(target_po_line[2]) * factor).quantize(D("0.01"))
            lines.append((str(target_po_line[1]), str(draw(st.integers(1, 8))), str(price), "20"))
        credit = draw(st.integers(0, 4)) == 0
        invoices.append(
            invoice(
                draw(st.sampled_from(NUMBERS)) + ("-CN" if credit else ""),
                START + dt.timedelta(days=draw(st.integers(0, 12))),
                po=draw(st.sampled_from([po] * 8 + [None, "PO-404"])),
                lines=lines,
                vat=draw(
                    st.sampled_from([po_vat] * 5 + [SUPPLIER_A if po_vat == SUPPLIER_B else SUPPLIER_B])
                ),
                credit=credit,
                billing=draw(st.sampled_from([None, *NUMBERS])) if credit else None,
            )
        )
    return World(orders, receipts, invoices)


def _run(world: World, policy: MatchingPolicy | None = None) -> list[dict[str, object]]:
    # The oracle's decisions, the product engine asserted equal: every property holds for both.
    return [d.to_dict() for d in match_both(world.orders, world.receipts, world.invoices, policy)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_input_order_never_changes_decisions(world: World, data: st.DataObject) -> None:
    """Shuffling orders, receipts and invoices gives the same decisions, reasons and notes."""
    expected = _run(world)
    shuffled = World(
        data.draw(st.permutations(world.orders)),
        data.draw(st.permutations(world.receipts)),
        data.draw(st.permutations(world.invoices)),
    )
    assert _run(shuffled) == expected
    # procbots' own path (the column-wise engine) on the shuffled inputs: the same list.
    from bots.domain.match_tables import match_documents

    bulk = match_documents(shuffled.orders, shuffled.receipts, shuffled.invoices)
    assert [d.to_dict() for d in bulk] == expected


def _scale(world: World, qty_factor: int, price_factor: Decimal) -> World:
    """Every quantity times ``qty_factor``, every price times ``price_factor``; line
    nets and the stated totals recomputed, so the VAT arithmetic stays consistent."""
    orders = [
        order(
            o.po_number or "",
            [
                (
                    ln.line_no,
                    str(ln.quantity * qty_factor),
                    str(ln.unit_price * price_factor),
                    str(ln.vat_rate),
                    ln.receipt_required,
                )
                for ln in o.lines
            ],
            vat=o.supplier_vat,
        )
        for o in world.orders
    ]
    receipts = [
        receipt(r.po_number, r.lines[0].line_no, str(r.lines[0].quantity_received * qty_factor), r.grn_number)
        for r in world.receipts
    ]
    invoices = [
        invoice(
            i.invoice_number,
            i.issue_date,
            po=i.po_number,
            lines=[
                (
                    ln.order_line_reference,
                    str(ln.quantity * qty_factor),
                    str(ln.unit_price * price_factor),
                    str(ln.vat_rate),
                )
                for ln in i.lines
            ],
            vat=i.supplier.vat_number,
            credit=i.is_credit,
            billing=i.billing_reference,
        )
        for i in world.invoices
    ]
    return World(orders, receipts, invoices)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=worlds(),
    qty_factor=st.integers(1, 7),
    price_factor=st.sampled_from(["0.5", "1", "1.1", "3", "12.5"]),
)
def test_consistent_scaling_never_turns_an_approval_into_a_hold(
    world: World, qty_factor: int, price_factor: str
) -> None:
    """Scaled quantities and prices (and the absolute price tolerance with the prices,
    the only money amount the rules compare unit prices against) keep every approval."""
    factor = D(price_factor)
    base = MatchingPolicy()
    scaled_policy = MatchingPolicy(price_tolerance_abs=base.price_tolerance_abs * factor)
    before = _run(world, base)
    after = _run(_scale(world, qty_factor, factor), scaled_policy)
    assert [d["invoice_number"] for d in after] == [d["invoice_number"] for d in before]
    for old, new in zip(before, after, strict=True):
        if old["decision"] == "approve":
            assert new["decision"] == "approve", (old, new)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), qty_factor=st.integers(1, 7))
def test_scaling_quantities_alone_keeps_every_approval(world: World, qty_factor: int) -> None:
    """Ordering, receiving and invoicing k times as much of everything keeps every
    approval under the default policy (the tolerances are per unit or a percentage)."""
    before = [d["decision"] for d in _run(world)]
    after = [d["decision"] for d in _run(_scale(world, qty_factor, D(1)))]
    approvals_before = [i for i, d in enumerate(before) if d == "approve"]
    assert all(after[i] == "approve" for i in approvals_before)
