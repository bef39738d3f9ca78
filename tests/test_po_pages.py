"""The purchase-order page objects against the sandbox portal, through real Chromium.

Shuffled field order and ids with late rendering, a session that expires between
pages, 5xx pages, a wrong password, an unknown supplier, and the password kept out
of traces and evidence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from bots.domain.errors import BusinessError, PortalUnavailable
from bots.domain.models import POLine, PurchaseOrder
from connectors.portal.pages.base import LoginRejected, PortalCredentials, PortalSession
from connectors.portal.pages.login import LoginPage
from connectors.portal.pages.new_po import NewPurchaseOrderPage
from connectors.portal.pages.po_detail import PurchaseOrderDetailPage
from connectors.portal.pages.po_list import PurchaseOrderListPage
from connectors.portal.pages.suppliers import SupplierDirectoryPage
from sandbox.server import SandboxServer
from tests.plugins.sandbox import SANDBOX_PASSWORD

pytestmark = [pytest.mark.browser]

T = TypeVar("T")
BUYER = PortalCredentials("buyer1", SecretStr(SANDBOX_PASSWORD))


@pytest.fixture(scope="module")
def shuffled_portal() -> Iterator[SandboxServer]:
    """A portal whose forms change field order and ids on every load, and render late."""
    with SandboxServer(seed=1, orders=20, chaos="shuffle=1,slow_render_ms=300,seed=5") as server:
        yield server


def in_browser(
    server: SandboxServer,
    work: Callable[[PortalSession], Awaitable[T]],
    credentials: PortalCredentials = BUYER,
) -> T:
    """Runs ``work`` with a session on a fresh traced context of a real Chromium."""
    from playwright.async_api import async_playwright

    from config.settings import get_settings
    from connectors.portal.browser import launch_chromium_async, new_context_async

    async def main() -> T:
        async with async_playwright() as pw:
            browser = await launch_chromium_async(pw)
            try:
                context = await new_context_async(browser, get_settings().browser)
                page = await context.new_page()
                return await work(PortalSession(page, server.url, credentials))
            finally:
                await browser.close()

    return asyncio.run(main())


def three_line_order(ref: str) -> PurchaseOrder:
    from sandbox.seed import generate

    data = generate(1, 20)
    supplier = data.suppliers[3]
    items = [i for i in data.items if i.supplier_id == supplier.supplier_id][:3]
    return PurchaseOrder(
        requisition_ref=ref,
        supplier_id=supplier.supplier_id,
        supplier_vat=supplier.vat,
        cost_centre=data.cost_centres[0][0],
        delivery_site=data.sites[1][0],
        need_by=dt.date.today() + dt.timedelta(days=21),
        lines=[
            POLine(line_no=n, item_code=i.code, description=i.description, quantity=Decimal(n * 2),
                   unit_price=i.unit_price, vat_rate=i.vat_rate)
            for n, i in enumerate(items, start=1)
        ],
    )  # fmt: skip


def test_shuffled_late_form_keys_a_three_line_order_that_reads_back_equal(
    shuffled_portal: SandboxServer,
) -> None:
    """Label-and-role locators survive shuffled fields and late rendering; the detail page
    reads back the same supplier, lines and totals, and the list search finds it exactly."""
    order = three_line_order("PAGES-0001")

    async def work(session: PortalSession) -> tuple[str, Any, list[Any], list[Any]]:
        assert await PurchaseOrderListPage(session).find_by_requisition("PAGES-0001") == []
        po_number = await NewPurchaseOrderPage(session).create(order)
        view = await PurchaseOrderDetailPage(session).read(po_number)
        found = await PurchaseOrderListPage(session).find_by_requisition("PAGES-0001")
        partial = await PurchaseOrderListPage(session).find_by_requisition("PAGES-000")
        return po_number, view, found, partial

    po_number, view, found, partial = in_browser(shuffled_portal, work)
    assert view.order.model_dump(exclude={"supplier_name"}) == order.model_copy(
        update={"po_number": po_number}
    ).model_dump(exclude={"supplier_name"})
    assert (view.net_total, view.vat_total, view.gross_total) == (
        order.net_total,
        order.vat_total,
        order.gross_total,
    )
    assert [s.po_number for s in found] == [po_number]
    assert partial == []  # the portal's "contains" search is narrowed to the exact reference
    (state,) = shuffled_portal.state(sections="purchase_orders", requisition_ref="PAGES-0001")[
        "purchase_orders"
    ]
    assert [ln["quantity"] for ln in state["lines"]] == ["2", "4", "6"]


def test_an_expired_session_signs_in_again_and_lands_on_the_page_asked_for(
    shuffled_portal: SandboxServer,
) -> None:
    """The portal's clock moves past the session's end: the next page is the sign-in form,
    the session signs in again by itself and opens the page it was going to."""

    async def work(session: PortalSession) -> tuple[int, str]:
        await LoginPage(session).sign_in()
        shuffled_portal.advance_clock(9 * 3600)  # past the 8-hour session
        page = PurchaseOrderListPage(session)
        await session.open("/purchase-orders", ready=page.ready)
        return session.logins, session.path()

    before = shuffled_portal.state(sections="logins")["logins"]["sessions_expired"]
    logins, path = in_browser(shuffled_portal, work)
    assert (logins, path) == (2, "/purchase-orders")
    assert shuffled_portal.state(sections="logins")["logins"]["sessions_expired"] == before + 1


def test_an_unknown_supplier_is_a_business_error_before_anything_is_posted(
    shuffled_portal: SandboxServer,
) -> None:
    order = three_line_order("PAGES-0002").model_copy(update={"supplier_id": "SUP-99999"})

    async def work(session: PortalSession) -> None:
        assert await SupplierDirectoryPage(session).find("SUP-99999") is None
        await NewPurchaseOrderPage(session).create(order)

    with pytest.raises(BusinessError) as caught:
        in_browser(shuffled_portal, work)
    assert caught.value.code == "UNKNOWN_SUPPLIER"
    assert (
        shuffled_portal.state(sections="purchase_orders", requisition_ref="PAGES-0002")["purchase_orders"]
        == []
    )


def test_a_wrong_password_is_refused_once_and_never_tried_again(shuffled_portal: SandboxServer) -> None:
    """A refused sign-in stops the session: retrying would lock the account after five."""
    wrong = PortalCredentials("buyer1", SecretStr("not-the-password"))

    async def work(session: PortalSession) -> tuple[str, str]:
        with pytest.raises(LoginRejected) as first:
            await LoginPage(session).sign_in()
        with pytest.raises(LoginRejected) as second:
            await session.open("/purchase-orders")
        return first.value.message, second.value.message

    before = shuffled_portal.state(sections="logins")["logins"]["failed"]
    first, second = in_browser(shuffled_portal, work, credentials=wrong)
    assert "Incorrect username or password" in first
    assert first == second
    assert shuffled_portal.state(sections="logins")["logins"]["failed"] == before + 1
    assert "not-the-password" not in first


def test_the_password_never_reaches_the_trace_screenshot_or_html(
    shuffled_portal: SandboxServer, settings_env: Path, tmp_path: Path
) -> None:
    """Evidence taken right after signing in holds a trace (kept, not dropped), and no file
    of it contains the password."""
    from connectors.portal.evidence import capture_evidence

    async def work(session: PortalSession) -> list[Any]:
        await LoginPage(session).sign_in()
        return await capture_evidence(session.page, tmp_path / "evidence")

    evidence = in_browser(shuffled_portal, work)
    names = sorted(Path(e.path).name for e in evidence)
    assert names == ["page.html", "page.png", "trace.zip"]
    import zipfile

    secret = SANDBOX_PASSWORD.encode()
    for e in evidence:
        path = Path(e.path)
        assert secret not in path.read_bytes()
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                assert all(secret not in archive.read(name) for name in archive.namelist())


def test_a_portal_answering_5xx_raises_portal_unavailable(sandbox_factory: Any) -> None:
    server = sandbox_factory(seed=1, orders=10, chaos="error_rate=1")

    async def work(session: PortalSession) -> None:
        await session.open("/purchase-orders")

    with pytest.raises(PortalUnavailable) as caught:
        in_browser(server, work)
    assert caught.value.code == "PORTAL_UNAVAILABLE"
    assert "HTTP 50" in caught.value.message or "kept failing" in caught.value.message
