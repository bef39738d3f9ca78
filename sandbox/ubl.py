"""PEPPOL BIS Billing 3.0 (UBL 2.1) invoices and credit notes, and BIS Despatch Advice 3,
written from a template.

The sandbox stores every supplier document in this form and offers it for download,
as a trust's e-invoicing inbox does. Amounts are ``Decimal``, written as stated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

__all__ = ["Buyer", "UblDocument", "UblLine", "parse_ubl", "render_despatch", "render_ubl", "tax_groups"]

PENNY = Decimal("0.01")
NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}


def money(value: Decimal) -> Decimal:
    """Half-up to the penny, as documents state totals."""
    return value.quantize(PENNY, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Buyer:
    """The trust: name, VAT number, GLN endpoint, address."""

    name: str
    vat: str
    gln: str
    ods: str
    street: str
    city: str
    postcode: str


@dataclass
class UblLine:
    """One invoice or credit note line against a PO line."""

    line_id: int
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    item_name: str
    seller_item_id: str
    gtin: str | None
    order_line_ref: int | None

    @property
    def net_amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


@dataclass
class UblDocument:
    """What the template needs to write one document."""

    document_type: str  # invoice | credit_note
    number: str
    issue_date: dt.date
    supplier_name: str
    supplier_vat: str
    supplier_companies_house: str
    supplier_street: str
    supplier_city: str
    supplier_postcode: str
    buyer: Buyer
    order_reference: str | None
    buyer_reference: str
    lines: list[UblLine]
    billing_reference: str | None = None
    billing_reference_date: dt.date | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def net_total(self) -> Decimal:
        return sum((line.net_amount for line in self.lines), Decimal("0.00"))

    @property
    def vat_total(self) -> Decimal:
        return sum((tax for _, _, tax in tax_groups(self.lines)), Decimal("0.00"))

    @property
    def gross_total(self) -> Decimal:
        return self.net_total + self.vat_total


def tax_category(rate: Decimal) -> str:
    """EN 16931 VAT category: S (standard/reduced) or Z (zero rated)."""
    return "Z" if rate == 0 else "S"


def tax_groups(lines: list[UblLine]) -> list[tuple[Decimal, Decimal, Decimal]]:
    """Per VAT rate: (rate, taxable amount, tax rounded once per group)."""
    groups: dict[Decimal, Decimal] = {}
    for line in lines:
        groups[line.vat_rate] = groups.get(line.vat_rate, Decimal("0.00")) + line.net_amount
    return [(rate, net, money(net * rate / 100)) for rate, net in sorted(groups.items(), reverse=True)]


def _amount(tag: str, value: Decimal) -> str:
    return f'<cbc:{tag} currencyID="GBP">{value:.2f}</cbc:{tag}>'


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def render_despatch(
    number: str,
    issue_date: dt.date,
    order_reference: str | None,
    supplier_name: str,
    supplier_vat: str,
    buyer: Buyer,
    lines: list[UblLine],
) -> str:
    """A PEPPOL BIS Despatch Advice 3 (UBL 2.1): what a supplier shipped against an order.

    Only quantity, order line, item name, seller's item ID and GTIN of each line are
    used; the lines' prices are not part of a despatch advice.
    """
    e = escape
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<DespatchAdvice xmlns="urn:oasis:names:specification:ubl:schema:xsd:DespatchAdvice-2" '
        f'xmlns:cac="{NS["cac"]}" xmlns:cbc="{NS["cbc"]}">',
        "  <cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:despatch_advice:3</cbc:CustomizationID>",
        "  <cbc:ProfileID>urn:fdc:peppol.eu:poacc:bis:despatch_advice:3</cbc:ProfileID>",
        f"  <cbc:ID>{e(number)}</cbc:ID>",
        f"  <cbc:IssueDate>{issue_date.isoformat()}</cbc:IssueDate>",
    ]
    if order_reference:
        out.append(f"  <cac:OrderReference><cbc:ID>{e(order_reference)}</cbc:ID></cac:OrderReference>")
    out += [
        "  <cac:DespatchSupplierParty><cac:Party>",
        f"    <cac:PartyName><cbc:Name>{e(supplier_name)}</cbc:Name></cac:PartyName>",
        f"    <cac:PartyTaxScheme><cbc:CompanyID>{e(supplier_vat)}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>",
        "  </cac:Party></cac:DespatchSupplierParty>",
        "  <cac:DeliveryCustomerParty><cac:Party>",
        f'    <cbc:EndpointID schemeID="0088">{e(buyer.gln)}</cbc:EndpointID>',
        f"    <cac:PartyIdentification><cbc:ID>{e(buyer.ods)}</cbc:ID></cac:PartyIdentification>",
        f"    <cac:PartyName><cbc:Name>{e(buyer.name)}</cbc:Name></cac:PartyName>",
        "  </cac:Party></cac:DeliveryCustomerParty>",
        "  <cac:Shipment><cbc:ID>NA</cbc:ID><cac:Delivery><cac:Despatch>"
        f"<cbc:ActualDespatchDate>{issue_date.isoformat()}</cbc:ActualDespatchDate>"
        "</cac:Despatch></cac:Delivery></cac:Shipment>",
    ]
    for line in lines:
        out += [
            "  <cac:DespatchLine>",
            f"    <cbc:ID>{line.line_id}</cbc:ID>",
            f'    <cbc:DeliveredQuantity unitCode="EA">{_num(line.quantity)}</cbc:DeliveredQuantity>',
        ]
        if line.order_line_ref is not None:
            ref = (
                f"<cac:OrderReference><cbc:ID>{e(order_reference)}</cbc:ID></cac:OrderReference>"
                if order_reference
                else ""
            )
            out.append(
                f"    <cac:OrderLineReference><cbc:LineID>{line.order_line_ref}</cbc:LineID>{ref}"
                "</cac:OrderLineReference>"
            )
        out += ["    <cac:Item>", f"      <cbc:Name>{e(line.item_name)}</cbc:Name>"]
        out.append(
            f"      <cac:SellersItemIdentification><cbc:ID>{e(line.seller_item_id)}</cbc:ID>"
            "</cac:SellersItemIdentification>"
        )
        if line.gtin:
            out.append(
                '      <cac:StandardItemIdentification><cbc:ID schemeID="0160">'
                f"{e(line.gtin)}</cbc:ID></cac:StandardItemIdentification>"
            )
        out += ["    </cac:Item>", "  </cac:DespatchLine>"]
    out.append("</DespatchAdvice>")
    return "\n".join(out) + "\n"


def render_ubl(doc: UblDocument) -> str:
    """The UBL 2.1 XML text of one document (PEPPOL BIS Billing 3.0 element order)."""
    credit = doc.document_type == "credit_note"
    root = "CreditNote" if credit else "Invoice"
    line_tag = "CreditNoteLine" if credit else "InvoiceLine"
    qty_tag = "CreditedQuantity" if credit else "InvoicedQuantity"
    e = escape
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" '
        f'xmlns:cac="{NS["cac"]}" xmlns:cbc="{NS["cbc"]}">',
        "  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
        "</cbc:CustomizationID>",
        "  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>",
        f"  <cbc:ID>{e(doc.number)}</cbc:ID>",
        f"  <cbc:IssueDate>{doc.issue_date.isoformat()}</cbc:IssueDate>",
    ]
    if credit:
        out.append("  <cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>")
    else:
        due = doc.issue_date + dt.timedelta(days=30)
        out.append(f"  <cbc:DueDate>{due.isoformat()}</cbc:DueDate>")
        out.append("  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>")
    out.append("  <cbc:DocumentCurrencyCode>GBP</cbc:DocumentCurrencyCode>")
    out.append(f"  <cbc:BuyerReference>{e(doc.buyer_reference)}</cbc:BuyerReference>")
    if doc.order_reference:
        out.append(f"  <cac:OrderReference><cbc:ID>{e(doc.order_reference)}</cbc:ID></cac:OrderReference>")
    if doc.billing_reference:
        ref_date = (
            f"<cbc:IssueDate>{doc.billing_reference_date.isoformat()}</cbc:IssueDate>"
            if doc.billing_reference_date
            else ""
        )
        out.append(
            f"  <cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>{e(doc.billing_reference)}</cbc:ID>"  # noqa: E501
            f"{ref_date}</cac:InvoiceDocumentReference></cac:BillingReference>"
        )
    b = doc.buyer
    out += [
        "  <cac:AccountingSupplierParty><cac:Party>",
        f'    <cbc:EndpointID schemeID="9932">{e(doc.supplier_vat)}</cbc:EndpointID>',
        f"    <cac:PartyName><cbc:Name>{e(doc.supplier_name)}</cbc:Name></cac:PartyName>",
        f"    <cac:PostalAddress><cbc:StreetName>{e(doc.supplier_street)}</cbc:StreetName>"
        f"<cbc:CityName>{e(doc.supplier_city)}</cbc:CityName><cbc:PostalZone>{e(doc.supplier_postcode)}"
        "</cbc:PostalZone><cac:Country><cbc:IdentificationCode>GB</cbc:IdentificationCode></cac:Country>"
        "</cac:PostalAddress>",
        f"    <cac:PartyTaxScheme><cbc:CompanyID>{e(doc.supplier_vat)}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>",
        f"    <cac:PartyLegalEntity><cbc:RegistrationName>{e(doc.supplier_name)}</cbc:RegistrationName>"
        f"<cbc:CompanyID>{e(doc.supplier_companies_house)}</cbc:CompanyID></cac:PartyLegalEntity>",
        "  </cac:Party></cac:AccountingSupplierParty>",
        "  <cac:AccountingCustomerParty><cac:Party>",
        f'    <cbc:EndpointID schemeID="0088">{e(b.gln)}</cbc:EndpointID>',
        f'    <cac:PartyIdentification><cbc:ID schemeID="0088">{e(b.gln)}</cbc:ID></cac:PartyIdentification>',
        f"    <cac:PartyName><cbc:Name>{e(b.name)}</cbc:Name></cac:PartyName>",
        f"    <cac:PostalAddress><cbc:StreetName>{e(b.street)}</cbc:StreetName><cbc:CityName>{e(b.city)}"
        f"</cbc:CityName><cbc:PostalZone>{e(b.postcode)}</cbc:PostalZone><cac:Country>"
        "<cbc:IdentificationCode>GB</cbc:IdentificationCode></cac:Country></cac:PostalAddress>",
        f"    <cac:PartyTaxScheme><cbc:CompanyID>{e(b.vat)}</cbc:CompanyID>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>",
        f"    <cac:PartyLegalEntity><cbc:RegistrationName>{e(b.name)}</cbc:RegistrationName>"
        "</cac:PartyLegalEntity>",
        "  </cac:Party></cac:AccountingCustomerParty>",
    ]
    if not credit:
        out.append(
            "  <cac:PaymentMeans><cbc:PaymentMeansCode>30</cbc:PaymentMeansCode>"
            f"<cbc:PaymentID>{e(doc.number)}</cbc:PaymentID></cac:PaymentMeans>"
        )
    groups = tax_groups(doc.lines)
    vat_total = sum((tax for _, _, tax in groups), Decimal("0.00"))
    out.append(f"  <cac:TaxTotal>{_amount('TaxAmount', vat_total)}")
    for rate, taxable, tax in groups:
        out.append(
            f"    <cac:TaxSubtotal>{_amount('TaxableAmount', taxable)}{_amount('TaxAmount', tax)}"
            f"<cac:TaxCategory><cbc:ID>{tax_category(rate)}</cbc:ID><cbc:Percent>{_num(rate)}</cbc:Percent>"
            "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>"
        )
    out.append("  </cac:TaxTotal>")
    net = doc.net_total
    out.append(
        f"  <cac:LegalMonetaryTotal>{_amount('LineExtensionAmount', net)}{_amount('TaxExclusiveAmount', net)}"
        f"{_amount('TaxInclusiveAmount', net + vat_total)}{_amount('PayableAmount', net + vat_total)}"
        "</cac:LegalMonetaryTotal>"
    )
    for line in doc.lines:
        order_ref = (
            f"<cac:OrderLineReference><cbc:LineID>{line.order_line_ref}</cbc:LineID></cac:OrderLineReference>"
            if line.order_line_ref is not None
            else ""
        )
        gtin = (
            f'<cac:StandardItemIdentification><cbc:ID schemeID="0160">{e(line.gtin)}</cbc:ID>'
            "</cac:StandardItemIdentification>"
            if line.gtin
            else ""
        )
        out.append(
            f"  <cac:{line_tag}><cbc:ID>{line.line_id}</cbc:ID>"
            f'<cbc:{qty_tag} unitCode="EA">{_num(line.quantity)}</cbc:{qty_tag}>'
            f"{_amount('LineExtensionAmount', line.net_amount)}{order_ref}"
            f"<cac:Item><cbc:Name>{e(line.item_name)}</cbc:Name>"
            f"<cac:SellersItemIdentification><cbc:ID>{e(line.seller_item_id)}</cbc:ID>"
            f"</cac:SellersItemIdentification>{gtin}"
            f"<cac:ClassifiedTaxCategory><cbc:ID>{tax_category(line.vat_rate)}</cbc:ID>"
            f"<cbc:Percent>{_num(line.vat_rate)}</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
            f"</cac:ClassifiedTaxCategory></cac:Item>"
            f'<cac:Price><cbc:PriceAmount currencyID="GBP">{line.unit_price:.2f}</cbc:PriceAmount></cac:Price>'  # noqa: E501
            f"</cac:{line_tag}>"
        )
    out.append(f"</{root}>")
    return "\n".join(out) + "\n"


def parse_ubl(xml_text: str) -> dict[str, object]:
    """Read back what the portal shows on an invoice page (our own documents only)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml_text)
    credit = root.tag.endswith("CreditNote")
    c = "{" + NS["cbc"] + "}"
    a = "{" + NS["cac"] + "}"
    line_tag = f"{a}CreditNoteLine" if credit else f"{a}InvoiceLine"
    qty_tag = f"{c}CreditedQuantity" if credit else f"{c}InvoicedQuantity"
    lines = []
    for line in root.iter(line_tag):
        lines.append(
            {
                "line_id": line.findtext(f"{c}ID"),
                "quantity": line.findtext(qty_tag),
                "unit_price": line.findtext(f"{a}Price/{c}PriceAmount"),
                "net_amount": line.findtext(f"{c}LineExtensionAmount"),
                "order_line_ref": line.findtext(f"{a}OrderLineReference/{c}LineID"),
                "item_name": line.findtext(f"{a}Item/{c}Name"),
                "seller_item_id": line.findtext(f"{a}Item/{a}SellersItemIdentification/{c}ID"),
                "gtin": line.findtext(f"{a}Item/{a}StandardItemIdentification/{c}ID"),
                "vat_rate": line.findtext(f"{a}Item/{a}ClassifiedTaxCategory/{c}Percent"),
            }
        )
    return {
        "document_type": "credit_note" if credit else "invoice",
        "id": root.findtext(f"{c}ID"),
        "issue_date": root.findtext(f"{c}IssueDate"),
        "order_reference": root.findtext(f"{a}OrderReference/{c}ID"),
        "billing_reference": root.findtext(f"{a}BillingReference/{a}InvoiceDocumentReference/{c}ID"),
        "lines": lines,
        "net_total": root.findtext(f"{a}LegalMonetaryTotal/{c}TaxExclusiveAmount"),
        "vat_total": root.findtext(f"{a}TaxTotal/{c}TaxAmount"),
        "gross_total": root.findtext(f"{a}LegalMonetaryTotal/{c}TaxInclusiveAmount"),
    }
