"""The portal's supplier directory: is a supplier known, and with which VAT number.

Example:
    >>> supplier = await SupplierDirectoryPage(session).find("SUP-00010")  # doctest: +SKIP
    >>> supplier.vat_number  # doctest: +SKIP
    'GB969301932'
"""

from __future__ import annotations

from bots.domain.models import Supplier
from connectors.portal.pages.base import PortalPage

__all__ = ["SupplierDirectoryPage"]


MAX_PAGES = 20
"""Directory pages :meth:`SupplierDirectoryPage.all` reads at most (25 suppliers each)."""


def _supplier(row: dict[str, str]) -> Supplier:
    return Supplier(
        supplier_id=row["Supplier ID"],
        name=row.get("Name", ""),
        vat_number=row.get("VAT number") or None,
        companies_house=row.get("Companies House number") or None,
        sme=row.get("SME") == "Yes",
    )


class SupplierDirectoryPage(PortalPage):
    """``/suppliers``: search by name, VAT number or supplier ID; a paged table of results."""

    title = "Suppliers"

    async def all(self, max_pages: int = MAX_PAGES) -> tuple[dict[str, Supplier], bool]:
        """The whole directory by upper-case supplier ID, and whether it was all read.

        A bot raising many orders reads the directory once instead of searching per
        supplier; a directory longer than ``max_pages`` pages is left half read
        (``False``), and the caller searches by ID instead.
        """
        table = self.page.get_by_role("table", name="Suppliers")
        found: dict[str, Supplier] = {}
        for page_no in range(1, max_pages + 1):
            await self.session.open("/suppliers", ready=table, page=str(page_no) if page_no > 1 else "")
            for row in await self.read_table(table):
                if row.get("Supplier ID"):
                    supplier = _supplier(row)
                    found[supplier.supplier_id.upper()] = supplier
            if not await self.page.get_by_role("link", name="Next page").count():
                return found, True
        return found, False

    async def find(self, supplier_id: str) -> Supplier | None:
        """The supplier with exactly this ID, or ``None`` when the portal does not know it."""
        table = self.page.get_by_role("table", name="Suppliers")
        # The search form's GET, sent directly: a 5xx answer can then simply be asked again.
        await self.session.open("/suppliers", ready=table, q=supplier_id)
        for row in await self.read_table(table):
            if row.get("Supplier ID", "").upper() == supplier_id.upper():
                return _supplier(row)
        return None
