"""The portal's invoice inbox: list open invoices, read one, Approve, Hold or Reject it.

``/invoices`` lists supplier invoices and credit notes (filters by status, supplier
and number; 25 a page). ``/invoices/<id>`` shows one document with its lines, a
download link for its PEPPOL UBL XML, the three decision forms (Approve; Hold with
a reason code and note; Reject with a reason code and note) and the status history.

The portal does not stop a second decision on a held invoice, so callers read the
status (:meth:`InvoiceDetailPage.read`) before they act; the action methods
themselves post exactly once and never repeat a post that answered 5xx.

Example:
    >>> inbox = InvoiceInboxPage(session)  # doctest: +SKIP
    >>> open_invoices = await inbox.list(status="received")  # doctest: +SKIP
    >>> detail = await InvoiceDetailPage(session).open(open_invoices[0].portal_id)  # doctest: +SKIP
    >>> ubl = await detail.download_ubl()  # doctest: +SKIP
    >>> await detail.hold("PRICE_OVER_TOLERANCE", "Line 1: £5.40 a unit, PO £4.50")  # doctest: +SKIP
    'on_hold'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from bots.domain.errors import ApplicationError
from connectors.portal.pages.base import PortalPage, parse_gbp
from connectors.portal.pages.exports import fetch_file

if TYPE_CHECKING:
    from playwright.async_api import Locator

__all__ = [
    "DECIDED_STATUSES",
    "MAX_INBOX_PAGES",
    "InvoiceDetail",
    "InvoiceDetailPage",
    "InvoiceInboxPage",
    "InvoiceSummary",
    "StatusEntry",
    "status_key",
]

MAX_INBOX_PAGES = 2_000
"""Inbox pages followed at most (25 documents each): 50,000 documents."""

DECIDED_STATUSES = frozenset({"approved", "on_hold", "rejected"})
"""Statuses that mean someone (or a bot) already decided the document."""

Action = Literal["approve", "hold", "reject"]

_ACTION_FORMS: dict[Action, tuple[str, str, str]] = {
    # action: (form name, button name, status it leads to)
    "approve": ("Approve invoice", "Approve", "approved"),
    "hold": ("Hold invoice", "Hold", "on_hold"),
    "reject": ("Reject invoice", "Reject", "rejected"),
}
_HEADING = re.compile(r"^(Invoice|Credit note) ")


def status_key(shown: str) -> str:
    """A status as the portal shows it (``"on hold"``) as its key (``"on_hold"``)."""
    return shown.strip().lower().replace(" ", "_")


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """One row of the invoice inbox."""

    portal_id: int
    invoice_number: str
    document_type: str
    supplier: str
    po_number: str
    issue_date: str
    gross_total: Decimal | None
    status: str


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One row of a document's status history."""

    status: str
    reason_code: str
    note: str
    at: str
    by: str


@dataclass(frozen=True, slots=True)
class InvoiceDetail:
    """What the detail page says about one document (its history: :meth:`InvoiceDetailPage.history`)."""

    portal_id: int
    invoice_number: str
    document_type: str
    supplier_vat: str
    po_number: str
    status: str

    @property
    def decided(self) -> bool:
        """True when the document is already approved, on hold or rejected."""
        return self.status in DECIDED_STATUSES


class InvoiceInboxPage(PortalPage):
    """``/invoices``: the inbox, filtered by status, supplier or number; paged."""

    title = "Invoice inbox"

    @property
    def table(self) -> Locator:
        return self.page.get_by_role("table", name="Invoices and credit notes")

    async def list(
        self, status: str = "", supplier: str = "", number: str = "", *, max_pages: int = MAX_INBOX_PAGES
    ) -> list[InvoiceSummary]:
        """Every document matching the filters, over all result pages, by portal id.

        Args:
            status: ``received`` (open), ``approved``, ``on_hold`` or ``rejected``; empty = any.
            supplier: supplier name (part), id or VAT number.
            number: part of the invoice number.
            max_pages: stop after this many pages (a guard against a runaway inbox).
        """
        found: dict[int, InvoiceSummary] = {}
        for page_no in range(1, max_pages + 1):
            # The filter form's GET, sent directly: a 5xx answer can simply be asked again.
            await self.session.open(
                "/invoices",
                ready=self.table,
                status=status,
                supplier=supplier,
                number=number,
                page=str(page_no) if page_no > 1 else "",
            )
            rows: list[dict[str, str]] = await self.table.evaluate(_READ_ROWS_JS)
            for row in rows:
                summary = _summary(row)
                found.setdefault(summary.portal_id, summary)
            if not await self.page.get_by_role("link", name="Next page").count():
                break
        return sorted(found.values(), key=lambda s: s.portal_id)


def _summary(row: dict[str, str]) -> InvoiceSummary:
    href = row.get("_href", "")
    match = re.search(r"/invoices/(\d+)$", urlsplit(href).path)
    if match is None:
        number = row.get("Invoice number", "?")
        raise ApplicationError("PORTAL_LAYOUT", f"Invoice inbox row {number!r} has no link to the invoice")
    total = row.get("Gross total", "")
    return InvoiceSummary(
        portal_id=int(match.group(1)),
        invoice_number=row.get("Invoice number", ""),
        document_type=status_key(row.get("Type", "")),
        supplier=row.get("Supplier", ""),
        po_number=row.get("PO number", ""),
        issue_date=row.get("Issue date", ""),
        gross_total=parse_gbp(total) if total else None,
        status=status_key(row.get("Status", "")),
    )


class InvoiceDetailPage(PortalPage):
    """``/invoices/<id>``: one document, its UBL download, the decision forms and history."""

    portal_id: int | None = None
    """The portal's id of the document on show (set by :meth:`open`)."""

    @property
    def ready(self) -> Locator:
        return self.session.heading(_HEADING)

    def _id(self) -> int:
        if self.portal_id is None:
            raise RuntimeError("open() the invoice first")
        return self.portal_id

    async def open(self, portal_id: int) -> InvoiceDetailPage:
        """Goes to the document's page and waits until it has rendered."""
        self.portal_id = portal_id
        await self.session.open(f"/invoices/{portal_id}", ready=self.ready)
        return self

    async def details(self) -> dict[str, str]:
        """The summary list as shown: label (``"Supplier VAT number"``) -> text."""
        pairs: list[list[str]] = await self.page.get_by_role("term").evaluate_all(
            """(terms) => terms.map((dt) => {
                let dd = dt.nextElementSibling;
                while (dd && dd.tagName !== "DD") dd = dd.nextElementSibling;
                return [dt.innerText.trim(), dd ? dd.innerText.trim() : ""];
            })"""
        )
        shown: dict[str, str] = {}
        for label, text in pairs:
            shown.setdefault(label, text)
        return shown

    async def history(self) -> tuple[StatusEntry, ...]:
        """The status history, oldest first."""
        rows = await self.read_table(self.page.get_by_role("table", name="Status history"))
        return tuple(
            StatusEntry(
                status=status_key(row.get("Status", "")),
                reason_code=row.get("Reason code", ""),
                note=row.get("Note", ""),
                at=row.get("When", ""),
                by=row.get("By", ""),
            )
            for row in rows
        )

    async def read(self) -> InvoiceDetail:
        """The document's identity and current status as the page shows them."""
        shown = await self.details()
        missing = [label for label in ("Invoice number", "Status") if label not in shown]
        if missing:
            raise ApplicationError(
                "PORTAL_LAYOUT", f"Invoice {self._id()}: the page does not show {', '.join(missing)}"
            )
        po_number = shown.get("PO number", "")
        return InvoiceDetail(
            portal_id=self._id(),
            invoice_number=shown["Invoice number"],
            document_type=status_key(shown.get("Document type", "")),
            supplier_vat=shown.get("Supplier VAT number", ""),
            po_number="" if po_number == "none quoted" else po_number,
            status=status_key(shown["Status"]),
        )

    async def download_ubl(self) -> bytes:
        """The document's PEPPOL UBL XML, byte for byte (with the session's cookie)."""
        portal_id = self._id()
        return await fetch_file(
            self.session,
            f"/invoices/{portal_id}/ubl",
            content_type="application/xml",
            what=f"the UBL of invoice {portal_id}",
        )

    async def approve(self) -> str:
        """Approves the document; returns the status the portal shows afterwards."""
        return await self._decide("approve", None, "")

    async def hold(self, reason_code: str, note: str) -> str:
        """Puts the document on hold with a reason code and note; returns the new status."""
        return await self._decide("hold", reason_code, note)

    async def reject(self, reason_code: str, note: str) -> str:
        """Rejects the document with a reason code and note; returns the new status."""
        return await self._decide("reject", reason_code, note)

    async def _decide(self, action: Action, reason_code: str | None, note: str) -> str:
        """Posts one decision form once.

        Raises:
            bots.domain.errors.PortalUnavailable: the post answered 5xx (it may have been saved:
                read the status before posting again).
            bots.domain.errors.SessionExpired: the session ended; the post was not applied.
            ApplicationError: the portal shows no such form (the document is decided).
        """
        form_name, button_name, _target = _ACTION_FORMS[action]
        portal_id = self._id()
        form = self.page.get_by_role("form", name=form_name)
        if not await form.count():
            raise ApplicationError(
                "NOT_ACTIONABLE", f"Invoice {portal_id}: the portal offers no {button_name} form"
            )
        label = button_name
        if reason_code is not None:
            reason = form.get_by_label(f"{label} reason", exact=True)
            offered: list[str] = await reason.evaluate("(s) => Array.from(s.options).map((o) => o.value)")
            if reason_code not in offered:
                if "OTHER" not in offered:
                    raise ApplicationError(
                        "PORTAL_LAYOUT", f"Invoice {portal_id}: the portal offers no reason {reason_code}"
                    )
                # A code this portal does not know: "OTHER", with the code kept in the note.
                note = f"{reason_code}: {note}" if not note.startswith(reason_code) else note
                reason_code = "OTHER"
            await reason.select_option(reason_code)
            await form.get_by_label(f"{label} note", exact=True).fill(note)
        async with self.session.submitting(f"the {button_name.lower()} of invoice {portal_id}"):
            await form.get_by_role("button", name=button_name, exact=True).click()
        await self.session.wait_visible(self.ready, f"invoice {portal_id} after the {button_name.lower()}")
        shown = await self.details()
        return status_key(shown.get("Status", ""))


_READ_ROWS_JS = """
(table) => {
  const headers = Array.from(table.querySelectorAll("thead th")).map((th) => th.innerText.trim());
  const out = [];
  for (const tbody of table.tBodies) {
    for (const tr of tbody.rows) {
      if (tr.cells.length !== headers.length) continue;
      const row = {};
      Array.from(tr.cells).forEach((cell, i) => { row[headers[i]] = cell.innerText.trim(); });
      const link = tr.querySelector("a[href]");
      row["_href"] = link ? link.href : "";
      out.push(row);
    }
  }
  return out;
}
"""
