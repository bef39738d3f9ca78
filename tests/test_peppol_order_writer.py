"""PEPPOL BIS Order 3 writer: what it writes is a BIS Order 3 that reads back to an
equal PurchaseOrder, for hand-picked and for generated orders."""

from __future__ import annotations

import datetime as dt
import string
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.domain.identifiers import gtin_check_digit
from bots.domain.models import Party, POLine, PurchaseOrder
from connectors.peppol import (
    NAMESPACES,
    ORDER_CUSTOMIZATION_ID,
    ORDER_PROFILE_ID,
    read_document,
    write_order,
)

CBC = "{" + NAMESPACES["cbc"] + "}"
CAC = "{" + NAMESPACES["cac"] + "}"

TRUST = Party(
    name="Example Hospitals NHS Foundation Trust",
    vat_number="GB654957631",
    endpoint_id="5012345000008",
    endpoint_scheme="0088",
)
SUPPLIER = Party(
    name="Acme Medical Supplies Ltd",
    vat_number="GB980780684",
    endpoint_id="5098765000002",
    endpoint_scheme="0088",
)


def _order(**changes: object) -> PurchaseOrder:
    po = PurchaseOrder(
        po_number="PO-000123",
        requisition_ref="REQ-0042",
        supplier_id="SUP-0007",
        supplier_name="Acme Medical Supplies Ltd",
        supplier_vat="GB980780684",
        buyer_name="Example Hospitals NHS Foundation Trust",
        buyer_ods="RX1",
        cost_centre="CC-THEATRES",
        delivery_site="RX1AB",
        need_by=dt.date(2026, 5, 1),
        issue_date=dt.date(2026, 4, 14),
        lines=[
            POLine(
                line_no=1,
                item_code="5012345678900",
                description="Nitrile examination gloves, medium, box of 100",
                quantity=Decimal("40"),
                unit_price=Decimal("4.35"),
                vat_rate=Decimal("20"),
                unit_code="BX",
            ),
            POLine(
                line_no=2,
                item_code="STER-WIPE-200",
                description="Sterile wipes",
                quantity=Decimal("12.5"),
                unit_price=Decimal("0.333"),
                vat_rate=Decimal("0"),
                receipt_required=False,
            ),
            POLine(
                line_no=3,
                item_code="",
                description="Sanitary towels",
                quantity=Decimal("3"),
                unit_price=Decimal("1.99"),
                vat_rate=Decimal("5"),
            ),
        ],
    )
    return po.model_copy(update=changes)


def test_written_order_is_a_peppol_bis_order_3() -> None:
    """Customization and profile ids, parties, delivery site, lines with GTIN scheme 0160."""
    xml = write_order(_order(), buyer=TRUST, supplier=SUPPLIER)
    root = ET.fromstring(xml)
    assert root.tag == "{" + NAMESPACES["order"] + "}Order"
    assert root.findtext(f"{CBC}CustomizationID") == ORDER_CUSTOMIZATION_ID
    assert root.findtext(f"{CBC}ProfileID") == ORDER_PROFILE_ID
    assert root.findtext(f"{CBC}ID") == "PO-000123"
    assert root.findtext(f"{CBC}IssueDate") == "2026-04-14"
    assert root.findtext(f"{CBC}DocumentCurrencyCode") == "GBP"
    buyer = root.find(f"{CAC}BuyerCustomerParty/{CAC}Party")
    assert buyer is not None
    endpoint = buyer.find(f"{CBC}EndpointID")
    assert endpoint is not None
    assert (endpoint.text, endpoint.get("schemeID")) == ("5012345000008", "0088")
    assert root.findtext(f"{CAC}SellerSupplierParty/{CAC}Party/{CAC}PartyName/{CBC}Name") == (
        "Acme Medical Supplies Ltd"
    )
    assert root.findtext(f"{CAC}Delivery/{CAC}DeliveryLocation/{CBC}ID") == "RX1AB"
    lines = root.findall(f"{CAC}OrderLine/{CAC}LineItem")
    assert len(lines) == 3
    gtin = lines[0].find(f"{CAC}Item/{CAC}StandardItemIdentification/{CBC}ID")
    assert gtin is not None
    assert (gtin.text, gtin.get("schemeID")) == ("5012345678900", "0160")
    assert lines[1].find(f"{CAC}Item/{CAC}StandardItemIdentification") is None  # not a GTIN
    quantity = lines[0].find(f"{CBC}Quantity")
    assert quantity is not None
    assert (quantity.text, quantity.get("unitCode")) == ("40", "BX")
    assert lines[0].findtext(f"{CBC}LineExtensionAmount") == "174.00"
    assert lines[1].findtext(f"{CAC}Item/{CAC}ClassifiedTaxCategory/{CBC}ID") == "Z"
    assert lines[2].findtext(f"{CAC}Item/{CAC}ClassifiedTaxCategory/{CBC}Percent") == "5"
    total = root.find(f"{CAC}AnticipatedMonetaryTotal")
    assert total is not None
    assert total.findtext(f"{CBC}LineExtensionAmount") == "184.13"  # 174.00 + 4.16 + 5.97
    assert total.findtext(f"{CBC}PayableAmount") == "219.23"  # + 34.80 VAT at 20% + 0.30 at 5%


def test_written_order_reads_back_equal_and_adds_up() -> None:
    """write_order -> read_document gives the same PurchaseOrder, with no findings."""
    po = _order()
    doc = read_document(write_order(po, buyer=TRUST, supplier=SUPPLIER), name="PO-000123.xml")
    assert doc.model == po
    assert doc.findings == ()
    assert doc.buyer.endpoint_id == TRUST.endpoint_id
    assert doc.supplier.vat_number == SUPPLIER.vat_number
    assert doc.lines[0].gtin == "5012345678900"


def test_order_without_po_number_is_refused() -> None:
    """A requisition not yet raised as a PO has no number to send."""
    with pytest.raises(ValueError, match="no po_number"):
        write_order(_order(po_number=None), buyer=TRUST, supplier=SUPPLIER)


def test_text_xml_cannot_carry_is_refused_not_written() -> None:
    """A control character in a description is an error, not a broken document."""
    bad = _order(
        lines=[POLine(line_no=1, description="Gloves\x00", quantity=Decimal(1), unit_price=Decimal(1))]
    )
    with pytest.raises(ValueError, match=r"cbc:Name: character '\\x00' cannot be written in XML"):
        write_order(bad, buyer=TRUST, supplier=SUPPLIER)


def test_markup_in_text_is_escaped_and_survives() -> None:
    """Angle brackets, ampersands, quotes and carriage returns come back as written."""
    po = _order(supplier_name='Smith & Sons <"Medical"> Ltd', cost_centre="A\r\nB")
    doc = read_document(write_order(po, buyer=TRUST, supplier=SUPPLIER))
    assert doc.model == po


def test_issue_date_defaults_to_today_in_london() -> None:
    """An order with no issue date is issued today (Europe/London)."""
    from zoneinfo import ZoneInfo

    doc = read_document(write_order(_order(issue_date=None), buyer=TRUST, supplier=SUPPLIER))
    assert doc.issue_date in {
        dt.datetime.now(ZoneInfo("Europe/London")).date(),
        dt.datetime.now(dt.UTC).date(),  # the test ran across midnight
    }


def test_a_line_without_description_is_named_by_its_item_code() -> None:
    """BIS Order 3 requires an item name: a line with no description is written (and reads back)
    named by its item code."""
    po = _order()
    line = po.lines[0].model_copy(update={"description": ""})
    po = po.model_copy(update={"lines": [line, *po.lines[1:]]})
    doc = read_document(write_order(po, buyer=TRUST, supplier=SUPPLIER))
    assert doc.model.lines[0].description == line.item_code


# --- generated orders ---------------------------------------------------------------------------

_TEXT = (
    st.text(
        alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40
    )
    .map(str.strip)
    .filter(bool)
)  # non-empty after stripping, as the name says; empties are drawn explicitly
_CODE = st.text(alphabet=string.ascii_uppercase + string.digits + "-/.", min_size=1, max_size=20)
_ODS = st.from_regex(r"[A-Z][A-Z0-9]{2}([A-Z0-9]{2})?", fullmatch=True)
_GTIN = st.from_regex(r"\d{12}", fullmatch=True).map(lambda body: body + gtin_check_digit(body))
_DATES = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


def _decimal(places: int, low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False)


@st.composite
def _lines(draw: st.DrawFn) -> list[POLine]:
    numbers = draw(st.lists(st.integers(1, 999), min_size=1, max_size=6, unique=True))
    return [
        POLine(
            line_no=n,
            item_code=draw(st.one_of(st.just(""), _CODE, _GTIN)),
            description=draw(_TEXT),
            quantity=draw(_decimal(draw(st.integers(0, 3)), "0.001", "100000")),
            unit_price=draw(_decimal(draw(st.integers(0, 4)), "0", "99999")),
            vat_rate=draw(st.sampled_from([Decimal(20), Decimal(5), Decimal(0), Decimal("17.5")])),
            unit_code=draw(st.sampled_from(["EA", "BX", "PK", "C62", "KGM", "LTR", "HUR"])),
            receipt_required=draw(st.booleans()),
        )
        for n in numbers
    ]


_ORDERS = st.builds(
    PurchaseOrder,
    po_number=_CODE,
    requisition_ref=st.one_of(st.none(), _CODE),
    supplier_id=st.one_of(st.just(""), _CODE),
    supplier_name=_TEXT,
    supplier_vat=st.one_of(st.none(), st.just("GB980780684"), st.just("GB123456789")),
    buyer_name=_TEXT,
    buyer_ods=st.one_of(st.none(), _ODS),
    cost_centre=st.one_of(st.just(""), _TEXT),
    delivery_site=st.one_of(st.just(""), _ODS),
    need_by=st.one_of(st.none(), _DATES),
    issue_date=_DATES,
    currency=st.sampled_from(["GBP", "EUR"]),
    lines=_lines(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(po=_ORDERS)
def test_generated_orders_read_back_equal(po: PurchaseOrder) -> None:
    """Any valid PurchaseOrder survives write_order -> read_document unchanged, and adds up."""
    # Parties carry only endpoints here, so every other party field comes from the order.
    buyer = Party(endpoint_id=TRUST.endpoint_id, endpoint_scheme="0088")
    supplier = Party(endpoint_id=SUPPLIER.endpoint_id, endpoint_scheme="0088")
    doc = read_document(write_order(po, buyer=buyer, supplier=supplier), name=f"{po.po_number}.xml")
    assert doc.model == po
    arithmetic = [f for f in doc.findings if not f.code.startswith("INVALID_")]
    assert arithmetic == []
