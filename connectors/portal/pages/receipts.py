"""The portal's goods receipt pages: look a receipt up by GRN number, read an order's lines, record one.

Exactly-once for receipts rests on the GRN number, which the bot chooses: it looks the
number up (:meth:`GoodsReceiptPages.find`) before it records, and records with
:meth:`GoodsReceiptPages.record`, which clicks "Record goods receipt" exactly once. A
lost answer (HTTP 5xx, session expiry) is a system error; the caller looks again.

Example:
    >>> pages = GoodsReceiptPages(session)  # doctest: +SKIP
    >>> lines = await pages.open_form("PO-000045")  # doctest: +SKIP
    >>> await pages.record("DA-PO-000045-1234", "PO-000045", date, [(1, Decimal("10"))])  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import quote

from bots.domain.errors import BusinessError, PortalUnavailable
from bots.domain.receipts import PoLineState
from connectors.portal.pages.base import PortalPage

if TYPE_CHECKING:
    from playwright.async_api import Locator

__all__ = ["GoodsReceiptPages", "PortalRejectedReceipt", "RecordedReceipt"]


class PortalRejectedReceipt(BusinessError):
    """The portal refused the receipt and said why (its own validation)."""

    default_code = "PORTAL_REJECTED"


@dataclass(frozen=True, slots=True)
class RecordedReceipt:
    """A goods receipt as the portal shows it."""

    grn_number: str
    po_number: str
    received_date: dt.date
    lines: dict[int, Decimal]


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


class GoodsReceiptPages(PortalPage):
    """``/receipts/new`` (Record goods receipt) and ``/receipts/{grn_number}``."""

    title = "Record goods receipt"

    def field(self, label: str) -> Locator:
        """A form field by its exact label."""
        return self.page.get_by_label(label, exact=True)

    async def find(self, grn_number: str) -> RecordedReceipt | None:
        """The receipt recorded under ``grn_number``, or ``None`` when there is none."""
        session = self.session
        await session.open(f"/receipts/{quote(grn_number, safe='')}")
        if session.last_status == 404:
            return None
        heading = session.heading(f"Goods receipt {grn_number}")
        await session.wait_visible(heading, f"goods receipt {grn_number}")
        facts = {
            name: (await self.page.locator(f'[data-field="{name}"]').inner_text()).strip()
            for name in ("po_number", "received_date")
        }
        rows = await self.read_table(self.page.get_by_role("table", name="Lines received"))
        try:
            return RecordedReceipt(
                grn_number=grn_number,
                po_number=facts["po_number"],
                received_date=dt.date.fromisoformat(facts["received_date"]),
                lines={int(r["PO line"]): Decimal(r["Received in this delivery"]) for r in rows},
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise PortalUnavailable(
                "RECEIPT_PAGE_UNREADABLE", f"The page of goods receipt {grn_number} could not be read ({exc})"
            ) from None

    async def open_form(self, po_number: str) -> dict[int, PoLineState] | None:
        """Opens the form for ``po_number``; its lines with what was received so far.

        ``None`` when the portal has no such order. Lines that need no receipt show as
        received in full, so nothing can be receipted against them.
        """
        await self.session.open("/receipts/new", ready=self.ready, po_number=po_number)
        table = self.page.get_by_role("table", name=f"Lines of {po_number}")
        if not await table.count():
            return None
        out = {}
        for row in await self.read_table(table):
            ordered = Decimal(row["Ordered"])
            received = row["Received so far"]
            out[int(row["PO line"])] = PoLineState(
                line_no=int(row["PO line"]),
                item_code=row["Item code"],
                ordered=ordered,
                received=ordered if received == "not required" else Decimal(received),
            )
        return out

    async def record(
        self, grn_number: str, po_number: str, received: dt.date, lines: Sequence[tuple[int, Decimal]]
    ) -> None:
        """Keys the receipt on the open form and clicks "Record goods receipt" once.

        Raises:
            PortalRejectedReceipt: the portal refused it (its messages joined).
            PortalUnavailable: the answer was a 5xx page (the receipt may exist: find first).
            SessionExpired: the session ended before the receipt was applied.
        """
        page = self.page
        await self.field("GRN number").fill(grn_number)
        await self.field("PO number").fill(po_number)
        await self.field("Received date").fill(received.isoformat())
        for number, (line_no, quantity) in enumerate(lines, start=1):
            group = page.get_by_role("group", name=f"Line {number}", exact=True)
            if not await group.count():
                await page.get_by_role("button", name="Add line", exact=True).click()
            await self.session.wait_visible(group, f"line {number} of the receipt form")
            await group.get_by_label(f"Line {number} PO line", exact=True).fill(str(line_no))
            await group.get_by_label(f"Line {number} quantity received", exact=True).fill(_plain(quantity))
        async with self.session.submitting(f"goods receipt {grn_number}"):
            await page.get_by_role("button", name="Record goods receipt").click()
        if self.session.path() != f"/receipts/{grn_number}":
            if self.session.path() == "/receipts/new":
                await self.session.wait_visible(self.ready, "the receipt form's answer")
            summary = page.get_by_role("alert")
            if await summary.count():
                items = [t.strip() for t in await summary.get_by_role("listitem").all_inner_texts()]
                raise PortalRejectedReceipt(
                    "PORTAL_REJECTED", f"The portal refused goods receipt {grn_number}: " + "; ".join(items)
                )
            raise PortalUnavailable(
                "PORTAL_UNEXPECTED_PAGE",
                f"After recording {grn_number} the portal showed {self.session.path()}",
            )
        await self.session.wait_visible(
            page.get_by_role("status").filter(has_text=f"Goods receipt {grn_number} recorded."),
            f"the confirmation of {grn_number}",
        )
