"""Reading PEPPOL BIS 3 documents (UBL 2.1): Invoice, CreditNote, Order and DespatchAdvice
into :class:`~connectors.peppol.document.PeppolDocument` and the domain models.

Parsing goes through :mod:`defusedxml` with DTDs refused (no XXE, no entity expansion, no
external fetches) and is bounded in bytes and elements. Every error names the file and
the element. Identifiers with a bad check digit and arithmetic that does not add up
(:mod:`connectors.peppol.rules`) are findings, not errors.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError  # types and errors only; parsing is defused

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as DefusedET
from pydantic import BaseModel, ValidationError

from bots.domain.identifiers import check_companies_house, check_gb_vat, check_gln, check_gtin, check_ods_code
from bots.domain.models import (
    CreditNote,
    DespatchAdvice,
    DespatchLine,
    Invoice,
    InvoiceLine,
    Party,
    POLine,
    PurchaseOrder,
)
from connectors.peppol.document import (
    CAC,
    CBC,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ELEMENTS,
    GLN_SCHEME,
    GTIN_SCHEME,
    NAMESPACES,
    RECEIPT_PROPERTY,
    DocumentType,
    PeppolDocument,
    PeppolError,
    PeppolLine,
    StatedTotals,
)
from connectors.peppol.rules import Findings, MoneyParts, TaxSubtotal, check_arithmetic

__all__ = ["read_document", "xsd_boolean"]

_ROOTS: dict[str, DocumentType] = {
    f"{{{NAMESPACES['invoice']}}}Invoice": "invoice",
    f"{{{NAMESPACES['credit_note']}}}CreditNote": "credit_note",
    f"{{{NAMESPACES['order']}}}Order": "order",
    f"{{{NAMESPACES['despatch_advice']}}}DespatchAdvice": "despatch_advice",
}
_PREFIX = {CBC: "cbc", CAC: "cac"}
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def xsd_boolean(text: str) -> bool | None:
    """An xsd:boolean's value: ``true``/``1`` or ``false``/``0`` (surrounding spaces and,
    leniently, the case of the words ignored); ``None`` for anything else.

    UBL indicators such as ``cbc:ChargeIndicator`` are xsd:boolean, and senders do write
    ``1`` and ``0`` (CEN's validation artefacts accept them: eInvoicing-EN16931 issue #110).

    Example:
        >>> xsd_boolean("0"), xsd_boolean(" TRUE "), xsd_boolean("yes")
        (False, True, None)
    """
    return _BOOLEANS.get(text.strip().lower())


# --- reading: parse ---------------------------------------------------------------------------


def _display(tag: str, root_ns: str | None) -> str:
    """``{ns}Local`` as the document would write it: ``cbc:ID``, ``Invoice``."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        if ns in _PREFIX:
            return f"{_PREFIX[ns]}:{local}"
        if ns == root_ns:
            return local
    return tag


def _namespace(tag: str) -> str | None:
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


def _check_root(elem: Element, name: str) -> DocumentType:
    kind = _ROOTS.get(elem.tag)
    if kind is not None:
        return kind
    local = elem.tag.rpartition("}")[2]
    wanted = "a UBL 2.1 Invoice, CreditNote, Order or DespatchAdvice"
    if _namespace(elem.tag) is None:
        expected = next((t for t in _ROOTS if t.endswith("}" + local)), None)
        if expected:
            reason = f"root element {local!r} has no namespace; a UBL 2.1 {local} is {expected}"
        else:
            reason = f"root element {local!r} has no namespace; expected {wanted}"
        raise PeppolError(name, f"/{local}", reason)
    raise PeppolError(name, f"/{local}", f"root element is {elem.tag}; expected {wanted}")


def _parse(data: bytes, name: str, max_elements: int) -> tuple[Element, DocumentType]:
    """Parses with DTDs, entities and external references refused, and the element
    count bounded; reports malformed XML with the path of the element it broke in."""
    # (tag, index among same-tag siblings, counts of this element's children so far);
    # display paths are built only when there is an error to report.
    stack: list[tuple[str, int, dict[str, int]]] = []
    root: Element | None = None
    kind: DocumentType | None = None
    count = 0

    def where() -> str | None:
        if not stack:
            return None
        root_ns = _namespace(stack[0][0])
        return "/" + "/".join(_display(tag, root_ns) + (f"[{n}]" if n > 1 else "") for tag, n, _ in stack)

    try:
        events = DefusedET.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, elem in events:
            if event == "end":
                stack.pop()
                continue
            count += 1
            if root is None:
                root = elem
                kind = _check_root(elem, name)
            counts = stack[-1][2] if stack else {}
            n = counts[elem.tag] = counts.get(elem.tag, 0) + 1
            stack.append((elem.tag, n, {}))
            if count > max_elements:
                raise PeppolError(
                    name,
                    where(),
                    f"more than {max_elements:,} XML elements: refused (too large to read safely)",
                )
    except DTDForbidden as exc:
        raise PeppolError(
            name,
            f"<!DOCTYPE {exc.name}>",
            "document type declarations (DTD) are refused: they allow entity expansion and "
            "external entities (XXE); PEPPOL documents never carry one",
        ) from None
    except EntitiesForbidden as exc:
        raise PeppolError(name, f"<!ENTITY {exc.name}>", "entity declarations are refused") from None
    except ExternalReferenceForbidden as exc:
        raise PeppolError(
            name, where(), f"external reference {exc.sysid!r} refused (no file or network access)"
        ) from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).rsplit(": line ", 1)[0]
        raise PeppolError(name, where(), f"malformed XML at line {line}, column {column}: {reason}") from None
    except PeppolError:
        raise
    except (LookupError, ValueError) as exc:
        # expat names an encoding Python does not know (LookupError) or one it cannot
        # decode incrementally, such as UTF-7 (ValueError), before reading any element.
        raise PeppolError(name, None, _encoding_problem(data, exc)) from None
    if root is None or kind is None:  # pragma: no cover - expat reports "no element found"
        raise PeppolError(name, None, "no XML element found")
    return root, kind


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


def _encoding_problem(data: bytes, exc: Exception) -> str:
    match = _DECLARED_ENCODING.match(data[:512])
    declared = match.group(1).decode("ascii", "replace") if match else None
    if declared is None:
        return f"cannot be decoded: {exc}"
    known = "unknown" if isinstance(exc, LookupError) else "not supported by the XML reader"
    return (
        f"declares encoding {declared!r}, which is {known}; PEPPOL documents are UTF-8, "
        'so ask the sender for the file with encoding="UTF-8"'
    )


# --- reading: navigation -------------------------------------------------------------------------


def _qname(step: str) -> str:
    prefix, _, local = step.partition(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


class _Node:
    """An element with its display path, so every error can say where it is."""

    __slots__ = ("elem", "name", "path")

    def __init__(self, elem: Element, path: str, name: str) -> None:
        self.elem = elem
        self.path = path
        self.name = name

    def all(self, step: str) -> list[_Node]:
        tag = _qname(step)
        children = [c for c in self.elem if c.tag == tag]
        many = len(children) > 1
        return [
            _Node(c, f"{self.path}/{step}[{i}]" if many else f"{self.path}/{step}", self.name)
            for i, c in enumerate(children, start=1)
        ]

    def get(self, *steps: str) -> _Node | None:
        node: _Node | None = self
        for step in steps:
            assert node is not None
            found = node.all(step)
            node = found[0] if found else None
            if node is None:
                return None
        return node

    def need(self, *steps: str) -> _Node:
        node = self
        for step in steps:
            found = node.get(step)
            if found is None:
                raise PeppolError(self.name, f"{node.path}/{step}", "missing mandatory element")
            node = found
        return node

    def error(self, reason: str) -> PeppolError:
        return PeppolError(self.name, self.path, reason)

    @property
    def value(self) -> str:
        return (self.elem.text or "").strip()

    def attr(self, name: str) -> str | None:
        value = self.elem.get(name)
        return value.strip() if value is not None and value.strip() else None

    def text(self, *steps: str) -> str | None:
        node = self.get(*steps)
        return (node.value or None) if node is not None else None

    def need_text(self, *steps: str) -> str:
        node = self.need(*steps)
        if not node.value:
            raise node.error("mandatory element is empty")
        return node.value

    def number(self) -> Decimal:
        text = self.value
        if not _DECIMAL.fullmatch(text):
            raise self.error(f"expected a number, got {text!r}")
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise self.error(f"expected a number, got {text!r}") from None

    def get_number(self, *steps: str) -> Decimal | None:
        node = self.get(*steps)
        return node.number() if node is not None else None

    def need_number(self, *steps: str) -> Decimal:
        return self.need(*steps).number()

    def date(self) -> dt.date:
        text = self.value
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            return dt.date.fromisoformat(text)
        except ValueError:
            raise self.error(f"expected a date (YYYY-MM-DD), got {text!r}") from None

    def get_date(self, *steps: str) -> dt.date | None:
        node = self.get(*steps)
        return node.date() if node is not None else None

    def flag(self) -> bool:
        """An indicator (xsd:boolean): ``true``, ``false``, ``1`` or ``0``."""
        value = xsd_boolean(self.value)
        if value is None:
            raise self.error(f"expected true, false, 1 or 0, got {self.value!r}")
        return value


def _build(model: type[BaseModel], node: _Node, fields: dict[str, str], **values: Any) -> Any:
    """Builds a domain model; a value it refuses is reported at the element it came from."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        where = f"{node.path}/{fields[key]}" if key in fields else node.path
        given = err.get("input")
        shown = format(given, "f") if isinstance(given, Decimal) else given
        raise PeppolError(node.name, where, f"{err['msg'].lower()} (got {shown!r})") from None


def _check_gln(node: _Node | None, findings: Findings) -> None:
    if node is not None and node.attr("schemeID") == GLN_SCHEME and node.value:
        check = check_gln(node.value)
        if not check.valid:
            findings.add("INVALID_GLN", f"{node.path}: {check.message}")


def _party(node: _Node | None, findings: Findings) -> Party:
    if node is None:
        return Party()
    endpoint = node.get("cbc:EndpointID")
    idents = [n for p in node.all("cac:PartyIdentification") if (n := p.get("cbc:ID")) is not None]
    gln = None
    ods = None
    for candidate in [endpoint, *idents]:
        _check_gln(candidate, findings)
        if candidate is None or not candidate.value:
            continue
        scheme = candidate.attr("schemeID")
        if scheme == GLN_SCHEME and gln is None and check_gln(candidate.value).valid:
            gln = candidate.value
        if candidate is not endpoint and scheme is None and ods is None and check_ods_code(candidate.value):
            # NHS buyers name their ODS code as a party identification without a scheme
            # (ODS has no ISO 6523 code); anything shaped otherwise is left alone.
            ods = candidate.value
    vat_node = None
    for scheme_node in node.all("cac:PartyTaxScheme"):
        if (scheme_node.text("cac:TaxScheme", "cbc:ID") or "VAT").upper() == "VAT":
            vat_node = scheme_node.get("cbc:CompanyID")
            break
    vat = vat_node.value or None if vat_node is not None else None
    if vat_node is not None and vat and vat.upper().startswith(("GB", "XI")):
        check = check_gb_vat(vat)
        if not check.valid:
            findings.add("INVALID_GB_VAT", f"{vat_node.path}: {check.message}")
    legal_id = node.text("cac:PartyLegalEntity", "cbc:CompanyID")
    companies_house = None
    if legal_id and check_companies_house(legal_id).valid:
        companies_house = check_companies_house(legal_id).normalised
    name = node.text("cac:PartyName", "cbc:Name") or node.text("cac:PartyLegalEntity", "cbc:RegistrationName")
    return Party(
        name=name or "",
        vat_number=vat,
        endpoint_id=endpoint.value or None if endpoint is not None else None,
        endpoint_scheme=endpoint.attr("schemeID") if endpoint is not None else None,
        companies_house=companies_house,
        gln=gln,
        ods_code=ods,
    )


def _allowance_charges(parent: _Node) -> tuple[list[tuple[Decimal, _Node]], list[tuple[Decimal, _Node]]]:
    """(allowances, charges): each amount with its AllowanceCharge element."""
    allowances: list[tuple[Decimal, _Node]] = []
    charges: list[tuple[Decimal, _Node]] = []
    for ac in parent.all("cac:AllowanceCharge"):
        amount = ac.need_number("cbc:Amount")
        (charges if ac.need("cbc:ChargeIndicator").flag() else allowances).append((amount, ac))
    return allowances, charges


def _line(
    node: _Node, quantity_tag: str, findings: Findings, *, priced: bool, mandatory_net: bool
) -> PeppolLine:
    line_id = node.need_text("cbc:ID")
    quantity_node = node.need(quantity_tag)
    net_node = node.need("cbc:LineExtensionAmount") if mandatory_net else node.get("cbc:LineExtensionAmount")
    item = node.need("cac:Item")
    name = item.need("cbc:Name").value
    gtin_node = item.get("cac:StandardItemIdentification", "cbc:ID")
    gtin = None
    if gtin_node is not None and gtin_node.attr("schemeID") == GTIN_SCHEME and gtin_node.value:
        gtin = gtin_node.value
        check = check_gtin(gtin)
        if not check.valid:
            findings.add("INVALID_GTIN", f"{gtin_node.path}: {check.message}")
    tax = item.get("cac:ClassifiedTaxCategory")
    price = node.get("cac:Price")
    if priced and price is None:
        raise PeppolError(node.name, f"{node.path}/cac:Price", "missing mandatory element")
    allowances, charges = _allowance_charges(node)
    properties = tuple(
        (p.text("cbc:Name") or "", p.text("cbc:Value") or "") for p in item.all("cac:AdditionalItemProperty")
    )
    return PeppolLine(
        line_id=line_id,
        quantity=quantity_node.number(),
        unit_code=quantity_node.attr("unitCode"),
        price=price.need_number("cbc:PriceAmount") if price is not None else None,
        base_quantity=price.get_number("cbc:BaseQuantity") if price is not None else None,
        net_amount=net_node.number() if net_node is not None else None,
        item_name=name,
        gtin=gtin,
        seller_item_id=item.text("cac:SellersItemIdentification", "cbc:ID"),
        vat_category=tax.text("cbc:ID") if tax is not None else None,
        vat_percent=tax.get_number("cbc:Percent") if tax is not None else None,
        order_line_reference=node.text("cac:OrderLineReference", "cbc:LineID"),
        allowances=sum((a for a, _ in allowances), Decimal(0)),
        charges=sum((c for c, _ in charges), Decimal(0)),
        properties=properties,
    )


def _tax_category(ac: _Node) -> tuple[str | None, Decimal | None]:
    cat = ac.get("cac:TaxCategory")
    if cat is None:
        return None, None
    return cat.text("cbc:ID"), cat.get_number("cbc:Percent")


def _document_money(
    root: _Node, currency: str | None, total_tag: str, *, require_tax: bool
) -> tuple[StatedTotals, MoneyParts]:
    allowances, charges = _allowance_charges(root)
    money_parts = MoneyParts(
        allowances=[(a, *_tax_category(n)) for a, n in allowances],
        charges=[(c, *_tax_category(n)) for c, n in charges],
    )
    tax_totals = root.all("cac:TaxTotal")
    if require_tax and not tax_totals:
        raise PeppolError(root.name, f"{root.path}/cac:TaxTotal", "missing mandatory element")
    # A document may state VAT twice: in its own currency and in the tax currency.
    tax_total = next(
        (t for t in tax_totals if t.need("cbc:TaxAmount").attr("currencyID") in (None, currency)),
        tax_totals[0] if tax_totals else None,
    )
    tax = None
    if tax_total is not None:
        tax = tax_total.need_number("cbc:TaxAmount")
        for sub in tax_total.all("cac:TaxSubtotal"):
            category = sub.need("cac:TaxCategory")
            money_parts.subtotals.append(
                TaxSubtotal(
                    taxable=sub.need_number("cbc:TaxableAmount"),
                    tax=sub.need_number("cbc:TaxAmount"),
                    category=category.need_text("cbc:ID"),
                    percent=category.get_number("cbc:Percent") or Decimal(0),
                    path=sub.path,
                )
            )
    total = root.get(total_tag)
    if total is None:
        if require_tax:  # an invoice or credit note without totals is not one
            raise PeppolError(root.name, f"{root.path}/{total_tag}", "missing mandatory element")
        return StatedTotals(tax=tax), money_parts
    money_parts.total_path = total.path
    need = total.need_number if require_tax else total.get_number
    stated = StatedTotals(
        line_extension=total.need_number("cbc:LineExtensionAmount"),
        allowances=total.get_number("cbc:AllowanceTotalAmount"),
        charges=total.get_number("cbc:ChargeTotalAmount"),
        tax_exclusive=need("cbc:TaxExclusiveAmount"),
        tax=tax,
        tax_inclusive=need("cbc:TaxInclusiveAmount"),
        prepaid=total.get_number("cbc:PrepaidAmount"),
        rounding=total.get_number("cbc:PayableRoundingAmount"),
        payable=total.need_number("cbc:PayableAmount"),
    )
    return stated, money_parts


# --- reading: documents ---------------------------------------------------------------------------------


def _header(root: _Node) -> tuple[str, dt.date]:
    return root.need_text("cbc:ID"), root.need("cbc:IssueDate").date()


def _invoice_lines(root: _Node, kind: DocumentType, findings: Findings) -> list[tuple[_Node, PeppolLine]]:
    line_tag, quantity_tag = (
        ("cac:CreditNoteLine", "cbc:CreditedQuantity")
        if kind == "credit_note"
        else ("cac:InvoiceLine", "cbc:InvoicedQuantity")
    )
    nodes = root.all(line_tag)
    if not nodes:
        raise PeppolError(root.name, f"{root.path}/{line_tag}", "missing mandatory element (no lines)")
    return [(n, _line(n, quantity_tag, findings, priced=True, mandatory_net=True)) for n in nodes]


_LINE_FIELDS = {
    "line_id": "cbc:ID",
    "quantity": "cbc:InvoicedQuantity",
    "unit_price": "cac:Price/cbc:PriceAmount",
    "net_amount": "cbc:LineExtensionAmount",
    "vat_rate": "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
    "vat_category": "cac:Item/cac:ClassifiedTaxCategory/cbc:ID",
}
_PO_LINE_FIELDS = {
    "line_no": "cbc:ID",
    "quantity": "cbc:Quantity",
    "unit_price": "cac:Price/cbc:PriceAmount",
    "vat_rate": "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
    "unit_code": "cbc:Quantity",
}


def _read_invoice(root: _Node, kind: DocumentType, source: str | None) -> PeppolDocument:
    findings = Findings()
    number, issue_date = _header(root)
    currency = root.need_text("cbc:DocumentCurrencyCode")
    type_tag = "cbc:CreditNoteTypeCode" if kind == "credit_note" else "cbc:InvoiceTypeCode"
    supplier = _party(root.need("cac:AccountingSupplierParty", "cac:Party"), findings)
    buyer = _party(root.need("cac:AccountingCustomerParty", "cac:Party"), findings)
    _check_gln(root.get("cac:Delivery", "cac:DeliveryLocation", "cbc:ID"), findings)
    lines = _invoice_lines(root, kind, findings)
    totals, parts = _document_money(root, currency, "cac:LegalMonetaryTotal", require_tax=True)
    check_arithmetic([line for _, line in lines], totals, parts, findings, root.path)
    order_reference = root.text("cac:OrderReference", "cbc:ID")
    billing_reference = root.text("cac:BillingReference", "cac:InvoiceDocumentReference", "cbc:ID")
    model_lines = [
        _build(
            InvoiceLine,
            node,
            _LINE_FIELDS,
            line_id=line.line_id,
            quantity=line.quantity,
            unit_code=line.unit_code or "EA",
            unit_price=line.unit_price,
            net_amount=line.net_amount,
            vat_category=line.vat_category or "S",
            vat_rate=line.vat_percent if line.vat_percent is not None else Decimal(0),
            item_name=line.item_name,
            gtin=line.gtin,
            seller_item_id=line.seller_item_id,
            order_line_reference=line.order_line_reference,
        )
        for node, line in lines
    ]
    model = _build(
        CreditNote if kind == "credit_note" else Invoice,
        root,
        {"invoice_number": "cbc:ID", "currency": "cbc:DocumentCurrencyCode"},
        document_type=kind,
        invoice_number=number,
        issue_date=issue_date,
        currency=currency,
        supplier=supplier,
        buyer=buyer,
        po_number=order_reference,
        billing_reference=billing_reference,
        lines=model_lines,
        totals=totals.as_model(),
        source=source,
    )
    return PeppolDocument(
        document_type=kind,
        id=number,
        issue_date=issue_date,
        currency=currency,
        supplier=supplier,
        buyer=buyer,
        order_reference=order_reference,
        billing_reference=billing_reference,
        lines=tuple(line for _, line in lines),
        totals=totals,
        model=model,
        findings=tuple(findings),
        type_code=root.text(type_tag),
        customization_id=root.text("cbc:CustomizationID"),
        profile_id=root.text("cbc:ProfileID"),
        source=source,
    )


def _read_order(root: _Node, source: str | None) -> PeppolDocument:
    findings = Findings()
    number, issue_date = _header(root)
    currency = root.need_text("cbc:DocumentCurrencyCode")
    buyer_node = root.need("cac:BuyerCustomerParty", "cac:Party")
    seller_node = root.need("cac:SellerSupplierParty", "cac:Party")
    buyer = _party(buyer_node, findings)
    supplier = _party(seller_node, findings)
    delivery_site = root.get("cac:Delivery", "cac:DeliveryLocation", "cbc:ID")
    _check_gln(delivery_site, findings)
    order_lines = [ol.need("cac:LineItem") for ol in root.all("cac:OrderLine")]
    if not order_lines:
        raise PeppolError(root.name, f"{root.path}/cac:OrderLine", "missing mandatory element (no lines)")
    lines = [(n, _line(n, "cbc:Quantity", findings, priced=False, mandatory_net=False)) for n in order_lines]
    totals, parts = _document_money(root, currency, "cac:AnticipatedMonetaryTotal", require_tax=False)
    check_arithmetic([line for _, line in lines], totals, parts, findings, root.path)
    po_lines = []
    for node, line in lines:
        if not re.fullmatch(r"\d{1,9}", line.line_id) or int(line.line_id) < 1:
            raise PeppolError(
                root.name,
                f"{node.path}/cbc:ID",
                f"expected a whole line number (1, 2, ...) for a purchase order line, got {line.line_id!r}",
            )
        if line.price is None:
            raise PeppolError(
                root.name, f"{node.path}/cac:Price", "missing (a purchase order line needs a unit price)"
            )
        # Written as true/false by write_order; a 0 means "no receipt" just as false does.
        receipt = xsd_boolean(dict(line.properties).get(RECEIPT_PROPERTY, "true")) is not False
        extra: dict[str, Any] = {"vat_rate": line.vat_percent} if line.vat_percent is not None else {}
        if line.unit_code:
            extra["unit_code"] = line.unit_code
        po_lines.append(
            _build(
                POLine,
                node,
                _PO_LINE_FIELDS,
                line_no=int(line.line_id),
                item_code=line.seller_item_id or line.gtin or "",
                description=line.item_name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                receipt_required=receipt,
                **extra,
            )
        )
    need_by = root.get_date("cac:Delivery", "cac:RequestedDeliveryPeriod", "cbc:EndDate")
    seller_ident = seller_node.text("cac:PartyIdentification", "cbc:ID")
    model = _build(
        PurchaseOrder,
        root,
        {"po_number": "cbc:ID", "lines": "cac:OrderLine"},
        po_number=number,
        requisition_ref=root.text("cbc:CustomerReference"),
        supplier_id=seller_ident or "",
        supplier_name=supplier.name,
        supplier_vat=supplier.vat_number,
        buyer_name=buyer.name,
        buyer_ods=buyer.ods_code,
        cost_centre=root.text("cbc:AccountingCost") or "",
        delivery_site=delivery_site.value if delivery_site is not None else "",
        need_by=need_by,
        issue_date=issue_date,
        currency=currency,
        lines=po_lines,
    )
    return PeppolDocument(
        document_type="order",
        id=number,
        issue_date=issue_date,
        currency=currency,
        supplier=supplier,
        buyer=buyer,
        order_reference=None,
        billing_reference=None,
        lines=tuple(line for _, line in lines),
        totals=totals,
        model=model,
        findings=tuple(findings),
        type_code=root.text("cbc:OrderTypeCode"),
        customization_id=root.text("cbc:CustomizationID"),
        profile_id=root.text("cbc:ProfileID"),
        source=source,
    )


def _read_despatch(root: _Node, source: str | None) -> PeppolDocument:
    findings = Findings()
    number, issue_date = _header(root)
    supplier = _party(root.need("cac:DespatchSupplierParty", "cac:Party"), findings)
    delivery = root.need("cac:DeliveryCustomerParty", "cac:Party")
    buyer_node = root.get("cac:BuyerCustomerParty", "cac:Party")
    buyer = _party(buyer_node or delivery, findings)
    if buyer_node is not None:
        _party(delivery, findings)  # its identifiers are checked too
    nodes = root.all("cac:DespatchLine")
    if not nodes:
        raise PeppolError(root.name, f"{root.path}/cac:DespatchLine", "missing mandatory element (no lines)")
    lines = [
        (n, _line(n, "cbc:DeliveredQuantity", findings, priced=False, mandatory_net=False)) for n in nodes
    ]
    order_reference = root.text("cac:OrderReference", "cbc:ID")
    model_lines = [
        _build(
            DespatchLine,
            node,
            {"line_id": "cbc:ID", "quantity": "cbc:DeliveredQuantity"},
            line_id=line.line_id,
            quantity=line.quantity,
            unit_code=line.unit_code or "EA",
            item_name=line.item_name,
            gtin=line.gtin,
            seller_item_id=line.seller_item_id,
            order_line_reference=line.order_line_reference,
        )
        for node, line in lines
    ]
    model = _build(
        DespatchAdvice,
        root,
        {"despatch_id": "cbc:ID"},
        despatch_id=number,
        issue_date=issue_date,
        order_reference=order_reference,
        supplier=supplier,
        buyer=buyer,
        lines=model_lines,
    )
    return PeppolDocument(
        document_type="despatch_advice",
        id=number,
        issue_date=issue_date,
        currency=None,
        supplier=supplier,
        buyer=buyer,
        order_reference=order_reference,
        billing_reference=None,
        lines=tuple(line for _, line in lines),
        totals=StatedTotals(),
        model=model,
        findings=tuple(findings),
        type_code=root.text("cbc:DespatchAdviceTypeCode"),
        customization_id=root.text("cbc:CustomizationID"),
        profile_id=root.text("cbc:ProfileID"),
        source=source,
    )


def read_document(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> PeppolDocument:
    """Reads a PEPPOL BIS 3 Invoice, CreditNote, Order or DespatchAdvice (UBL 2.1).

    Args:
        source: a file path, or the document's bytes.
        name: how errors name the document (default: the file name, or ``<bytes>``).
        max_bytes: larger files are refused before parsing.
        max_elements: documents with more XML elements are refused while parsing.

    Returns:
        The document as stated, its domain model and its findings (arithmetic and
        identifier warnings, never failures).

    Raises:
        PeppolError: malformed or unsafe XML (DTD, entities, external references),
            the wrong root element, a mandatory element missing, or a value that is
            not what its element needs; the message names the file and the element.

    Example:
        >>> doc = read_document(Path("inbox/INV-1001.xml"))  # doctest: +SKIP
        >>> doc.model.invoice_number, [f.code for f in doc.findings]  # doctest: +SKIP
        ('INV-1001', [])
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        label = name or "<bytes>"
        origin = None
    else:
        path = Path(source)
        label = name or path.name
        origin = str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise PeppolError(label, None, f"{size:,} bytes is over the {max_bytes:,}-byte limit")
            with path.open("rb") as handle:
                # read(n) allocates n up front: ask for what stat said (plus one to see growth).
                data = handle.read(size + 1)
        except OSError as exc:
            raise PeppolError(label, None, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise PeppolError(label, None, f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
    elem, kind = _parse(data, label, max_elements)
    root = _Node(elem, "/" + elem.tag.rpartition("}")[2], label)
    if kind == "order":
        return _read_order(root, origin)
    if kind == "despatch_advice":
        return _read_despatch(root, origin)
    return _read_invoice(root, kind, origin)
