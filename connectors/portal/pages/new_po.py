"""The portal's New purchase order form: supplier by autocomplete, header fields, dynamic lines.

:meth:`NewPurchaseOrderPage.create` keys one :class:`~bots.domain.models.PurchaseOrder` and
returns the PO number the portal gave it. It clicks "Create purchase order" exactly
once: the portal does not deduplicate, so a second click would raise a second order.
If the answer is lost (HTTP 5xx, session expiry) it raises a system error and the
caller must search for the order before keying it again.

Example:
    >>> po_number = await NewPurchaseOrderPage(session).create(order)  # doctest: +SKIP
    'PO-000061'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bots.domain.errors import BusinessError, PortalUnavailable, SessionExpired
from connectors.portal.pages.base import PortalPage

if TYPE_CHECKING:
    from playwright.async_api import Locator, Response

    from bots.domain.models import POLine, PurchaseOrder

__all__ = ["CONFIRMATION_URL", "NewPurchaseOrderPage", "PortalRejectedOrder"]

CONFIRMATION_URL = re.compile(r"/purchase-orders/(PO-\d+)/confirmation$")
SUPPLIER_LOOKUP = "/api/suppliers"
LOOKUP_ATTEMPTS = 3


class PortalRejectedOrder(BusinessError):
    """The portal refused the order and said why next to the fields (its own validation)."""

    default_code = "PORTAL_REJECTED"


def _plain(value: object) -> str:
    """A Decimal as the form expects it: no exponent, no trailing zeros (``12``, ``4.5``)."""
    from decimal import Decimal

    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number.normalize(), "f")


class NewPurchaseOrderPage(PortalPage):
    """``/purchase-orders/new``: the order form."""

    title = "New purchase order"

    def field(self, label: str) -> Locator:
        """A form field by its exact label."""
        return self.page.get_by_label(label, exact=True)

    def line(self, number: int) -> Locator:
        """The group of fields of line ``number``."""
        return self.page.get_by_role("group", name=f"Line {number}", exact=True)

    async def create(self, order: PurchaseOrder) -> str:
        """Keys ``order`` and submits it once; returns the new PO number.

        Raises:
            BusinessError: the supplier is unknown (``UNKNOWN_SUPPLIER``) or the portal
                rejected a field (``PORTAL_REJECTED``, its messages joined).
            PortalUnavailable: the answer to the submit was a 5xx page; the order may
                exist (search before keying it again).
            SessionExpired: the session ended before the submit was applied.
        """
        if not order.requisition_ref:
            raise ValueError("a purchase order keyed in the portal needs its requisition reference")
        await self.session.open("/purchase-orders/new", ready=self.ready)
        await self.choose_supplier(order.supplier_id)
        await self.field("Cost centre").fill(order.cost_centre)
        await self.field("Delivery site (ODS code)").fill(order.delivery_site)
        if order.need_by is not None:
            await self.field("Need-by date").fill(order.need_by.isoformat())
        await self.field("Requisition reference").fill(order.requisition_ref)
        for number, line in enumerate(order.lines, start=1):
            await self.fill_line(number, line)
        return await self.submit()

    async def choose_supplier(self, supplier_id: str) -> None:
        """Types the supplier ID and picks the matching suggestion of the autocomplete."""
        page = self.page
        supplier = self.field("Supplier")
        for _attempt in range(LOOKUP_ATTEMPTS):
            await supplier.fill("")
            async with page.expect_response(lambda r: SUPPLIER_LOOKUP in r.url) as lookup:
                await supplier.fill(supplier_id)
            response: Response = await lookup.value
            if response.status == 401:
                await self.session.login()
                raise SessionExpired(
                    "SESSION_EXPIRED", "The portal session ended while choosing the supplier"
                )
            if response.status >= 500:
                continue  # the suggestion list stays closed; typing again asks again
            suggestions = await response.json()
            match = next(
                (s for s in suggestions if str(s.get("id", "")).upper() == supplier_id.upper()), None
            )
            if match is None:
                raise BusinessError(
                    "UNKNOWN_SUPPLIER", f"The portal suggests no supplier with ID {supplier_id}"
                )
            option = page.get_by_role("option", name=re.compile(rf"\({re.escape(match['id'])}\)"))
            await option.click()
            from playwright.async_api import expect

            await expect(supplier).to_have_value(str(match["name"]))
            return
        raise PortalUnavailable("PORTAL_UNAVAILABLE", "The portal's supplier search kept answering HTTP 5xx")

    async def fill_line(self, number: int, line: POLine) -> None:
        """Fills line ``number`` (adding it with "Add line" when the form does not show it yet)."""
        group = self.line(number)
        if not await group.count():
            await self.page.get_by_role("button", name="Add line", exact=True).click()
        await self.session.wait_visible(group, f"line {number} of the order form")
        prefix = f"Line {number}"
        await group.get_by_label(f"{prefix} item code", exact=True).fill(line.item_code)
        await group.get_by_label(f"{prefix} description", exact=True).fill(line.description)
        await group.get_by_label(f"{prefix} quantity", exact=True).fill(_plain(line.quantity))
        await group.get_by_label(f"{prefix} unit price", exact=True).fill(_plain(line.unit_price))
        await group.get_by_label(f"{prefix} VAT rate", exact=True).select_option(_plain(line.vat_rate))

    async def submit(self) -> str:
        """Clicks "Create purchase order" once and reads the PO number from the confirmation."""
        page = self.page
        try:
            async with self.session.submitting("the new purchase order"):
                await page.get_by_role("button", name="Create purchase order").click()
        except PortalUnavailable:
            # The confirmation page failed, but its address already names the new order.
            found = CONFIRMATION_URL.search(self.session.path())
            if found:
                return found.group(1)
            raise
        found = CONFIRMATION_URL.search(self.session.path())
        if found is None:
            await self._raise_rejection()
        assert found is not None
        po_number = found.group(1)
        await self.session.wait_visible(self.session.heading("Purchase order created"), "the confirmation")
        return po_number

    async def _raise_rejection(self) -> None:
        summary = self.page.get_by_role("alert")
        if await summary.count():
            items = [text.strip() for text in await summary.get_by_role("listitem").all_inner_texts()]
            raise PortalRejectedOrder("PORTAL_REJECTED", "The portal rejected the order: " + "; ".join(items))
        raise PortalUnavailable(
            "PORTAL_UNEXPECTED_PAGE", f"After submitting the order the portal showed {self.session.path()}"
        )
