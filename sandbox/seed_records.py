"""The records of the sandbox's seed data, and the identifiers with check digits they carry.

Suppliers, items, orders, receipts, deliveries, invoices, contracts and new requisitions,
gathered in a :class:`Dataset`; GB VAT numbers (mod 97 / 9755) and GTIN-13s. Built by
:func:`sandbox.seed.generate`, written by :func:`sandbox.seed_database.write_database`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sandbox.ubl import Buyer, UblDocument, money

# Seeded history ends here (deterministic: never "now"); the portal's own clock is real.
ANCHOR = dt.datetime(2026, 10, 30, 17, 0, tzinfo=dt.UTC)
ZERO = Decimal("0")
_VAT_WEIGHTS = (8, 7, 6, 5, 4, 3, 2)


# --- identifiers ---------------------------------------------------------------------


def gb_vat(first_seven: str, scheme: str = "9755") -> str:
    """A GB VAT number whose two check digits satisfy HMRC's mod-97 (or 9755) rule."""
    total = sum(int(d) * w for d, w in zip(first_seven, _VAT_WEIGHTS, strict=True))
    if scheme == "9755":
        total += 55
    return f"GB{first_seven}{(-total) % 97:02d}"


def vat_is_valid(vat: str) -> bool:
    """Whether a ``GB`` + 9 digit VAT number passes the mod-97 or 9755 check."""
    digits = vat[2:] if vat.upper().startswith("GB") else vat
    if len(digits) != 9 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:7], _VAT_WEIGHTS, strict=True)) + int(digits[7:])
    return total % 97 == 0 or (total + 55) % 97 == 0


def gtin13(body12: str) -> str:
    """A GTIN-13: the 12 digits plus the GS1 mod-10 check digit."""
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def gtin_is_valid(code: str) -> bool:
    """Whether a 13-digit code has the right GS1 check digit."""
    return len(code) == 13 and code.isdigit() and gtin13(code[:12]) == code


# --- records -------------------------------------------------------------------------


@dataclass(slots=True)
class Supplier:
    supplier_id: str
    name: str
    vat: str
    companies_house: str
    street: str
    city: str
    postcode: str
    email: str
    sme: bool
    invoice_prefix: str


@dataclass(slots=True)
class Item:
    code: str
    gtin: str | None
    description: str
    supplier_id: str
    unit_price: Decimal
    vat_rate: Decimal
    receipt_required: bool
    category: str


@dataclass(slots=True)
class OrderLine:
    line_no: int
    item_code: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    receipt_required: bool
    gtin: str | None = None

    @property
    def net_amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


@dataclass(slots=True)
class Order:
    id: int
    po_number: str
    requisition_ref: str
    supplier_id: str
    cost_centre: str
    delivery_site: str
    need_by: dt.date
    created_at: dt.datetime
    lines: list[OrderLine]
    status: str = "open"

    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """Net, VAT (rounded once per rate) and gross."""
        groups: dict[Decimal, Decimal] = {}
        for line in self.lines:
            groups[line.vat_rate] = groups.get(line.vat_rate, ZERO) + line.net_amount
        net = sum(groups.values(), Decimal("0.00"))
        vat = sum((money(v * r / 100) for r, v in groups.items()), Decimal("0.00"))
        return net, vat, net + vat


@dataclass(slots=True)
class Receipt:
    id: int
    grn_number: str
    po_id: int
    po_number: str
    received_date: dt.date
    lines: list[tuple[int, Decimal]]


@dataclass(slots=True)
class Delivery:
    """Goods a supplier delivered and invoiced that the trust has not receipted yet.

    ``channel`` says how the delivery reaches the goods-receipts bot in the sample
    inputs: a PEPPOL despatch advice, a point-of-use scan, or nothing (the invoice
    stays held ``NOT_RECEIVED``).
    """

    po_number: str
    supplier_id: str
    despatch_id: str
    despatched: dt.date
    lines: list[OrderLine]
    channel: str  # despatch | scan | none


@dataclass(slots=True)
class InvoiceRecord:
    invoice_number: str
    document_type: str
    supplier_id: str
    supplier_vat: str
    po_number: str | None
    issue_date: dt.date
    received_at: dt.datetime
    scenario: str
    billing_reference: str | None
    document: UblDocument
    id: int = 0


@dataclass(slots=True)
class ContractRecord:
    contract_id: str
    title: str
    supplier_name: str
    supplier_vat: str
    companies_house: str
    buyer_ods: str
    cpv_codes: str
    procedure: str
    value_net: Decimal
    value_gross: Decimal
    start_date: dt.date
    end_date: dt.date
    max_end_date: dt.date
    kpis: tuple[str, ...]
    sme: bool
    filename: str
    document: bytes

    @property
    def kpi_count(self) -> int:
        return len(self.kpis)


@dataclass(slots=True)
class RequisitionLine:
    requisition_ref: str
    supplier_id: str
    supplier_vat: str
    cost_centre: str
    delivery_site: str
    need_by: dt.date
    item_code: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal


@dataclass
class Dataset:
    """Everything one seed produces."""

    seed: int
    buyer: Buyer
    suppliers: list[Supplier]
    items: list[Item]
    cost_centres: list[tuple[str, str]]
    sites: list[tuple[str, str]]
    orders: list[Order] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    invoices: list[InvoiceRecord] = field(default_factory=list)
    contracts: list[ContractRecord] = field(default_factory=list)
    new_requisitions: list[RequisitionLine] = field(default_factory=list)
    new_contracts: list[ContractRecord] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def suppliers_by_id(self) -> dict[str, Supplier]:
        return {s.supplier_id: s for s in self.suppliers}
