"""Small builders of orders, receipts and invoices for the matching tests.

Totals are computed the way a correct UK VAT invoice states them (VAT per rate group,
rounded half-up), so a test only spells out what it gets wrong on purpose.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from bots.domain.models import (
    DocumentTotals,
    GoodsReceipt,
    Invoice,
    InvoiceLine,
    Party,
    POLine,
    PurchaseOrder,
    ReceiptLine,
)

SUPPLIER_A = "GB980780684"
SUPPLIER_B = "GB100000132"
D = Decimal
DAY = dt.date(2025, 5, 1)

# (po_line_no, quantity, unit_price, vat_rate, receipt_required)
POLineSpec = tuple[int, str, str, str, bool]
# (order_line_reference, quantity, unit_price, vat_rate[, vat_category])
InvLineSpec = tuple[str | None, str, str, str] | tuple[str | None, str, str, str, str]


def order(
    po: str = "PO-1",
    lines: Sequence[POLineSpec] = ((1, "10", "10.00", "20", True),),
    vat: str | None = SUPPLIER_A,
    currency: str = "GBP",
    item_codes: Sequence[str] = (),
) -> PurchaseOrder:
    return PurchaseOrder(
        po_number=po,
        supplier_id="SUP-1",
        supplier_vat=vat,
        currency=currency,
        lines=[
            POLine(
                line_no=no,
                item_code=item_codes[i] if i < len(item_codes) else "",
                quantity=D(qty),
                unit_price=D(price),
                vat_rate=D(rate),
                receipt_required=receipt,
            )
            for i, (no, qty, price, rate, receipt) in enumerate(lines)
        ],
    )


def receipt(po: str = "PO-1", line_no: int = 1, qty: str = "10", grn: str = "GRN-1") -> GoodsReceipt:
    return GoodsReceipt(
        grn_number=grn,
        po_number=po,
        lines=[ReceiptLine(po_number=po, line_no=line_no, quantity_received=D(qty))],
    )


def vat_of(lines: Sequence[InvoiceLine]) -> Decimal:
    groups: dict[Decimal, Decimal] = {}
    for line in lines:
        groups[line.vat_rate] = groups.get(line.vat_rate, D(0)) + line.net_amount
    return sum(
        ((net * rate / 100).quantize(D("0.01"), rounding=ROUND_HALF_UP) for rate, net in groups.items()),
        D("0.00"),
    )


def invoice(
    number: str = "INV-1",
    day: dt.date = DAY,
    po: str | None = "PO-1",
    lines: Sequence[InvLineSpec] = (("1", "10", "10.00", "20"),),
    vat: str | None = SUPPLIER_A,
    currency: str = "GBP",
    credit: bool = False,
    billing: str | None = None,
    tax_delta: str = "0",
    net_delta: str = "0",
    line_net_delta: str = "0",
    totals: bool = True,
    item_ids: Sequence[str | None] = (),
) -> Invoice:
    built = []
    for i, spec in enumerate(lines):
        ref, qty, price, rate = spec[:4]
        category = spec[4] if len(spec) > 4 else ("S" if D(rate) else "Z")  # type: ignore[misc]
        net = D(qty) * D(price) + (D(line_net_delta) if i == 0 else 0)
        built.append(
            InvoiceLine(
                line_id=str(i + 1),
                quantity=D(qty),
                unit_price=D(price),
                net_amount=net,
                vat_rate=D(rate),
                vat_category=category,
                order_line_reference=ref,
                seller_item_id=item_ids[i] if i < len(item_ids) else None,
            )
        )
    net_total = sum((ln.net_amount for ln in built), D(0)) + D(net_delta)
    tax = vat_of(built) + D(tax_delta)
    doc_totals = (
        DocumentTotals(
            line_extension=net_total,
            tax_exclusive=net_total,
            tax=tax,
            tax_inclusive=net_total + tax,
            payable=net_total + tax,
        )
        if totals
        else DocumentTotals()
    )
    return Invoice(
        document_type="credit_note" if credit else "invoice",
        invoice_number=number,
        issue_date=day,
        currency=currency,
        supplier=Party(name="Acme Medical", vat_number=vat),
        po_number=po,
        billing_reference=billing,
        lines=built,
        totals=doc_totals,
    )
