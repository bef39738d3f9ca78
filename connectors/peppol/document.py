"""What a PEPPOL BIS 3 document is once read: the UBL 2.1 namespaces, the error a document
that cannot be read raises, the document as stated (:class:`PeppolDocument`: parties,
lines, totals, findings, and its domain model), and the stable JSON shape of ``procbots
peppol read --json``. Reading is :mod:`connectors.peppol.read`, the EN 16931 arithmetic
:mod:`connectors.peppol.rules`, writing an Order :mod:`connectors.peppol.write`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias

from bots.domain.models import (
    CreditNote,
    DespatchAdvice,
    DocumentTotals,
    Invoice,
    Party,
    PurchaseOrder,
)

__all__ = [
    "CAC",
    "CBC",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ELEMENTS",
    "GLN_SCHEME",
    "GTIN_SCHEME",
    "NAMESPACES",
    "ORDER_CUSTOMIZATION_ID",
    "ORDER_PROFILE_ID",
    "RECEIPT_PROPERTY",
    "DocumentType",
    "DomainDocument",
    "Finding",
    "PeppolDocument",
    "PeppolError",
    "PeppolLine",
    "StatedTotals",
    "to_json_shape",
]

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NAMESPACES = {
    "cbc": CBC,
    "cac": CAC,
    "invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "credit_note": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "order": "urn:oasis:names:specification:ubl:schema:xsd:Order-2",
    "despatch_advice": "urn:oasis:names:specification:ubl:schema:xsd:DespatchAdvice-2",
}
"""The UBL 2.1 namespaces this module reads, by prefix or document type."""

DocumentType: TypeAlias = Literal["invoice", "credit_note", "order", "despatch_advice"]

_ROOTS: dict[str, DocumentType] = {
    f"{{{NAMESPACES['invoice']}}}Invoice": "invoice",
    f"{{{NAMESPACES['credit_note']}}}CreditNote": "credit_note",
    f"{{{NAMESPACES['order']}}}Order": "order",
    f"{{{NAMESPACES['despatch_advice']}}}DespatchAdvice": "despatch_advice",
}

ORDER_CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:order:3"
ORDER_PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:order_only:3"

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""Largest document read (bytes); PEPPOL's own transport limit is 100 MB with
attachments, invoices without attachments are far below this."""
DEFAULT_MAX_ELEMENTS = 200_000
"""Most XML elements read (about 6,000 invoice lines); bounds memory and time."""

GTIN_SCHEME = "0160"  # ISO 6523 ICD of GS1 GTIN
GLN_SCHEME = "0088"  # ISO 6523 ICD of GS1 GLN
RECEIPT_PROPERTY = "ReceiptRequired"
"""The AdditionalItemProperty name that carries a purchase order line's receipt_required."""


class PeppolError(ValueError):
    """A document that cannot be read: malformed, unsafe, the wrong kind, or missing or
    bad in a mandatory element.

    Attributes:
        source: the file name (or ``<bytes>``).
        path: the element, XPath-like with the document's prefixes
            (``/Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity``), or ``None`` when the
            problem is the whole file.
        reason: what is wrong, for a procurement officer.
    """

    def __init__(self, source: str, path: str | None, reason: str) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        super().__init__(f"{source}: {path}: {reason}" if path else f"{source}: {reason}")


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a reader should know about a document that still reads: an EN 16931
    arithmetic rule not met (``BR-CO-10`` ...) or an identifier with a bad check digit
    (``INVALID_GB_VAT``, ``INVALID_GLN``, ``INVALID_GTIN``). Always a warning."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PeppolLine:
    """One document line as stated (invoice, credit note, order or despatch line).

    ``price`` is the document's PriceAmount for ``base_quantity`` units (``None`` on a
    despatch advice); ``allowances``/``charges`` are the line-level sums that make up
    ``net_amount`` together with quantity and price.
    """

    line_id: str
    quantity: Decimal
    unit_code: str | None
    price: Decimal | None
    base_quantity: Decimal | None
    net_amount: Decimal | None
    item_name: str
    gtin: str | None
    seller_item_id: str | None
    vat_category: str | None
    vat_percent: Decimal | None
    order_line_reference: str | None
    allowances: Decimal = Decimal(0)
    charges: Decimal = Decimal(0)
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def unit_price(self) -> Decimal | None:
        """Price of one unit: PriceAmount divided by BaseQuantity when one is given."""
        if self.price is None:
            return None
        if self.base_quantity in (None, 0):
            return self.price
        assert self.base_quantity is not None
        return self.price / self.base_quantity


@dataclass(frozen=True, slots=True)
class StatedTotals:
    """Document totals exactly as stated; ``None`` where the document says nothing."""

    line_extension: Decimal | None = None
    allowances: Decimal | None = None
    charges: Decimal | None = None
    tax_exclusive: Decimal | None = None
    tax: Decimal | None = None
    tax_inclusive: Decimal | None = None
    prepaid: Decimal | None = None
    rounding: Decimal | None = None
    payable: Decimal | None = None

    def as_model(self) -> DocumentTotals:
        """The domain model, with absent totals as zero."""
        return DocumentTotals(
            **{name: (getattr(self, name) or Decimal(0)) for name in DocumentTotals.model_fields}
        )


DomainDocument: TypeAlias = Invoice | CreditNote | PurchaseOrder | DespatchAdvice


@dataclass(frozen=True)
class PeppolDocument:
    """A PEPPOL document as read: what it states, the domain model, and findings.

    ``model`` is an :class:`~bots.domain.models.Invoice`, :class:`~bots.domain.models.CreditNote`,
    :class:`~bots.domain.models.PurchaseOrder` or :class:`~bots.domain.models.DespatchAdvice`.
    """

    document_type: DocumentType
    id: str
    issue_date: dt.date
    currency: str | None
    supplier: Party
    buyer: Party
    order_reference: str | None
    billing_reference: str | None
    lines: tuple[PeppolLine, ...]
    totals: StatedTotals
    model: DomainDocument
    findings: tuple[Finding, ...] = ()
    type_code: str | None = None
    customization_id: str | None = None
    profile_id: str | None = None
    source: str | None = None


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _party_json(party: Party) -> dict[str, str | None]:
    return {"name": party.name or None, "vat_number": party.vat_number, "endpoint_id": party.endpoint_id}


def to_json_shape(doc: PeppolDocument) -> dict[str, Any]:
    """The stable JSON shape of ``procbots peppol read --json`` (see ARCHITECTURE.md).

    Amounts and quantities are decimal strings as the document states them; elements
    the document does not carry are ``null``.
    """
    return {
        "document_type": doc.document_type,
        "id": doc.id,
        "issue_date": doc.issue_date.isoformat(),
        "currency": doc.currency,
        "supplier": _party_json(doc.supplier),
        "buyer": _party_json(doc.buyer),
        "order_reference": doc.order_reference,
        "billing_reference": doc.billing_reference,
        "lines": [
            {
                "id": line.line_id,
                "quantity": _amount(line.quantity),
                "unit_code": line.unit_code,
                "price": _amount(line.price),
                "net_amount": _amount(line.net_amount),
                "item": {
                    "name": line.item_name or None,
                    "gtin": line.gtin,
                    "seller_item_id": line.seller_item_id,
                },
                "vat": {"category": line.vat_category, "percent": _amount(line.vat_percent)},
                "order_line_reference": line.order_line_reference,
            }
            for line in doc.lines
        ],
        "totals": {
            name: _amount(getattr(doc.totals, name))
            for name in (
                "line_extension",
                "allowances",
                "charges",
                "tax_exclusive",
                "tax",
                "tax_inclusive",
                "prepaid",
                "rounding",
                "payable",
            )
        },
        "findings": [{"code": f.code, "message": f.message} for f in doc.findings],
    }
