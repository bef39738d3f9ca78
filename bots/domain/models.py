"""Domain models of NHS procurement: suppliers, purchase orders, goods receipts,
invoices and credit notes, contracts. Pure pydantic v2, no I/O.

Money is :class:`~decimal.Decimal` in GBP unless a document says otherwise; amounts
are rounded half-up to the penny only where a document states a total, never while
accumulating. Dates are :class:`datetime.date`; instants are timezone-aware UTC.

Example:
    >>> order = PurchaseOrder(
    ...     requisition_ref="REQ-0001", supplier_id="SUP-0001", cost_centre="CC100",
    ...     delivery_site="RX1AB",
    ...     lines=[POLine(line_no=1, item_code="5012345678900", description="Gloves",
    ...                   quantity=Decimal("10"), unit_price=Decimal("4.50"), vat_rate=Decimal("20"))],
    ... )
    >>> order.gross_total
    Decimal('54.00')
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PENNY",
    "Contract",
    "CreditNote",
    "DespatchAdvice",
    "DespatchLine",
    "DocumentTotals",
    "GoodsReceipt",
    "Invoice",
    "InvoiceLine",
    "Money",
    "POLine",
    "Party",
    "PurchaseOrder",
    "Quantity",
    "ReceiptLine",
    "Supplier",
    "money",
]

PENNY = Decimal("0.01")


def money(value: Decimal | int | str) -> Decimal:
    """Round an amount half-up to the penny, as invoices and orders state totals."""
    return Decimal(value).quantize(PENNY, rounding=ROUND_HALF_UP)


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


Money = Annotated[Decimal, AfterValidator(_finite)]
"""An amount of money: a finite Decimal (never float)."""
Quantity = Annotated[Decimal, AfterValidator(_finite)]
"""A quantity of units: a finite Decimal."""
VatRate = Annotated[Decimal, Field(ge=0, le=100), AfterValidator(_finite)]
"""A VAT percentage, e.g. ``Decimal("20")``."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Party(_Model):
    """A trading party as a document names it (supplier or buyer)."""

    name: str = ""
    vat_number: str | None = None
    endpoint_id: str | None = None
    endpoint_scheme: str | None = None
    companies_house: str | None = None
    gln: str | None = None
    ods_code: str | None = None


class Supplier(_Model):
    """A supplier on the trust's vendor master."""

    supplier_id: str
    name: str
    vat_number: str | None = None
    companies_house: str | None = None
    gln: str | None = None
    sme: bool = False
    vcse: bool = False


class POLine(_Model):
    """One line of a purchase order."""

    line_no: int = Field(ge=1)
    item_code: str = ""
    description: str = ""
    quantity: Quantity = Field(gt=0)
    unit_price: Money = Field(ge=0)
    vat_rate: VatRate = Decimal("20")
    unit_code: str = "EA"
    receipt_required: bool = True

    @property
    def net_amount(self) -> Decimal:
        """Quantity times unit price, to the penny."""
        return money(self.quantity * self.unit_price)

    @property
    def vat_amount(self) -> Decimal:
        """VAT on this line alone (orders total VAT per rate group; see PurchaseOrder)."""
        return money(self.net_amount * self.vat_rate / 100)


class PurchaseOrder(_Model):
    """A purchase order, before (no ``po_number``) or after it is raised in the portal."""

    po_number: str | None = None
    requisition_ref: str | None = None
    supplier_id: str = ""
    supplier_name: str = ""
    supplier_vat: str | None = None
    buyer_name: str = ""
    buyer_ods: str | None = None
    cost_centre: str = ""
    delivery_site: str = ""
    need_by: dt.date | None = None
    issue_date: dt.date | None = None
    currency: str = "GBP"
    lines: list[POLine] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_line_numbers(self) -> PurchaseOrder:
        numbers = [line.line_no for line in self.lines]
        if len(numbers) != len(set(numbers)):
            raise ValueError(f"line numbers repeat: {sorted(numbers)}")
        return self

    @property
    def net_total(self) -> Decimal:
        """Sum of line net amounts."""
        return sum((line.net_amount for line in self.lines), Decimal("0.00"))

    @property
    def vat_total(self) -> Decimal:
        """VAT computed per rate group, as UK VAT invoices do."""
        groups: dict[Decimal, Decimal] = {}
        for line in self.lines:
            groups[line.vat_rate] = groups.get(line.vat_rate, Decimal(0)) + line.net_amount
        return sum((money(net * rate / 100) for rate, net in groups.items()), Decimal("0.00"))

    @property
    def gross_total(self) -> Decimal:
        """Net plus VAT."""
        return self.net_total + self.vat_total


class ReceiptLine(_Model):
    """Goods received against one purchase-order line."""

    po_number: str
    line_no: int = Field(ge=1)
    quantity_received: Quantity
    received_date: dt.date | None = None


class GoodsReceipt(_Model):
    """A goods received note (GRN) for one purchase order."""

    grn_number: str
    po_number: str
    received_date: dt.date | None = None
    lines: list[ReceiptLine] = Field(min_length=1)


class InvoiceLine(_Model):
    """One invoice or credit-note line.

    ``order_line_reference`` is the purchase-order line number it bills (PEPPOL
    OrderLineReference/LineID), ``None`` when the supplier did not say.
    """

    line_id: str
    quantity: Quantity
    unit_code: str = "EA"
    unit_price: Money
    net_amount: Money
    vat_category: str = "S"
    vat_rate: VatRate = Decimal("20")
    item_name: str = ""
    gtin: str | None = None
    seller_item_id: str | None = None
    order_line_reference: str | None = None


class DocumentTotals(_Model):
    """Document-level totals as stated (EN 16931 BG-22)."""

    line_extension: Money = Decimal("0")
    allowances: Money = Decimal("0")
    charges: Money = Decimal("0")
    tax_exclusive: Money = Decimal("0")
    tax: Money = Decimal("0")
    tax_inclusive: Money = Decimal("0")
    prepaid: Money = Decimal("0")
    rounding: Money = Decimal("0")
    payable: Money = Decimal("0")


class Invoice(_Model):
    """A supplier invoice (or, with ``document_type="credit_note"``, a credit note).

    Credit-note quantities and amounts are stored as the document states them
    (positive); matching treats them as reductions. A negative invoice keeps its
    negative quantities.
    """

    document_type: Literal["invoice", "credit_note"] = "invoice"
    invoice_number: str
    issue_date: dt.date
    currency: str = "GBP"
    supplier: Party = Party()
    buyer: Party = Party()
    po_number: str | None = None
    billing_reference: str | None = None
    lines: list[InvoiceLine] = Field(default_factory=list)
    totals: DocumentTotals = DocumentTotals()
    source: str | None = None

    @property
    def supplier_vat(self) -> str | None:
        """The supplier's VAT number, the key of duplicate detection."""
        return self.supplier.vat_number

    @property
    def is_credit(self) -> bool:
        """True for credit notes."""
        return self.document_type == "credit_note"


class CreditNote(Invoice):
    """A credit note: an Invoice whose document type is ``credit_note``."""

    document_type: Literal["invoice", "credit_note"] = "credit_note"


class DespatchLine(_Model):
    """One line of a despatch advice: what the supplier shipped against an order line."""

    line_id: str
    quantity: Quantity
    unit_code: str = "EA"
    item_name: str = ""
    gtin: str | None = None
    seller_item_id: str | None = None
    order_line_reference: str | None = None


class DespatchAdvice(_Model):
    """A PEPPOL despatch advice (advance shipping notice)."""

    despatch_id: str
    issue_date: dt.date
    order_reference: str | None = None
    supplier: Party = Party()
    buyer: Party = Party()
    lines: list[DespatchLine] = Field(default_factory=list)


Procedure = Literal[
    "open",
    "competitive_flexible",
    "direct_award",
    "framework_call_off",
    "dynamic_market",
    "below_threshold",
]


class Contract(_Model):
    """Contract details as the Procurement Act 2023 asks a contracting authority to publish."""

    contract_id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1)
    buyer_name: str = ""
    buyer_ods: str = ""
    supplier_name: str = Field(min_length=1)
    supplier_vat: str | None = None
    companies_house: str | None = None
    cpv_codes: list[str] = Field(default_factory=list)
    procedure: Procedure = "open"
    value_net: Money = Field(ge=0)
    value_gross: Money = Field(ge=0)
    start_date: dt.date
    end_date: dt.date
    max_end_date: dt.date | None = None
    kpis: list[str] = Field(default_factory=list)
    document: str = ""
    sme: bool = False
    vcse: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.max_end_date is not None and self.max_end_date < self.end_date:
            raise ValueError(f"max_end_date {self.max_end_date} is before end_date {self.end_date}")
        if self.value_gross < self.value_net:
            raise ValueError(f"value_gross {self.value_gross} is below value_net {self.value_net}")
        return self
