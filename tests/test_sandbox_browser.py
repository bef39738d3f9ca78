"""The sandbox portal in real Chromium: every page, the PO form, invoices, contracts, each chaos knob."""

from __future__ import annotations

import hashlib
import re

import pytest

from sandbox.pdf import text_pdf
from tests.plugins.browser import assert_accessible
from tests.plugins.sandbox import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_every_page_renders_with_labels_and_table_headers(sandbox, page) -> None:
    login(page, sandbox.url)
    page.get_by_role("heading", name="Dashboard").wait_for()
    state = sandbox.state(sections="invoices,contracts,receipts", limit=1)
    pages = {
        "/": "Dashboard",
        "/suppliers": "Suppliers",
        "/suppliers/SUP-00001": None,
        "/purchase-orders": "Purchase orders",
        "/purchase-orders/PO-000001": "Purchase order PO-000001",
        "/purchase-orders/new": "New purchase order",
        "/receipts": "Goods receipts",
        "/receipts/new": "Record goods receipt",
        "/receipts/new?po_number=PO-000001": "Record goods receipt",
        f"/receipts/{state['receipts'][0]['grn_number']}": f"Goods receipt {state['receipts'][0]['grn_number']}",  # noqa: E501
        "/invoices": "Invoice inbox",
        f"/invoices/{state['invoices'][0]['id']}": None,
        "/contracts": "Contract register",
        "/contracts/new": "Upload contract",
        f"/contracts/{state['contracts'][0]['contract_id']}": f"Contract {state['contracts'][0]['contract_id']}",  # noqa: E501
    }
    for path, heading in pages.items():
        response = page.goto(sandbox.url + path)
        assert response.status == 200, path
        if heading:
            assert page.get_by_role("heading", level=1).inner_text() == heading
        assert_accessible(page)
    page.goto(sandbox.url + "/purchase-orders/PO-000001")
    assert page.get_by_role("row", name=re.compile("Gross total")).count() == 1


def test_supplier_search_autocomplete_opens_the_supplier(sandbox, page) -> None:
    login(page, sandbox.url, "/suppliers")
    page.get_by_label("Search suppliers").press_sequentially("Barnes")
    page.get_by_role("option", name=re.compile("Barnes & Lowe Medical Ltd")).click()
    page.get_by_role("heading", name="Barnes & Lowe Medical Ltd").wait_for()
    vat = page.locator("[data-field=vat]").inner_text()
    assert re.fullmatch(r"GB\d{9}", vat)


def _fill_po(page, ref: str, supplier_prefix: str = "Barnes") -> None:
    page.get_by_label("Supplier", exact=True).press_sequentially(supplier_prefix)
    page.get_by_role("option", name=re.compile(supplier_prefix)).first.click()
    page.get_by_label("Cost centre").fill("CC4107")
    page.get_by_label("Delivery site (ODS code)").fill("RX1AB")
    page.get_by_label("Need-by date").fill("2026-12-15")
    page.get_by_label("Requisition reference").fill(ref)
    page.get_by_label("Line 1 item code").fill("5012345678900")
    page.get_by_label("Line 1 description").fill("Nitrile examination gloves, medium, box of 100")
    page.get_by_label("Line 1 quantity").fill("10")
    page.get_by_label("Line 1 unit price").fill("4.50")
    page.get_by_role("button", name="Add line").click()
    page.get_by_label("Line 2 item code").fill("SVC-00001")
    page.get_by_label("Line 2 description").fill("Quarterly service visit: infusion pumps")
    page.get_by_label("Line 2 quantity").fill("1")
    page.get_by_label("Line 2 unit price").fill("250")
    page.get_by_label("Line 2 VAT rate").select_option("0")


def test_new_purchase_order_through_the_form(sandbox, page) -> None:
    login(page, sandbox.url, "/purchase-orders/new")
    _fill_po(page, "REQ-BROWSER-0001")
    page.get_by_role("button", name="Create purchase order").click()
    po_number = page.get_by_test_id("po-number").inner_text()
    assert re.fullmatch(r"PO-\d{6}", po_number)
    (po,) = sandbox.state(sections="purchase_orders", po_number=po_number)["purchase_orders"]
    assert po["requisition_ref"] == "REQ-BROWSER-0001"
    assert po["delivery_site"] == "RX1AB"
    assert po["supplier_id"] == "SUP-00008"  # Barnes & Lowe, chosen through the autocomplete
    assert [(ln["item_code"], ln["quantity"], ln["unit_price"], ln["vat_rate"]) for ln in po["lines"]] == [
        ("5012345678900", "10", "4.50", "20"),
        ("SVC-00001", "1", "250.00", "0"),
    ]
    assert (po["net_total"], po["vat_total"], po["gross_total"]) == ("295.00", "9.00", "304.00")
    page.get_by_role("link", name=f"View purchase order {po_number}").click()
    assert page.locator("[data-field=gross_total]").inner_text() == "£304.00"


def test_purchase_order_validation_shows_messages_next_to_fields(sandbox, page) -> None:
    login(page, sandbox.url, "/purchase-orders/new")
    page.get_by_label("Supplier", exact=True).fill("No Such Supplier Ltd")
    page.get_by_label("Requisition reference").fill("REQ-BROWSER-BAD")
    page.get_by_label("Line 1 item code").fill("5012345678901")
    page.get_by_role("button", name="Create purchase order").click()
    page.get_by_role("alert").wait_for()
    supplier = page.get_by_label("Supplier", exact=True)
    assert supplier.input_value() == "No Such Supplier Ltd"
    assert supplier.get_attribute("aria-invalid") == "true"
    described = page.locator(f"#{supplier.get_attribute('aria-describedby')}")
    assert "No supplier matches" in described.inner_text()
    assert page.get_by_label("Requisition reference").input_value() == "REQ-BROWSER-BAD"
    assert (
        page.get_by_text("Line 1: GTIN 5012345678901 has a wrong check digit").count() == 2
    )  # summary + inline
    assert (
        sandbox.state(sections="purchase_orders", requisition_ref="REQ-BROWSER-BAD")["purchase_orders"] == []
    )


def test_invoice_hold_and_ubl_download(sandbox, page) -> None:
    invoice = sandbox.state(sections="invoices", invoice_status="received")["invoices"][-1]
    login(page, sandbox.url, f"/invoices/{invoice['id']}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download UBL XML").click()
    assert invoice["invoice_number"] in download.value.path().read_text()
    page.get_by_label("Hold reason").select_option("QTY_OVER_RECEIVED")
    page.get_by_label("Hold note").fill("Waiting for the second delivery")
    page.get_by_role("button", name="Hold", exact=True).click()
    page.get_by_text("Invoice put on hold.").wait_for()
    assert page.locator("#invoice-status").inner_text() == "on hold"
    row = page.get_by_role("row", name=re.compile("QTY_OVER_RECEIVED"))
    assert "Waiting for the second delivery" in row.inner_text()
    (after,) = [i for i in sandbox.state(sections="invoices")["invoices"] if i["id"] == invoice["id"]]
    assert after["status"] == "on_hold"
    assert after["history"][-1]["reason_code"] == "QTY_OVER_RECEIVED"


def test_invoice_list_filters_and_pages(sandbox, page) -> None:
    login(page, sandbox.url, "/invoices")
    page.get_by_label("Status").select_option("received")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"status=received"))
    statuses = page.locator("tbody tr td:nth-child(7)").all_inner_texts()
    assert statuses
    assert set(statuses) == {"received"}


def test_contract_upload_and_byte_identical_download(sandbox, page, tmp_path) -> None:
    pdf = text_pdf(["Contract CT-BROWSER-1", "Supply of sterile dressings"], title="CT-BROWSER-1")
    (tmp_path / "CT-BROWSER-1.pdf").write_bytes(pdf)
    login(page, sandbox.url, "/contracts/new")
    page.get_by_label("Contract ID").fill("CT-BROWSER-1")
    page.get_by_label("Contract title").fill("Supply of sterile dressings")
    page.get_by_label("Supplier name").fill("Barnes & Lowe Medical Ltd")
    page.get_by_label("Supplier VAT number").fill("GB123456782")
    page.get_by_label("Companies House number").fill("01234567")
    page.get_by_label("Buyer ODS code").fill("RX1")
    page.get_by_label("CPV codes").fill("33141110-4")
    page.get_by_label("Procedure").select_option("competitive_flexible")
    page.get_by_label("Contract value excluding VAT").fill("250000")
    page.get_by_label("Contract value including VAT").fill("300000")
    page.get_by_label("Start date").fill("2026-04-01")
    page.get_by_label("End date", exact=True).fill("2028-03-31")
    page.get_by_label("Maximum end date (with extensions)").fill("2029-03-31")
    page.get_by_label("KPIs", exact=True).fill(
        "Fill rate\nOn-time delivery\nStock-outs reported within 1 day"
    )
    page.get_by_label("Supplier is an SME").check()
    page.get_by_label("Contract document (PDF)").set_input_files(str(tmp_path / "CT-BROWSER-1.pdf"))
    page.get_by_role("button", name="Upload contract").click()
    page.get_by_text("Contract CT-BROWSER-1 uploaded.").wait_for()
    assert page.locator("[data-field=procedure]").inner_text() == "Competitive flexible procedure"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download contract document").click()
    assert download.value.path().read_bytes() == pdf
    (contract,) = [
        c for c in sandbox.state(sections="contracts")["contracts"] if c["contract_id"] == "CT-BROWSER-1"
    ]
    assert contract["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert contract["sme"] is True
    kpis = ["Fill rate", "On-time delivery", "Stock-outs reported within 1 day"]
    assert contract["kpis"] == kpis
    assert contract["kpi_count"] == 3
    assert page.get_by_role("list", name="KPIs").get_by_role("listitem").all_inner_texts() == kpis
    page.goto(sandbox.url + "/contracts")
    page.get_by_label("Search contracts").fill("CT-BROWSER")
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 1


# --- chaos knobs ---------------------------------------------------------------------------


def _label_order(page) -> list[str]:
    return page.locator("form#po-form fieldset").first.locator("label").all_inner_texts()


def _container_ids(page) -> list[str]:
    return page.locator("form#po-form .field").evaluate_all("els => els.map(e => e.id)")


def test_shuffle_changes_field_order_and_ids_but_labels_still_work(sandbox_factory, page) -> None:
    portal = sandbox_factory(chaos="shuffle=1,seed=11", orders=10)
    login(page, portal.url, "/purchase-orders/new")
    first_order, first_ids = _label_order(page), _container_ids(page)
    page.reload()
    second_order, second_ids = _label_order(page), _container_ids(page)
    assert sorted(first_order) == sorted(second_order)
    assert first_order != second_order
    assert set(first_ids).isdisjoint(second_ids)
    _fill_po(page, "REQ-SHUFFLE-1")
    page.get_by_role("button", name="Create purchase order").click()
    po_number = page.get_by_test_id("po-number").inner_text()
    (po,) = portal.state(sections="purchase_orders", requisition_ref="REQ-SHUFFLE-1")["purchase_orders"]
    assert po["po_number"] == po_number
    assert len(po["lines"]) == 2


def test_session_expiry_sends_the_user_to_login_and_back(sandbox_factory, page) -> None:
    portal = sandbox_factory(chaos="session_ttl_s=2", orders=10)
    login(page, portal.url, "/purchase-orders")
    page.get_by_role("heading", name="Purchase orders").wait_for()
    portal.advance_clock(3)  # three seconds of portal time, without waiting for them
    page.goto(portal.url + "/invoices?status=received")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.get_by_role("status").inner_text() == "Your session has expired. Sign in again to continue."
    page.get_by_label("Username").fill("buyer1")
    page.get_by_label("Password").fill("Sandbox-Buyer-2026!")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Invoice inbox").wait_for()
    assert page.url.endswith("/invoices?status=received")


def test_slow_render_puts_content_in_late(sandbox_factory, page) -> None:
    portal = sandbox_factory(chaos="slow_render_ms=800", orders=10)
    login(page, portal.url, "/purchase-orders/new")
    # The server's HTML holds the form only inside a <template>; the page shows it later.
    page.goto(portal.url + "/purchase-orders/new", wait_until="domcontentloaded")
    assert page.get_by_label("Requisition reference").count() == 0
    page.get_by_label("Requisition reference").wait_for(timeout=10_000)
    page.get_by_role("button", name="Add line").click()
    page.get_by_label("Line 2 item code").wait_for()


def test_error_rate_one_shows_a_server_error_page(sandbox_factory, page) -> None:
    portal = sandbox_factory(chaos="error_rate=1,seed=5", orders=10)
    response = page.goto(portal.url + "/login")
    assert response.status in (500, 503)
    assert page.get_by_role("heading", level=1).inner_text().startswith("Sorry")


def test_latency_slows_each_page(sandbox_factory, page) -> None:
    portal = sandbox_factory(chaos="latency_ms=300", orders=10)
    page.goto(portal.url + "/login")
    timing = page.evaluate(
        "() => performance.getEntriesByType('navigation')[0].responseStart - "
        "performance.getEntriesByType('navigation')[0].requestStart"
    )
    assert timing >= 290
