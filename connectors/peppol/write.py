"""Writing a PEPPOL BIS Order 3 (UBL 2.1 Order) from a :class:`~bots.domain.models.PurchaseOrder`;
:func:`connectors.peppol.read.read_document` reads it back to an equal order."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from bots.domain.identifiers import check_gtin
from bots.domain.models import Party, PurchaseOrder
from connectors.peppol.document import (
    CAC,
    CBC,
    GLN_SCHEME,
    GTIN_SCHEME,
    NAMESPACES,
    ORDER_CUSTOMIZATION_ID,
    ORDER_PROFILE_ID,
    RECEIPT_PROPERTY,
)

__all__ = ["write_order"]

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LONDON = ZoneInfo("Europe/London")


class _Writer:
    """A tiny XML writer: explicit prefixes, stable indentation, strict escaping."""

    def __init__(self) -> None:
        self.parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        self.depth = 0

    @staticmethod
    def _clean(text: str, what: str) -> str:
        if bad := _XML_ILLEGAL.search(text):
            raise ValueError(f"{what}: character {bad.group()!r} cannot be written in XML")
        # A carriage return would come back as a newline; the reference keeps it.
        return escape(text).replace("\r", "&#13;")

    def _attrs(self, tag: str, attrs: dict[str, str | None]) -> str:
        return "".join(
            f" {k}={quoteattr(self._clean(v, f'{tag}@{k}'))}" for k, v in attrs.items() if v is not None
        )

    def open(self, tag: str, **attrs: str | None) -> None:
        self.parts.append(f"{'  ' * self.depth}<{tag}{self._attrs(tag, attrs)}>\n")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.parts.append(f"{'  ' * self.depth}</{tag}>\n")

    def leaf(self, tag: str, text: str | Decimal | None, **attrs: str | None) -> None:
        if text is None:
            return
        value = format(text, "f") if isinstance(text, Decimal) else text
        self.parts.append(
            f"{'  ' * self.depth}<{tag}{self._attrs(tag, attrs)}>{self._clean(value, tag)}</{tag}>\n"
        )

    def result(self) -> bytes:
        return "".join(self.parts).encode("utf-8")


def _write_party(
    w: _Writer,
    party: Party,
    *,
    name: str,
    vat: str | None,
    identification: str | None,
) -> None:
    w.open("cac:Party")
    if party.endpoint_id:
        w.leaf("cbc:EndpointID", party.endpoint_id, schemeID=party.endpoint_scheme or GLN_SCHEME)
    if identification:
        w.open("cac:PartyIdentification")
        # No schemeID: ODS codes and vendor-master ids have no ISO 6523 code.
        w.leaf("cbc:ID", identification)
        w.close("cac:PartyIdentification")
    if name:
        w.open("cac:PartyName")
        w.leaf("cbc:Name", name)
        w.close("cac:PartyName")
    if vat:
        w.open("cac:PartyTaxScheme")
        w.leaf("cbc:CompanyID", vat)
        w.open("cac:TaxScheme")
        w.leaf("cbc:ID", "VAT")
        w.close("cac:TaxScheme")
        w.close("cac:PartyTaxScheme")
    w.open("cac:PartyLegalEntity")
    w.leaf("cbc:RegistrationName", name)
    w.close("cac:PartyLegalEntity")
    w.close("cac:Party")


def _vat_category(rate: Decimal) -> str:
    return "Z" if rate == 0 else "S"


def write_order(
    po: PurchaseOrder,
    *,
    buyer: Party,
    supplier: Party,
    issue_date: dt.date | None = None,
    profile_id: str = ORDER_PROFILE_ID,
) -> bytes:
    """Writes a PEPPOL BIS Order 3 (UBL 2.1 Order) for a raised purchase order.

    The order's own fields win over the parties' (``po.supplier_name`` before
    ``supplier.name``). Where things go: ``requisition_ref`` -> CustomerReference,
    ``cost_centre`` -> AccountingCost, ``supplier_id`` -> the seller's
    PartyIdentification, ``buyer_ods`` -> the buyer's PartyIdentification (no scheme:
    ODS has no ISO 6523 code), ``delivery_site`` -> Delivery/DeliveryLocation/ID,
    ``need_by`` -> RequestedDeliveryPeriod/EndDate, ``item_code`` -> SellersItemIdentification
    (and StandardItemIdentification, scheme 0160, when it is a valid GTIN), and
    ``receipt_required`` -> an AdditionalItemProperty ``ReceiptRequired``.
    :func:`read_document` reads the result back to an equal ``PurchaseOrder``.

    Args:
        po: the purchase order; it needs a ``po_number``.
        buyer: the trust (endpoint, GLN, VAT number).
        supplier: the supplier (endpoint, GLN, VAT number).
        issue_date: defaults to ``po.issue_date``, else today in Europe/London.
        profile_id: the BIS profile (order only by default).

    Raises:
        ValueError: no ``po_number``, or text that XML cannot carry.

    Example:
        >>> xml = write_order(po, buyer=Party(name="Example NHS Trust", endpoint_id="5000000000000"),
        ...                   supplier=Party(name="Acme Medical Ltd"))  # doctest: +SKIP
        >>> read_document(xml).model == po  # doctest: +SKIP
        True
    """
    if not po.po_number:
        raise ValueError("write_order: the purchase order has no po_number yet")
    issued = issue_date or po.issue_date or dt.datetime.now(_LONDON).date()
    currency = po.currency
    w = _Writer()
    w.open(
        "Order",
        xmlns=NAMESPACES["order"],
        **{"xmlns:cac": CAC, "xmlns:cbc": CBC},
    )
    w.leaf("cbc:CustomizationID", ORDER_CUSTOMIZATION_ID)
    w.leaf("cbc:ProfileID", profile_id)
    w.leaf("cbc:ID", po.po_number)
    w.leaf("cbc:IssueDate", issued.isoformat())
    w.leaf("cbc:OrderTypeCode", "220")
    w.leaf("cbc:DocumentCurrencyCode", currency)
    w.leaf("cbc:CustomerReference", po.requisition_ref or None)
    w.leaf("cbc:AccountingCost", po.cost_centre or None)

    w.open("cac:BuyerCustomerParty")
    _write_party(
        w,
        buyer,
        name=po.buyer_name or buyer.name,
        vat=buyer.vat_number,
        identification=po.buyer_ods or buyer.ods_code,
    )
    w.close("cac:BuyerCustomerParty")
    w.open("cac:SellerSupplierParty")
    _write_party(
        w,
        supplier,
        name=po.supplier_name or supplier.name,
        vat=po.supplier_vat or supplier.vat_number,
        identification=po.supplier_id,
    )
    w.close("cac:SellerSupplierParty")

    if po.delivery_site or po.need_by:
        w.open("cac:Delivery")
        if po.delivery_site:
            w.open("cac:DeliveryLocation")
            w.leaf("cbc:ID", po.delivery_site)
            w.close("cac:DeliveryLocation")
        if po.need_by:
            w.open("cac:RequestedDeliveryPeriod")
            w.leaf("cbc:EndDate", po.need_by.isoformat())
            w.close("cac:RequestedDeliveryPeriod")
        w.close("cac:Delivery")

    w.open("cac:TaxTotal")
    w.leaf("cbc:TaxAmount", po.vat_total, currencyID=currency)
    w.close("cac:TaxTotal")
    w.open("cac:AnticipatedMonetaryTotal")
    w.leaf("cbc:LineExtensionAmount", po.net_total, currencyID=currency)
    w.leaf("cbc:TaxExclusiveAmount", po.net_total, currencyID=currency)
    w.leaf("cbc:TaxInclusiveAmount", po.gross_total, currencyID=currency)
    w.leaf("cbc:PayableAmount", po.gross_total, currencyID=currency)
    w.close("cac:AnticipatedMonetaryTotal")

    for line in po.lines:
        w.open("cac:OrderLine")
        w.open("cac:LineItem")
        w.leaf("cbc:ID", str(line.line_no))
        w.leaf("cbc:Quantity", line.quantity, unitCode=line.unit_code)
        w.leaf("cbc:LineExtensionAmount", line.net_amount, currencyID=currency)
        w.open("cac:Price")
        w.leaf("cbc:PriceAmount", line.unit_price, currencyID=currency)
        w.close("cac:Price")
        w.open("cac:Item")
        w.leaf("cbc:Name", line.description or line.item_code)
        if line.item_code:
            w.open("cac:SellersItemIdentification")
            w.leaf("cbc:ID", line.item_code)
            w.close("cac:SellersItemIdentification")
            if check_gtin(line.item_code).valid:
                w.open("cac:StandardItemIdentification")
                w.leaf("cbc:ID", line.item_code, schemeID=GTIN_SCHEME)
                w.close("cac:StandardItemIdentification")
        w.open("cac:ClassifiedTaxCategory")
        w.leaf("cbc:ID", _vat_category(line.vat_rate))
        w.leaf("cbc:Percent", line.vat_rate)
        w.open("cac:TaxScheme")
        w.leaf("cbc:ID", "VAT")
        w.close("cac:TaxScheme")
        w.close("cac:ClassifiedTaxCategory")
        w.open("cac:AdditionalItemProperty")
        w.leaf("cbc:Name", RECEIPT_PROPERTY)
        w.leaf("cbc:Value", "true" if line.receipt_required else "false")
        w.close("cac:AdditionalItemProperty")
        w.close("cac:Item")
        w.close("cac:LineItem")
        w.close("cac:OrderLine")
    w.close("Order")
    return w.result()
