"""The portal's purchase-order detail page, read back into a :class:`~bots.domain.models.PurchaseOrder`.

The bot compares what the portal stored with what it meant to key (supplier, lines,
totals), so a silently mangled field becomes a business exception, not a wrong order.

Example:
    >>> view = await PurchaseOrderDetailPage(session).read("PO-000061")  # doctest: +SKIP
    >>> view.order.lines[0].quantity, view.gross_total  # doctest: +SKIP
    (Decimal('16'), Decimal('225.22'))
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from bots.domain.errors import PortalUnavailable
from bots.domain.models import POLine, PurchaseOrder
from connectors.portal.pages.base import PortalPage, parse_gbp

__all__ = ["PurchaseOrderDetailPage", "PurchaseOrderView"]

_SUPPLIER = re.compile(r"^(?P<name>.*)\s+\((?P<id>[^()]+)\)$")

_READ_SUMMARY_JS = """
(dl) => {
  const out = {};
  for (const dt of dl.querySelectorAll("dt")) {
    const dd = dt.nextElementSibling;
    if (dd && dd.tagName === "DD") out[dt.innerText.trim()] = dd.innerText.trim();
  }
  return out;
}
"""

_READ_FOOTER_JS = """
(table) => {
  const out = {};
  if (!table.tFoot) return out;
  for (const tr of table.tFoot.rows) {
    const th = tr.querySelector("th");
    const td = tr.querySelector("td");
    if (th && td) out[th.innerText.trim()] = td.innerText.trim();
  }
  return out;
}
"""


@dataclass(frozen=True, slots=True)
class PurchaseOrderView:
    """A purchase order as the portal shows it, with the totals it states."""

    order: PurchaseOrder
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal
    status: str
    url: str


class PurchaseOrderDetailPage(PortalPage):
    """``/purchase-orders/{po_number}``: header facts, lines and totals."""

    title = "Purchase order"

    async def read(self, po_number: str) -> PurchaseOrderView:
        """Opens the order's page and reads it.

        Raises:
            bots.domain.errors.PortalUnavailable: the page is not a purchase order (``PO_PAGE_UNREADABLE``).
        """
        session = self.session
        heading = session.heading(f"Purchase order {po_number}")
        await session.open(f"/purchase-orders/{po_number}", ready=heading)
        facts: dict[str, str] = await self.page.locator("main dl").first.evaluate(_READ_SUMMARY_JS)
        lines_table = self.page.get_by_role("table", name="Lines")
        rows = await self.read_table(lines_table)
        totals: dict[str, str] = await lines_table.evaluate(_READ_FOOTER_JS)
        try:
            supplier = _SUPPLIER.match(facts.get("Supplier", ""))
            need_by = facts.get("Need-by date", "")
            order = PurchaseOrder(
                po_number=facts["PO number"],
                requisition_ref=facts.get("Requisition reference"),
                supplier_id=supplier.group("id") if supplier else "",
                supplier_name=supplier.group("name") if supplier else facts.get("Supplier", ""),
                supplier_vat=facts.get("Supplier VAT number") or None,
                cost_centre=facts.get("Cost centre", ""),
                delivery_site=facts.get("Delivery site", ""),
                need_by=dt.date.fromisoformat(need_by) if need_by else None,
                lines=[
                    POLine(
                        line_no=int(row["Line"]),
                        item_code=row.get("Item code", ""),
                        description=row.get("Description", ""),
                        quantity=Decimal(row["Quantity"].replace(",", "")),
                        unit_price=parse_gbp(row["Unit price"]),
                        vat_rate=Decimal(row["VAT rate"].rstrip("%").strip()),
                    )
                    for row in rows
                ],
            )
            return PurchaseOrderView(
                order=order,
                net_total=parse_gbp(totals["Net total"]),
                vat_total=parse_gbp(totals["VAT total"]),
                gross_total=parse_gbp(totals["Gross total"]),
                status=facts.get("Status", ""),
                url=session.url(f"/purchase-orders/{po_number}"),
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise PortalUnavailable(
                "PO_PAGE_UNREADABLE",
                f"The page of {po_number} could not be read ({type(exc).__name__}: {exc})",
            ) from None
