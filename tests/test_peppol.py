"""PEPPOL BIS 3 reader: the official examples read with their own totals, lines, types
and references; arithmetic and identifier problems are findings, never failures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.models import CreditNote, DespatchAdvice, Invoice, PurchaseOrder
from connectors.peppol import (
    NAMESPACES,
    PeppolDocument,
    PeppolError,
    StatedTotals,
    read_document,
    to_json_shape,
)

FIXTURES = Path(__file__).parent / "fixtures" / "peppol"
CBC = "{" + NAMESPACES["cbc"] + "}"
CAC = "{" + NAMESPACES["cac"] + "}"

# file, type, id, type code, currency, lines, order ref, billing ref, payable,
# order line references, identifier warnings expected
EXPECTED = [
    pytest.param(
        "invoice/base-example.xml", "invoice", "Snippet1", "380", "EUR", 2, None, None, "1656.25",
        ["123", "123"], {"INVALID_GB_VAT", "INVALID_GLN"}, id="base-example",
    ),
    pytest.param(
        "invoice/base-creditnote-correction.xml", "credit_note", "Snippet1", "381", "EUR", 2, None,
        "Snippet1", "1656.25", ["123", "123"], {"INVALID_GB_VAT", "INVALID_GLN"}, id="creditnote-correction",
    ),
    pytest.param(
        "invoice/base-negative-inv-correction.xml", "invoice", "Correction1", "380", "EUR", 2, None,
        "Snippet1", "-1656.25", ["123", "123"], {"INVALID_GB_VAT", "INVALID_GLN"}, id="negative-invoice",
    ),
    pytest.param(
        "invoice/Allowance-example.xml", "invoice", "Snippet1", "380", "EUR", 3, None, None, "6125.00",
        [None, "124", "124"], {"INVALID_GB_VAT"}, id="allowance-example",
    ),
    pytest.param(
        "invoice/Vat-category-S.xml", "invoice", "Snippet1", "380", "EUR", 3, None, None, "8550",
        ["123", None, None], {"INVALID_GB_VAT", "INVALID_GTIN"}, id="vat-category-S",
    ),
    pytest.param(
        "invoice/vat-category-E.xml", "invoice", "Vat-Z", "380", "GBP", 1, None, None, "1200.00",
        ["1"], {"INVALID_GB_VAT", "INVALID_GTIN"}, id="vat-category-E",
    ),
    pytest.param(
        "invoice/vat-category-O.xml", "invoice", "Vat-O", "380", "SEK", 1, None, None, "3200.00",
        ["1"], set(), id="vat-category-O",
    ),
    pytest.param(
        "invoice/vat-category-Z.xml", "invoice", "Vat-Z", "380", "GBP", 1, None, None, "1200.00",
        ["1"], {"INVALID_GB_VAT", "INVALID_GTIN"}, id="vat-category-Z",
    ),
    pytest.param(
        "order/Order_Example.xml", "order", "34", "220", "NOK", 2, None, None, "6363",
        [None, None], {"INVALID_GTIN"}, id="order-example",
    ),
    pytest.param(
        "order/Order_sc1.xml", "order", "Order-1", None, "EUR", 2, None, None, "840",
        [None, None], set(), id="order-sc1",
    ),
    pytest.param(
        "order/UC1_Order.xml", "order", "1", None, "EUR", 3, None, None, "143.75",
        [None, None, None], set(), id="order-uc1",
    ),
    pytest.param(
        "order/UC2_Order.xml", "order", "1", None, "EUR", 2, None, None, "875.00",
        [None, None], set(), id="order-uc2",
    ),
    pytest.param(
        "order/UC3_Order.xml", "order", "5", None, "EUR", 1, None, None, "400",
        [None], set(), id="order-uc3",
    ),
    pytest.param(
        "despatch/DespatchAdvice_UseCase1.xml", "despatch_advice", "1234", None, None, 2, "4321", None,
        None, ["1", "2"], set(), id="despatch-uc1",
    ),
    pytest.param(
        "despatch/DespatchAdvice_UseCase2.xml", "despatch_advice", "1236", None, None, 5, "4321", None,
        None, ["1", "2", "3", "4", "5"], {"INVALID_GTIN"}, id="despatch-uc2",
    ),
    pytest.param(
        "despatch/DespatchAdvice_UseCase3.xml", "despatch_advice", "1238", None, None, 4, "4321", None,
        None, ["1", "2", "3", "4"], {"INVALID_GTIN"}, id="despatch-uc3",
    ),
]  # fmt: skip

_TOTAL_ELEMENTS = {
    "line_extension": "LineExtensionAmount",
    "allowances": "AllowanceTotalAmount",
    "charges": "ChargeTotalAmount",
    "tax_exclusive": "TaxExclusiveAmount",
    "tax_inclusive": "TaxInclusiveAmount",
    "prepaid": "PrepaidAmount",
    "rounding": "PayableRoundingAmount",
    "payable": "PayableAmount",
}


def _stated_by_stdlib(path: Path) -> dict[str, Decimal | None]:
    """The document's own totals, read independently of the connector (trusted fixture)."""
    root = ET.parse(path).getroot()
    monetary = root.find(f"{CAC}LegalMonetaryTotal")
    if monetary is None:
        monetary = root.find(f"{CAC}AnticipatedMonetaryTotal")
    stated: dict[str, Decimal | None] = {}
    for name, local in _TOTAL_ELEMENTS.items():
        elem = monetary.find(f"{CBC}{local}") if monetary is not None else None
        stated[name] = Decimal(elem.text) if elem is not None and elem.text else None
    currency = root.findtext(f"{CBC}DocumentCurrencyCode")
    taxes = [
        t.find(f"{CBC}TaxAmount")
        for t in root.findall(f"{CAC}TaxTotal")
        if t.find(f"{CBC}TaxAmount") is not None
    ]
    own = [t for t in taxes if t is not None and t.get("currencyID") == currency]
    stated["tax"] = Decimal(own[0].text) if own and own[0].text else None
    return stated


@pytest.mark.parametrize(
    (
        "relpath",
        "doc_type",
        "doc_id",
        "type_code",
        "currency",
        "line_count",
        "order_ref",
        "billing_ref",
        "payable",
        "line_refs",
        "id_warnings",
    ),
    EXPECTED,
)
def test_official_example_reads_with_its_own_totals_lines_type_and_references(
    relpath: str,
    doc_type: str,
    doc_id: str,
    type_code: str | None,
    currency: str | None,
    line_count: int,
    order_ref: str | None,
    billing_ref: str | None,
    payable: str | None,
    line_refs: list[str | None],
    id_warnings: set[str],
) -> None:
    """Each official example reads to the right type, id, lines, references and totals."""
    path = FIXTURES / relpath
    doc = read_document(path)

    assert doc.document_type == doc_type
    assert doc.id == doc_id
    assert doc.type_code == type_code
    assert doc.currency == currency
    assert len(doc.lines) == line_count
    assert doc.order_reference == order_ref
    assert doc.billing_reference == billing_ref
    assert [line.order_line_reference for line in doc.lines] == line_refs
    if doc_type == "despatch_advice":
        assert doc.totals == StatedTotals()
    else:
        assert _amount(doc.totals.payable) == payable
        assert {k: getattr(doc.totals, k) for k in _TOTAL_ELEMENTS} | {"tax": doc.totals.tax} == (
            _stated_by_stdlib(path)
        )
    # Official examples add up: arithmetic rules find nothing; bad check digits only warn.
    codes = {f.code for f in doc.findings}
    assert codes == id_warnings
    assert all(f.message.startswith("/") for f in doc.findings)


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@pytest.mark.parametrize(
    ("relpath", "model_type"),
    [
        pytest.param("invoice/base-example.xml", Invoice, id="invoice"),
        pytest.param("invoice/base-creditnote-correction.xml", CreditNote, id="credit-note"),
        pytest.param("order/UC1_Order.xml", PurchaseOrder, id="order"),
        pytest.param("despatch/DespatchAdvice_UseCase1.xml", DespatchAdvice, id="despatch"),
    ],
)
def test_each_document_type_becomes_its_domain_model(relpath: str, model_type: type) -> None:
    """Invoices, credit notes, orders and despatch advices map to their domain models."""
    assert type(read_document(FIXTURES / relpath).model) is model_type


def test_invoice_model_carries_lines_parties_and_totals() -> None:
    """The Allowance example's model: unit price per base quantity, VAT category and rate, totals."""
    invoice = read_document(FIXTURES / "invoice/Allowance-example.xml").model
    assert isinstance(invoice, Invoice)
    assert invoice.invoice_number == "Snippet1"
    assert invoice.supplier.vat_number == "GB1232434"
    assert invoice.supplier.gln == "7300010000001"
    assert invoice.buyer.name == "BuyerTradingName AS"
    line2 = invoice.lines[1]
    assert (line2.quantity, line2.unit_price, line2.net_amount) == (Decimal(10), Decimal(100), Decimal(1000))
    assert (line2.vat_category, line2.vat_rate, line2.order_line_reference) == ("E", Decimal(0), "124")
    assert invoice.lines[0].seller_item_id == "97iugug876"
    assert invoice.totals.prepaid == Decimal(1000)
    assert invoice.totals.payable == Decimal("6125.00")


def test_negative_invoice_keeps_negative_quantities_and_amounts() -> None:
    """A negative invoice (type 380) reads with its negative quantities, not as an error."""
    doc = read_document(FIXTURES / "invoice/base-negative-inv-correction.xml")
    invoice = doc.model
    assert isinstance(invoice, Invoice)
    assert not invoice.is_credit
    assert invoice.lines[0].quantity == Decimal(-7)
    assert invoice.lines[0].net_amount == Decimal(-2800)
    assert invoice.totals.payable == Decimal("-1656.25")
    assert invoice.billing_reference == "Snippet1"


def test_credit_note_is_a_credit_with_its_billing_reference() -> None:
    """A CreditNote root gives a CreditNote model with the invoice it corrects."""
    note = read_document(FIXTURES / "invoice/base-creditnote-correction.xml").model
    assert isinstance(note, CreditNote)
    assert note.is_credit
    assert note.billing_reference == "Snippet1"
    assert [line.quantity for line in note.lines] == [Decimal(7), Decimal(-3)]


def test_order_model_maps_parties_lines_and_gtin() -> None:
    """UC1: the hospital buyer's GLN, the supplier, line numbers, prices, GTINs and VAT."""
    doc = read_document(FIXTURES / "order/UC1_Order.xml")
    po = doc.model
    assert isinstance(po, PurchaseOrder)
    assert po.po_number == "1"
    assert po.buyer_name == "City Hospital"
    assert doc.buyer.gln == "7300010000001"
    assert po.supplier_name == "The Supplier AB"
    assert po.supplier_id == "987654325"
    assert [(line.line_no, line.quantity, line.unit_price) for line in po.lines] == [
        (1, Decimal(10), Decimal(4)),
        (2, Decimal(5), Decimal(6)),
        (3, Decimal(15), Decimal(3)),
    ]
    assert po.lines[0].item_code == "SN-33"
    assert doc.lines[0].gtin == "05704066204093"
    assert {line.vat_rate for line in po.lines} == {Decimal(25)}
    assert po.need_by is not None
    assert po.need_by.isoformat() == "2013-07-16"


def test_order_sc1_uses_twenty_percent_vat() -> None:
    """Order_sc1 states 20% VAT on its lines."""
    po = read_document(FIXTURES / "order/Order_sc1.xml").model
    assert isinstance(po, PurchaseOrder)
    assert {line.vat_rate for line in po.lines} == {Decimal(20)}


def test_despatch_advice_lines_reference_order_lines() -> None:
    """A despatch advice names the order and the order line each despatch line ships."""
    advice = read_document(FIXTURES / "despatch/DespatchAdvice_UseCase1.xml").model
    assert isinstance(advice, DespatchAdvice)
    assert advice.order_reference == "4321"
    assert [(line.order_line_reference, line.quantity) for line in advice.lines] == [
        ("1", Decimal(10)),
        ("2", Decimal(10)),
    ]
    assert advice.lines[0].gtin == "7611104117056"
    assert advice.buyer.name == "Köparen"


def test_invalid_check_digits_are_warnings_naming_the_element() -> None:
    """GB VAT, GLN and GTIN check-digit failures are findings with the element's path."""
    doc = read_document(FIXTURES / "invoice/vat-category-Z.xml")
    messages = {f.code: f.message for f in doc.findings}
    assert "GB928741974" in messages["INVALID_GB_VAT"]
    assert messages["INVALID_GB_VAT"].startswith(
        "/Invoice/cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID:"
    )
    assert "/cac:StandardItemIdentification/cbc:ID" in messages["INVALID_GTIN"]
    assert doc.model.supplier.vat_number == "GB928741974"  # type: ignore[union-attr]


def _mutated(tmp_path: Path, relpath: str, element: str, old: str, new: str, nth: int) -> PeppolDocument:
    """The fixture with the ``nth`` ``<cbc:element ...>old<`` changed to ``new``."""
    text = (FIXTURES / relpath).read_text(encoding="utf-8")
    matches = list(re.finditer(rf"(<cbc:{element}\b[^>]*>){re.escape(old)}<", text))
    assert len(matches) >= nth, f"{element}={old} not in {relpath}"
    m = matches[nth - 1]
    target = tmp_path / Path(relpath).name
    target.write_text(f"{text[: m.start()]}{m.group(1)}{new}<{text[m.end() :]}", encoding="utf-8")
    return read_document(target)


BASE = "invoice/base-example.xml"
ALLOWANCES = "invoice/Allowance-example.xml"
VAT_E = "invoice/vat-category-E.xml"
CO13, CO15, CO16 = "BR-CO-13", "BR-CO-15", "BR-CO-16"
VAT_Z = "invoice/vat-category-Z.xml"


@pytest.mark.parametrize(
    ("relpath", "element", "old", "new", "nth", "expected"),
    [
        pytest.param(BASE, "LineExtensionAmount", "1300", "1301", 1, {"BR-CO-10", "BR-CO-13"}, id="BR-CO-10"),
        pytest.param(ALLOWANCES, "AllowanceTotalAmount", "200", "210", 1, {"BR-CO-11", CO13}, id="BR-CO-11"),
        pytest.param(BASE, "ChargeTotalAmount", "25", "30", 1, {"BR-CO-12", "BR-CO-13"}, id="BR-CO-12"),
        pytest.param(BASE, "TaxExclusiveAmount", "1325", "1330", 1, {"BR-CO-13", "BR-CO-15"}, id="BR-CO-13"),
        pytest.param(BASE, "TaxAmount", "331.25", "331.00", 1, {"BR-CO-14", "BR-CO-15"}, id="BR-CO-14"),
        pytest.param(BASE, "TaxInclusiveAmount", "1656.25", "1656.00", 1, {CO15, CO16}, id="BR-CO-15"),
        pytest.param(BASE, "PayableAmount", "1656.25", "1600.00", 1, {"BR-CO-16"}, id="BR-CO-16"),
        pytest.param(ALLOWANCES, "PrepaidAmount", "1000", "900", 1, {"BR-CO-16"}, id="BR-CO-16-prepaid"),
        pytest.param(BASE, "TaxableAmount", "1325", "1300", 1, {"BR-S-08", "BR-S-09"}, id="BR-S-08"),
        pytest.param(BASE, "TaxAmount", "331.25", "300.00", 2, {"BR-S-09", "BR-CO-14"}, id="BR-S-09"),
        pytest.param(VAT_Z, "TaxableAmount", "1200.00", "1000.00", 1, {"BR-Z-08"}, id="BR-Z-08"),
        pytest.param(VAT_Z, "TaxAmount", "0.00", "5.00", 2, {"BR-Z-09", "BR-CO-14"}, id="BR-Z-09"),
        pytest.param(VAT_E, "TaxableAmount", "1200.00", "1100.00", 1, {"BR-E-08"}, id="BR-E-08"),
        pytest.param(BASE, "PriceAmount", "400", "399", 1, {"PEPPOL-EN16931-R120"}, id="line-net"),
        pytest.param(ALLOWANCES, "BaseQuantity", "2", "4", 1, {"PEPPOL-EN16931-R120"}, id="line-base-qty"),
        pytest.param("order/Order_Example.xml", "PayableAmount", "6363", "6364", 1, {"BR-CO-16"}, id="order"),
    ],
)  # fmt: skip
def test_arithmetic_that_does_not_add_up_is_a_finding_with_its_rule_id(
    tmp_path: Path, relpath: str, element: str, old: str, new: str, nth: int, expected: set[str]
) -> None:
    """Breaking one stated amount reports the EN 16931 rule(s) it breaks, and still reads."""
    doc = _mutated(tmp_path, relpath, element, old, new, nth)
    codes = {f.code for f in doc.findings if not f.code.startswith("INVALID_")}
    assert codes == expected
    assert doc.model is not None


def test_line_net_within_rounding_is_not_a_finding(tmp_path: Path) -> None:
    """A line net rounded to the penny (3 x 3.333 = 9.999 -> 10.00) passes the line rule."""
    text = (FIXTURES / "invoice/vat-category-O.xml").read_text(encoding="utf-8")
    text = text.replace('unitCode="EA">1<', 'unitCode="EA">3<').replace(
        '<cbc:PriceAmount currencyID="SEK">3200.00<', '<cbc:PriceAmount currencyID="SEK">1066.6667<'
    )
    doc = read_document(text.encode(), name="rounded.xml")
    assert [f.code for f in doc.findings] == []


def test_json_shape_is_exactly_the_documented_one() -> None:
    """`to_json_shape` has the documented keys, and amounts are strings as stated."""
    doc = read_document(FIXTURES / "invoice/base-example.xml")
    shape = json.loads(json.dumps(to_json_shape(doc)))
    assert set(shape) == {
        "document_type", "id", "issue_date", "currency", "supplier", "buyer", "order_reference",
        "billing_reference", "lines", "totals", "findings",
    }  # fmt: skip
    assert set(shape["supplier"]) == set(shape["buyer"]) == {"name", "vat_number", "endpoint_id"}
    line = shape["lines"][1]
    assert set(line) == {
        "id", "quantity", "unit_code", "price", "net_amount", "item", "vat", "order_line_reference",
    }  # fmt: skip
    assert set(line["item"]) == {"name", "gtin", "seller_item_id"}
    assert set(line["vat"]) == {"category", "percent"}
    assert set(shape["totals"]) == {
        "line_extension", "allowances", "charges", "tax_exclusive", "tax", "tax_inclusive", "prepaid",
        "rounding", "payable",
    }  # fmt: skip
    assert line == {
        "id": "2",
        "quantity": "-3",
        "unit_code": "DAY",
        "price": "500",
        "net_amount": "-1500",
        "item": {"name": "item name 2", "gtin": None, "seller_item_id": None},
        "vat": {"category": "S", "percent": "25.0"},
        "order_line_reference": "123",
    }
    assert shape["totals"] == {
        "line_extension": "1300",
        "allowances": None,
        "charges": "25",
        "tax_exclusive": "1325",
        "tax": "331.25",
        "tax_inclusive": "1656.25",
        "prepaid": None,
        "rounding": None,
        "payable": "1656.25",
    }
    assert shape["document_type"] == "invoice"
    assert shape["issue_date"] == "2017-11-13"
    assert shape["supplier"] == {
        "name": "SupplierTradingName Ltd.",
        "vat_number": "GB1232434",
        "endpoint_id": "9482348239847239874",
    }
    assert {f["code"] for f in shape["findings"]} == {"INVALID_GB_VAT", "INVALID_GLN"}
    assert all(set(f) == {"code", "message"} for f in shape["findings"])


def test_reads_from_bytes_with_a_name_for_errors() -> None:
    """Bytes read the same as the file; errors use the given name."""
    data = (FIXTURES / "invoice/base-example.xml").read_bytes()
    assert read_document(data).totals.payable == Decimal("1656.25")
    with pytest.raises(PeppolError, match=r"^upload\.xml: /Invoice/cbc:ID: missing mandatory element$"):
        read_document(data.replace(b"<cbc:ID>Snippet1</cbc:ID>", b"", 1), name="upload.xml")


def test_error_names_file_and_element_as_documented() -> None:
    """The error text is `file: element path: what is wrong`."""
    data = (FIXTURES / "invoice/base-example.xml").read_bytes()
    bad = data.replace(b'unitCode="DAY">-3<', b'unitCode="DAY">x<')
    with pytest.raises(PeppolError) as info:
        read_document(bad, name="base-example.xml")
    assert str(info.value) == (
        "base-example.xml: /Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity: expected a number, got 'x'"
    )
    assert info.value.path == "/Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity"
    assert isinstance(info.value, ValueError)


def test_file_over_the_byte_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    """`max_bytes` bounds what is read at all."""
    with pytest.raises(PeppolError, match=r"base-example\.xml: 9,228 bytes is over the 1,000-byte limit"):
        read_document(FIXTURES / "invoice/base-example.xml", max_bytes=1000)


def test_missing_file_is_a_peppol_error(tmp_path: Path) -> None:
    """A path that does not exist is reported by name, not as a bare OSError."""
    with pytest.raises(PeppolError, match=r"^nothing\.xml: cannot read the file"):
        read_document(tmp_path / "nothing.xml")
