"""The portal's purchase-order list: find the orders already raised for a requisition.

This is the "look before you key" half of exactly-once: the bot searches here by
requisition reference before it creates an order.

Example:
    >>> await PurchaseOrderListPage(session).find_by_requisition("REQ-2026-000001")  # doctest: +SKIP
    [PurchaseOrderSummary(po_number='PO-000061', requisition_ref='REQ-2026-000001', ...)]
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from connectors.portal.pages.base import PortalPage, parse_gbp

__all__ = ["PurchaseOrderListPage", "PurchaseOrderSummary"]

MAX_PAGES = 20
"""Result pages followed at most (25 orders each); a search matching more is too broad."""


@dataclass(frozen=True, slots=True)
class PurchaseOrderSummary:
    """One row of the purchase-order list."""

    po_number: str
    requisition_ref: str
    supplier: str
    cost_centre: str
    need_by: str
    gross_total: Decimal | None
    status: str


class PurchaseOrderListPage(PortalPage):
    """``/purchase-orders``: search by requisition reference, supplier or status; paged."""

    title = "Purchase orders"

    async def find_by_requisition(self, requisition_ref: str) -> list[PurchaseOrderSummary]:
        """Every order whose requisition reference is exactly ``requisition_ref``, oldest first.

        The portal's search matches parts of references, so rows are filtered to the
        exact reference; all result pages are read.
        """
        table = self.page.get_by_role("table", name="Purchase orders")
        found: list[PurchaseOrderSummary] = []
        for page_no in range(1, MAX_PAGES + 1):
            # The search form's GET, sent directly: a 5xx answer can then simply be asked again.
            await self.session.open(
                "/purchase-orders",
                ready=table,
                requisition_ref=requisition_ref,
                page=str(page_no) if page_no > 1 else "",
            )
            for row in await self.read_table(table):
                if row.get("Requisition reference") != requisition_ref:
                    continue
                total = row.get("Gross total", "")
                found.append(
                    PurchaseOrderSummary(
                        po_number=row.get("PO number", ""),
                        requisition_ref=requisition_ref,
                        supplier=row.get("Supplier", ""),
                        cost_centre=row.get("Cost centre", ""),
                        need_by=row.get("Need-by date", ""),
                        gross_total=parse_gbp(total) if total else None,
                        status=row.get("Status", ""),
                    )
                )
            if not await self.page.get_by_role("link", name="Next page").count():
                break
        return sorted(found, key=lambda summary: summary.po_number)
