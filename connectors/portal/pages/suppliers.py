"""The portal's supplier directory: is a supplier known, and with which VAT number.

Example:
    >>> supplier = await SupplierDirectoryPage(session).find("SUP-00010")  # doctest: +SKIP
    >>> supplier.vat_number  # doctest: +SKIP
    'GB969301932'
"""

from __future__ import annotations

from bots.models import Supplier
from connectors.portal.pages.base import PortalPage

__all__ = ["SupplierDirectoryPage"]


class SupplierDirectoryPage(PortalPage):
    """``/suppliers``: search by name, VAT number or supplier ID; a paged table of results."""

    title = "Suppliers"

    async def find(self, supplier_id: str) -> Supplier | None:
        """The supplier with exactly this ID, or ``None`` when the portal does not know it."""
        table = self.page.get_by_role("table", name="Suppliers")
        # The search form's GET, sent directly: a 5xx answer can then simply be asked again.
        await self.session.open("/suppliers", ready=table, q=supplier_id)
        for row in await self.read_table(table):
            if row.get("Supplier ID", "").upper() == supplier_id.upper():
                return Supplier(
                    supplier_id=row["Supplier ID"],
                    name=row.get("Name", ""),
                    vat_number=row.get("VAT number") or None,
                    companies_house=row.get("Companies House number") or None,
                    sme=row.get("SME") == "Yes",
                )
        return None
