"""The sandbox portal over HTTP: login rules, no deduplication, invoice actions, contracts, exports, chaos."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time

import httpx
import pytest

from sandbox.seed import ANCHOR
from sandbox.totp import totp
from tests.plugins.sandbox import SANDBOX_PASSWORD

pytestmark = pytest.mark.slow


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(url: str, password: str = SANDBOX_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"csrf_token": _csrf(page.text), "username": "buyer1", "password": password, "next": "/"},
    )
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/"
    return client


def _form_csrf(client: httpx.Client, path: str) -> str:
    return _csrf(client.get(path).text)


def test_pages_need_a_session_and_login_returns_to_the_page_wanted(sandbox) -> None:
    client = httpx.Client(base_url=sandbox.url)
    response = client.get("/invoices?status=received")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Finvoices%3Fstatus%3Dreceived"
    login = client.get(response.headers["location"])
    done = client.post(
        "/login",
        data={
            "csrf_token": _csrf(login.text),
            "username": "buyer1",
            "password": SANDBOX_PASSWORD,
            "next": "/invoices?status=received",
        },
    )
    assert done.headers["location"] == "/invoices?status=received"
    assert (
        client.get("/api/suppliers", params={"q": "Barnes"}).json()[0]["name"] == "Barnes & Lowe Medical Ltd"
    )


def test_login_without_the_csrf_token_is_refused(sandbox) -> None:
    client = httpx.Client(base_url=sandbox.url)
    client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": "forged", "username": "buyer1", "password": SANDBOX_PASSWORD}
    )
    assert response.status_code == 400
    assert "expired" in response.text
    assert "sbx_session" not in client.cookies


def test_wrong_password_then_lockout_after_five_failures(sandbox) -> None:
    client = httpx.Client(base_url=sandbox.url)
    try:
        for attempt in range(1, 6):
            page = client.get("/login")
            response = client.post(
                "/login",
                data={"csrf_token": _csrf(page.text), "username": "buyer1", "password": f"wrong-{attempt}"},
            )
            if attempt < 5:
                assert response.status_code == 401
                assert "Incorrect username or password." in response.text
        assert response.status_code == 403
        assert "locked" in response.text
        # Even the right password is refused while locked.
        page = client.get("/login")
        response = client.post(
            "/login",
            data={"csrf_token": _csrf(page.text), "username": "buyer1", "password": SANDBOX_PASSWORD},
        )
        assert response.status_code == 403
        assert sandbox.state(sections="logins")["logins"]["locked_users"] == ["buyer1"]
        # The lockout ends after 15 minutes of portal time.
        sandbox.advance_clock(15 * 60 + 1)
        signed_in(sandbox.url)
    finally:
        sandbox.unlock("buyer1")


def test_totp_second_step(sandbox_factory) -> None:
    portal = sandbox_factory(totp=True, totp_secret="JBSWY3DPEHPK3PXP", orders=10)
    client = httpx.Client(base_url=portal.url)
    page = client.get("/login")
    step = client.post(
        "/login",
        data={
            "csrf_token": _csrf(page.text),
            "username": "buyer1",
            "password": SANDBOX_PASSWORD,
            "next": "/contracts",
        },
    )
    assert step.headers["location"].startswith("/login/totp")
    assert client.get("/contracts").status_code == 303  # not signed in until the code is given
    form = client.get(step.headers["location"])
    assert "Security code" in form.text
    bad = client.post(
        "/login/totp", data={"csrf_token": _csrf(form.text), "code": "000000", "next": "/contracts"}
    )
    assert bad.status_code == 401
    assert "not right" in bad.text
    code = totp("JBSWY3DPEHPK3PXP", portal.clock())
    good = client.post(
        "/login/totp", data={"csrf_token": _csrf(form.text), "code": code, "next": "/contracts"}
    )
    assert good.headers["location"] == "/contracts"
    assert client.get("/contracts").status_code == 200


def _po_form(csrf: str, ref: str, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "supplier": "Barnes & Lowe Medical Ltd",
        "cost_centre": "CC4100",
        "delivery_site": "RX101",
        "need_by": "2026-12-01",
        "requisition_ref": ref,
        "line-1-item_code": "5012345678900",
        "line-1-description": "Nitrile gloves, box of 100",
        "line-1-quantity": "3",
        "line-1-unit_price": "4.55",
        "line-1-vat_rate": "20",
        "line-2-item_code": "SVC-00001",
        "line-2-description": "Service visit",
        "line-2-quantity": "1",
        "line-2-unit_price": "99.99",
        "line-2-vat_rate": "0",
        **extra,
    }


def test_double_submit_makes_two_purchase_orders(sandbox) -> None:
    """The portal does not deduplicate: the same form posted twice is two POs."""
    client = signed_in(sandbox.url)
    csrf = _form_csrf(client, "/purchase-orders/new")
    numbers = []
    for _ in range(2):
        response = client.post("/purchase-orders/new", data=_po_form(csrf, "REQ-HTTP-DOUBLE"))
        assert response.status_code == 303
        numbers.append(re.search(r"(PO-\d+)", response.headers["location"]).group(1))
        assert numbers[-1] in client.get(response.headers["location"]).text
    assert numbers[0] != numbers[1]
    state = sandbox.state(sections="purchase_orders", requisition_ref="REQ-HTTP-DOUBLE")
    assert [o["po_number"] for o in state["purchase_orders"]] == numbers
    po = state["purchase_orders"][0]
    assert po["net_total"] == "113.64"
    assert po["vat_total"] == "2.73"
    assert po["gross_total"] == "116.37"
    assert [ln["net_amount"] for ln in po["lines"]] == ["13.65", "99.99"]
    assert po["supplier_vat"].startswith("GB")
    assert po["cost_centre"] == "CC4100"
    assert (
        sandbox.state(sections="purchase_orders", since_po=numbers[0])["purchase_orders"][0]["po_number"]
        == numbers[1]
    )


def test_invalid_purchase_order_is_rerendered_with_inline_messages(sandbox) -> None:
    client = signed_in(sandbox.url)
    csrf = _form_csrf(client, "/purchase-orders/new")
    before = len(sandbox.state(sections="purchase_orders")["purchase_orders"])
    data = _po_form(csrf, "REQ-HTTP-BAD", supplier="Nobody Ltd", delivery_site="ZZ9", need_by="31/12/2026")
    data["line-1-item_code"] = "5012345678901"  # wrong GTIN check digit
    data["line-2-quantity"] = "-2"
    response = client.post("/purchase-orders/new", data=data)
    assert response.status_code == 422
    for message in (
        "No supplier matches",
        "is not an ODS site code",
        "Enter the need-by date",
        "Line 1: GTIN 5012345678901 has a wrong check digit",
        "Line 2: quantity must be",
    ):
        assert message in response.text
    assert 'value="REQ-HTTP-BAD"' in response.text
    assert 'value="Nobody Ltd"' in response.text
    assert len(sandbox.state(sections="purchase_orders")["purchase_orders"]) == before


def test_form_posts_need_the_session_csrf_token(sandbox) -> None:
    client = signed_in(sandbox.url)
    response = client.post("/purchase-orders/new", data=_po_form("forged", "REQ-HTTP-CSRF"))
    assert response.status_code == 400
    assert sandbox.state(sections="purchase_orders", requisition_ref="REQ-HTTP-CSRF")["purchase_orders"] == []


def test_invoice_actions_record_history_and_final_states_stick(sandbox) -> None:
    client = signed_in(sandbox.url)
    invoices = sandbox.state(sections="invoices", invoice_status="received")["invoices"]
    first, second, third = invoices[0]["id"], invoices[1]["id"], invoices[2]["id"]
    csrf = _form_csrf(client, f"/invoices/{first}")
    assert (
        client.post(f"/invoices/{first}/hold", data={"csrf_token": csrf}).status_code == 422
    )  # needs a reason
    held = client.post(
        f"/invoices/{first}/hold",
        data={
            "csrf_token": csrf,
            "reason_code": "PRICE_OVER_TOLERANCE",
            "note": "Line 1 £6.20 over PO price",
        },
    )
    assert held.status_code == 303
    assert client.post(f"/invoices/{first}/approve", data={"csrf_token": csrf}).status_code == 303
    assert (
        client.post(
            f"/invoices/{second}/reject", data={"csrf_token": csrf, "reason_code": "DUPLICATE_INVOICE"}
        ).status_code
        == 303
    )
    again = client.post(f"/invoices/{second}/approve", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "already rejected" in again.text
    by_id = {i["id"]: i for i in sandbox.state(sections="invoices")["invoices"]}
    assert [h["status"] for h in by_id[first]["history"]] == ["received", "on_hold", "approved"]
    assert by_id[first]["history"][1]["reason_code"] == "PRICE_OVER_TOLERANCE"
    assert by_id[first]["history"][1]["note"] == "Line 1 £6.20 over PO price"
    assert by_id[second]["status"] == "rejected"
    assert by_id[third]["status"] == "received"
    detail = client.get(f"/invoices/{first}").text
    assert "PRICE_OVER_TOLERANCE" in detail
    assert "Status history" in detail
    ubl = client.get(f"/invoices/{first}/ubl")
    assert ubl.headers["content-type"].startswith("application/xml")
    assert by_id[first]["invoice_number"] in ubl.text


def test_contract_upload_download_is_byte_identical(sandbox, tmp_path) -> None:
    from sandbox.pdf import text_pdf

    client = signed_in(sandbox.url)
    csrf = _form_csrf(client, "/contracts/new")
    pdf = text_pdf(["Contract CT-HTTP-1", "Linen services"], title="CT-HTTP-1")
    fields = {
        "csrf_token": csrf,
        "contract_id": "CT-HTTP-1",
        "title": "Linen services",
        "supplier_name": "Barnes & Lowe Medical Ltd",
        "supplier_vat": "GB123456782",
        "companies_house": "01234567",
        "buyer_ods": "RX1",
        "cpv_codes": "98310000-9, 33141420-0",
        "procedure": "open",
        "value_net": "120,000.00",
        "value_gross": "144000",
        "start_date": "2026-04-01",
        "end_date": "2028-03-31",
        "max_end_date": "2029-03-31",
        "kpis": "Linen delivered by 07:00\r\n\r\n  Lost items under 1%  \r\nComplaints answered in 5 days",
        "sme": "on",
    }

    def upload(document: bytes = pdf, **changes: str) -> httpx.Response:
        return client.post(
            "/contracts/new",
            data={**fields, **changes},
            files={"document": ("CT-HTTP-1.pdf", document, "application/pdf")},
        )

    for refused, message in (
        (upload(supplier_vat="GB123456789"), "not a valid GB VAT number"),
        (upload(b"hello"), "is not a PDF file"),
        # A client still sending the old count is told when it disagrees with the names.
        (upload(kpi_count="2"), "Number of KPIs 2 does not match the 3 KPIs listed"),
        (upload(kpis="Fill rate\n" + "x" * 251), "KPI 2 is longer than 250 characters"),
    ):
        assert refused.status_code == 422
        assert message in refused.text
    ok = upload()
    assert ok.status_code == 303
    download = client.get("/contracts/CT-HTTP-1/document")
    assert download.content == pdf
    contract = next(
        c for c in sandbox.state(sections="contracts")["contracts"] if c["contract_id"] == "CT-HTTP-1"
    )
    assert contract["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert contract["value_net"] == "120000.00"
    assert contract["cpv_codes"] == ["98310000-9", "33141420-0"]
    assert contract["sme"] is True
    assert contract["max_end_date"] == "2029-03-31"
    assert contract["kpis"] == [
        "Linen delivered by 07:00",
        "Lost items under 1%",
        "Complaints answered in 5 days",
    ]
    assert contract["kpi_count"] == 3
    detail = client.get("/contracts/CT-HTTP-1").text
    assert "<li>Lost items under 1%</li>" in detail
    again = client.post(
        "/contracts/new", data=fields, files={"document": ("CT-HTTP-1.pdf", pdf, "application/pdf")}
    )
    assert again.status_code == 422
    assert "already in the register" in again.text


def test_csv_exports_use_the_architecture_formats(sandbox) -> None:
    client = signed_in(sandbox.url)
    orders = list(csv.DictReader(io.StringIO(client.get("/purchase-orders/export.csv").text)))
    assert list(orders[0]) == [
        "po_number",
        "line_no",
        "supplier_id",
        "supplier_vat",
        "item_code",
        "description",
        "quantity",
        "unit_price",
        "vat_rate",
        "receipt_required",
    ]
    state = sandbox.state(sections="purchase_orders,receipts")
    assert len(orders) == sum(len(o["lines"]) for o in state["purchase_orders"])
    first = state["purchase_orders"][0]
    assert orders[0]["po_number"] == first["po_number"]
    assert orders[0]["unit_price"] == first["lines"][0]["unit_price"]
    receipts = list(csv.DictReader(io.StringIO(client.get("/receipts/export.csv").text)))
    assert list(receipts[0]) == ["grn_number", "po_number", "line_no", "quantity_received", "received_date"]
    assert len(receipts) == sum(len(r["lines"]) for r in state["receipts"])
    one = client.get("/purchase-orders/export.csv", params={"requisition_ref": first["requisition_ref"]}).text
    assert len(one.strip().splitlines()) == len(first["lines"]) + 1


def test_purchase_order_list_search_and_pagination(sandbox) -> None:
    client = signed_in(sandbox.url)
    page1 = client.get("/purchase-orders").text
    assert "Page 1 of" in page1
    assert "Next page" in page1
    page2 = client.get("/purchase-orders", params={"page": 2}).text
    assert set(re.findall(r">(PO-\d+)<", page1)).isdisjoint(re.findall(r">(PO-\d+)<", page2))
    found = client.get("/purchase-orders", params={"requisition_ref": "REQ-2025-000007"}).text
    assert re.findall(r">(PO-\d+)</a>", found) == ["PO-000007"]
    status = client.get("/purchase-orders", params={"status": "part_received"}).text
    assert "<td>part received</td>" in status
    assert "<td>received</td>" not in status


def test_session_expires_after_ttl(sandbox_factory) -> None:
    portal = sandbox_factory(chaos="session_ttl_s=60", orders=10)
    client = signed_in(portal.url)
    assert client.get("/purchase-orders").status_code == 200
    portal.advance_clock(61)
    response = client.get("/purchase-orders/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fpurchase-orders%2Fnew&reason=expired"
    assert "session has expired" in client.get(response.headers["location"]).text
    assert portal.state(sections="logins")["logins"]["sessions_expired"] == 1


def test_error_rate_one_fails_pages_but_never_the_truth_endpoints(sandbox_factory) -> None:
    portal = sandbox_factory(chaos="error_rate=1,seed=3", orders=10)
    statuses = {httpx.get(f"{portal.url}/login").status_code for _ in range(12)}
    assert statuses <= {500, 503}
    assert statuses
    assert httpx.get(f"{portal.url}/healthz").status_code == 200
    assert httpx.get(f"{portal.url}/_sandbox/state", params={"sections": "logins"}).status_code == 200


def test_latency_is_added_to_every_page(sandbox_factory) -> None:
    portal = sandbox_factory(chaos="latency_ms=400", orders=10)
    started = time.perf_counter()
    assert httpx.get(f"{portal.url}/login").status_code == 200
    assert time.perf_counter() - started >= 0.4
    started = time.perf_counter()
    httpx.get(f"{portal.url}/healthz")
    assert time.perf_counter() - started < 0.4


def test_seeded_history_ends_at_the_anchor(sandbox) -> None:
    state = sandbox.state(sections="purchase_orders", limit=5)
    assert len(state["purchase_orders"]) == 5
    assert all(o["created_at"] < ANCHOR.isoformat() for o in state["purchase_orders"])
