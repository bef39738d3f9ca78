"""PEPPOL BIS 3 documents (UBL 2.1): read invoices, credit notes, orders and despatch
advices into the domain models, check their EN 16931 arithmetic, and write a PEPPOL
BIS Order 3 from a :class:`~bots.domain.models.PurchaseOrder`.

Suppliers send what they send. Parsing goes through :mod:`defusedxml` with DTDs
refused, so no XXE, no entity expansion ("billion laughs") and no external fetches,
and it is bounded in bytes and elements. A document that cannot be read raises
:class:`PeppolError` naming the file and the element (``base-example.xml:
/Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity: expected a number, got 'x'``).
A document that reads but does not add up, or carries an identifier with a bad check
digit, reads fine with :attr:`PeppolDocument.findings` (EN 16931 rule ids such as
``BR-CO-10``, or ``INVALID_GB_VAT``): the official PEPPOL examples themselves carry
invalid check digits, and deciding what to do with a finding is the matcher's job.

Amounts stay :class:`~decimal.Decimal` exactly as the document states them.

Example:
    >>> doc = read_document("tests/fixtures/peppol/invoice/base-example.xml")
    >>> doc.document_type, doc.totals.payable
    ('invoice', Decimal('1656.25'))
    >>> to_json_shape(doc)["lines"][1]["quantity"]
    '-3'
    >>> sorted(f.code for f in doc.findings)  # the official example's bad check digits
    ['INVALID_GB_VAT', 'INVALID_GLN', 'INVALID_GLN']
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeAlias
from xml.etree.ElementTree import Element, ParseError  # types and errors only; parsing is defused
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as DefusedET
from pydantic import BaseModel, ValidationError

from bots.domain.identifiers import check_companies_house, check_gb_vat, check_gln, check_gtin, check_ods_code
from bots.domain.models import (
    CreditNote,
    DespatchAdvice,
    DespatchLine,
    DocumentTotals,
    Invoice,
    InvoiceLine,
    Party,
    POLine,
    PurchaseOrder,
    money,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ELEMENTS",
    "NAMESPACES",
    "ORDER_CUSTOMIZATION_ID",
    "ORDER_PROFILE_ID",
    "DocumentType",
    "Finding",
    "PeppolDocument",
    "PeppolError",
    "PeppolLine",
    "StatedTotals",
    "read_document",
    "to_json_shape",
    "write_order",
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
_PREFIX = {CBC: "cbc", CAC: "cac"}

ORDER_CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:order:3"
ORDER_PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:order_only:3"

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""Largest document read (bytes); PEPPOL's own transport limit is 100 MB with
attachments, invoices without attachments are far below this."""
DEFAULT_MAX_ELEMENTS = 200_000
"""Most XML elements read (about 6,000 invoice lines); bounds memory and time."""

GTIN_SCHEME = "0160"  # ISO 6523 ICD of GS1 GTIN
GLN_SCHEME = "0088"  # ISO 6523 ICD of GS1 GLN
_RECEIPT_PROPERTY = "ReceiptRequired"

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LONDON = ZoneInfo("Europe/London")
_LINE_TOLERANCE = Decimal("0.01")
_TAX_TOLERANCE = Decimal("0.01")


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
    if root is None or kind is None:  # pragma: no cover - expat reports "no element found"
        raise PeppolError(name, None, "no XML element found")
    return root, kind


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
        text = self.value.lower()
        if text not in ("true", "false"):
            raise self.error(f"expected true or false, got {self.value!r}")
        return text == "true"


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


# --- reading: parts ---------------------------------------------------------------------------------


class _Findings(list[Finding]):
    def add(self, code: str, message: str) -> None:
        self.append(Finding(code, message))


def _check_gln(node: _Node | None, findings: _Findings) -> None:
    if node is not None and node.attr("schemeID") == GLN_SCHEME and node.value:
        check = check_gln(node.value)
        if not check.valid:
            findings.add("INVALID_GLN", f"{node.path}: {check.message}")


def _party(node: _Node | None, findings: _Findings) -> Party:
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
    node: _Node, quantity_tag: str, findings: _Findings, *, priced: bool, mandatory_net: bool
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


@dataclass
class _TaxSubtotal:
    taxable: Decimal
    tax: Decimal
    category: str
    percent: Decimal
    path: str


@dataclass
class _Money:
    """What the arithmetic checks need besides lines and stated totals."""

    allowances: list[tuple[Decimal, str | None, Decimal | None]] = field(default_factory=list)
    charges: list[tuple[Decimal, str | None, Decimal | None]] = field(default_factory=list)
    subtotals: list[_TaxSubtotal] = field(default_factory=list)
    total_path: str = ""


def _tax_category(ac: _Node) -> tuple[str | None, Decimal | None]:
    cat = ac.get("cac:TaxCategory")
    if cat is None:
        return None, None
    return cat.text("cbc:ID"), cat.get_number("cbc:Percent")


def _document_money(
    root: _Node, currency: str | None, total_tag: str, *, require_tax: bool
) -> tuple[StatedTotals, _Money]:
    allowances, charges = _allowance_charges(root)
    money_parts = _Money(
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
                _TaxSubtotal(
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


# --- reading: EN 16931 arithmetic -----------------------------------------------------------------


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def _arithmetic(
    lines: Sequence[PeppolLine], totals: StatedTotals, parts: _Money, findings: _Findings, root: _Node
) -> None:
    """EN 16931 calculation rules (BR-CO-10 to -16, BR-x-08/09 per VAT category) and
    the PEPPOL line rule (net = quantity x price / base quantity + charges - allowances)."""
    where = parts.total_path or root.path
    for line in lines:
        unit_price = line.unit_price
        if line.net_amount is None or unit_price is None:
            continue
        expected = line.quantity * unit_price + line.charges - line.allowances
        if abs(expected - line.net_amount) > _LINE_TOLERANCE:
            findings.add(
                "PEPPOL-EN16931-R120",
                f"line {line.line_id}: net amount {_fmt(line.net_amount)} is not quantity x price"
                f"{' / base quantity' if line.base_quantity not in (None, 1) else ''}"
                f"{' + charges - allowances' if line.charges or line.allowances else ''}"
                f" = {_fmt(money(expected))}",
            )
    allowance_sum = sum((a for a, _, _ in parts.allowances), Decimal(0))
    charge_sum = sum((c for c, _, _ in parts.charges), Decimal(0))
    if totals.line_extension is not None and all(line.net_amount is not None for line in lines):
        line_sum = sum((line.net_amount or Decimal(0) for line in lines), Decimal(0))
        if line_sum != totals.line_extension:
            findings.add(
                "BR-CO-10",
                f"{where}: sum of line net amounts {_fmt(line_sum)} differs from "
                f"LineExtensionAmount {_fmt(totals.line_extension)}",
            )
    if parts.allowances or totals.allowances is not None:
        stated = totals.allowances or Decimal(0)
        if stated != allowance_sum:
            findings.add(
                "BR-CO-11",
                f"{where}: sum of document allowances {_fmt(allowance_sum)} differs from "
                f"AllowanceTotalAmount {_fmt(stated)}",
            )
    if parts.charges or totals.charges is not None:
        stated = totals.charges or Decimal(0)
        if stated != charge_sum:
            findings.add(
                "BR-CO-12",
                f"{where}: sum of document charges {_fmt(charge_sum)} differs from "
                f"ChargeTotalAmount {_fmt(stated)}",
            )
    zero = Decimal(0)
    if totals.tax_exclusive is not None and totals.line_extension is not None:
        expected = totals.line_extension - (totals.allowances or zero) + (totals.charges or zero)
        if expected != totals.tax_exclusive:
            findings.add(
                "BR-CO-13",
                f"{where}: TaxExclusiveAmount {_fmt(totals.tax_exclusive)} is not line total - allowances"
                f" + charges = {_fmt(expected)}",
            )
    if parts.subtotals and totals.tax is not None:
        sub_sum = sum((s.tax for s in parts.subtotals), zero)
        if sub_sum != totals.tax:
            findings.add(
                "BR-CO-14",
                f"{root.path}/cac:TaxTotal: TaxAmount {_fmt(totals.tax)} differs from the sum of "
                f"the VAT category amounts {_fmt(sub_sum)}",
            )
    if totals.tax_inclusive is not None and totals.tax_exclusive is not None:
        expected = totals.tax_exclusive + (totals.tax or zero)
        if expected != totals.tax_inclusive:
            findings.add(
                "BR-CO-15",
                f"{where}: TaxInclusiveAmount {_fmt(totals.tax_inclusive)} is not TaxExclusiveAmount"
                f" + VAT = {_fmt(expected)}",
            )
    if totals.payable is not None:
        base = totals.tax_inclusive
        if base is None and totals.tax_exclusive is None and totals.line_extension is not None:
            # Orders may state only the line total and the amount due.
            base = totals.line_extension - (totals.allowances or zero) + (totals.charges or zero)
            base += totals.tax or zero
        if base is not None:
            expected = base - (totals.prepaid or zero) + (totals.rounding or zero)
            if expected != totals.payable:
                findings.add(
                    "BR-CO-16",
                    f"{where}: PayableAmount {_fmt(totals.payable)} is not TaxInclusiveAmount - prepaid"
                    f" + rounding = {_fmt(expected)}",
                )
    _vat_breakdown(lines, parts, findings)


def _vat_breakdown(lines: Sequence[PeppolLine], parts: _Money, findings: _Findings) -> None:
    if not parts.subtotals:
        return
    zero = Decimal(0)

    def key(category: str | None, percent: Decimal | None) -> tuple[str, Decimal]:
        return (category or "").upper(), percent if percent is not None else zero

    base: dict[tuple[str, Decimal], Decimal] = {}
    for line in lines:
        k = key(line.vat_category, line.vat_percent)
        base[k] = base.get(k, zero) + (line.net_amount or zero)
    for amount, category, percent in parts.charges:
        k = key(category, percent)
        base[k] = base.get(k, zero) + amount
    for amount, category, percent in parts.allowances:
        k = key(category, percent)
        base[k] = base.get(k, zero) - amount
    for sub in parts.subtotals:
        cat = sub.category.upper()
        k = key(cat, sub.percent)
        expected_base = base.get(k, zero)
        if expected_base != sub.taxable:
            findings.add(
                f"BR-{cat}-08",
                f"{sub.path}: taxable amount {_fmt(sub.taxable)} for VAT category {cat} at "
                f"{_fmt(sub.percent)}% is not lines + charges - allowances = {_fmt(expected_base)}",
            )
        expected_tax = (sub.taxable * sub.percent / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if abs(expected_tax - sub.tax) > _TAX_TOLERANCE:
            findings.add(
                f"BR-{cat}-09",
                f"{sub.path}: VAT {_fmt(sub.tax)} for category {cat} is not taxable amount "
                f"{_fmt(sub.taxable)} x {_fmt(sub.percent)}% = {_fmt(expected_tax)}",
            )


# --- reading: documents ---------------------------------------------------------------------------------


def _header(root: _Node) -> tuple[str, dt.date]:
    return root.need_text("cbc:ID"), root.need("cbc:IssueDate").date()


def _invoice_lines(root: _Node, kind: DocumentType, findings: _Findings) -> list[tuple[_Node, PeppolLine]]:
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
    findings = _Findings()
    number, issue_date = _header(root)
    currency = root.need_text("cbc:DocumentCurrencyCode")
    type_tag = "cbc:CreditNoteTypeCode" if kind == "credit_note" else "cbc:InvoiceTypeCode"
    supplier = _party(root.need("cac:AccountingSupplierParty", "cac:Party"), findings)
    buyer = _party(root.need("cac:AccountingCustomerParty", "cac:Party"), findings)
    _check_gln(root.get("cac:Delivery", "cac:DeliveryLocation", "cbc:ID"), findings)
    lines = _invoice_lines(root, kind, findings)
    totals, parts = _document_money(root, currency, "cac:LegalMonetaryTotal", require_tax=True)
    _arithmetic([line for _, line in lines], totals, parts, findings, root)
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
    findings = _Findings()
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
    _arithmetic([line for _, line in lines], totals, parts, findings, root)
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
        receipt = dict(line.properties).get(_RECEIPT_PROPERTY, "true").strip().lower() != "false"
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
    findings = _Findings()
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


# --- JSON -------------------------------------------------------------------------------------------------


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


# --- writing: PEPPOL BIS Order 3 ------------------------------------------------------------------------


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
        w.leaf("cbc:Name", _RECEIPT_PROPERTY)
        w.leaf("cbc:Value", "true" if line.receipt_required else "false")
        w.close("cac:AdditionalItemProperty")
        w.close("cac:Item")
        w.close("cac:LineItem")
        w.close("cac:OrderLine")
    w.close("Order")
    return w.result()
