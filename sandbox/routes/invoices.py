"""The invoice inbox: list, invoice detail with its UBL, and the approve / hold / reject actions."""

from __future__ import annotations

import re
import zlib

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.portal import PAGE_SIZE, Session
from sandbox.ubl import parse_ubl
from sandbox.web import Web

__all__ = ["INVOICE_STATUSES", "REASON_CODES", "register"]

INVOICE_STATUSES = ("received", "approved", "on_hold", "rejected")
REASON_CODES = (
    "NO_PO",
    "PO_NOT_FOUND",
    "SUPPLIER_MISMATCH",
    "CURRENCY_MISMATCH",
    "LINE_NOT_ON_PO",
    "PRICE_OVER_TOLERANCE",
    "QTY_OVER_ORDERED",
    "QTY_OVER_RECEIVED",
    "NOT_RECEIVED",
    "VAT_RATE_MISMATCH",
    "VAT_ARITHMETIC",
    "TOTALS_ARITHMETIC",
    "DUPLICATE_INVOICE",
    "POSSIBLE_DUPLICATE",
    "CREDIT_NOTE_NO_REFERENCE",
    "CREDIT_EXCEEDS_INVOICED",
    "OTHER",
)


def register(app: FastAPI, web: Web) -> None:
    """Add ``/invoices`` and the invoice pages and actions."""
    portal, render, session_for, checked_form = web.portal, web.render, web.session_for, web.checked_form
    not_found, page_of, pager = web.not_found, web.page_of, web.pager

    @app.get("/invoices", response_class=HTMLResponse)
    def invoices(request: Request, status: str = "", supplier: str = "", number: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        clauses, args = [], []
        if status.strip():
            clauses.append("i.status = ?")
            args.append(status.strip())
        if supplier.strip():
            clauses.append("(s.name LIKE ? OR i.supplier_id = ? OR i.supplier_vat = ?)")
            args += [f"%{supplier.strip()}%", supplier.strip(), supplier.strip().upper()]
        if number.strip():
            clauses.append("i.invoice_number LIKE ?")
            args.append(f"%{number.strip()}%")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM invoices i JOIN suppliers s USING (supplier_id) {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT i.id, i.invoice_number, i.document_type, i.po_number, i.issue_date, i.gross_total, i.status, "  # noqa: E501
                f"i.received_at, s.name AS supplier_name FROM invoices i JOIN suppliers s USING (supplier_id) {where} "  # noqa: E501
                "ORDER BY i.received_at DESC, i.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "invoices.html",
            {
                "rows": rows,
                "status": status,
                "supplier": supplier,
                "number": number,
                "statuses": INVOICE_STATUSES,
                "pager": pager(request, page, total),
            },
            session=session,
        )

    def invoice_page(
        request: Request,
        session: Session,
        invoice_id: int,
        error: str = "",
        status: int = 200,
        notice: str = "",
    ) -> HTMLResponse:
        with portal.db() as conn:
            inv = conn.execute(
                "SELECT i.*, s.name AS supplier_name FROM invoices i JOIN suppliers s USING (supplier_id) WHERE id = ?",  # noqa: E501
                (invoice_id,),
            ).fetchone()
            if inv is None:
                return not_found(request, session, f"There is no invoice {invoice_id}.")
            history = conn.execute(
                "SELECT * FROM invoice_history WHERE invoice_id = ? ORDER BY rowid", (invoice_id,)
            ).fetchall()
        doc = parse_ubl(zlib.decompress(inv["ubl_gz"]).decode())
        return render(
            request,
            "invoice_detail.html",
            {
                "inv": inv,
                "doc": doc,
                "history": history,
                "reasons": REASON_CODES,
                "error": error,
                "notice": notice,
                "actionable": inv["status"] in ("received", "on_hold"),
            },
            status=status,
            session=session,
        )

    @app.get("/invoices/{invoice_id}", response_class=HTMLResponse)
    def invoice_detail(request: Request, invoice_id: int, done: str = "") -> HTMLResponse:
        session = session_for(request)
        notice = {
            "approved": "Invoice approved.",
            "on_hold": "Invoice put on hold.",
            "rejected": "Invoice rejected.",
        }
        return invoice_page(request, session, invoice_id, notice=notice.get(done, ""))

    @app.get("/invoices/{invoice_id}/ubl")
    def invoice_ubl(request: Request, invoice_id: int) -> Response:
        session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT invoice_number, ubl_gz FROM invoices WHERE id = ?", (invoice_id,)
            ).fetchone()
        if row is None:
            return Response("no such invoice", status_code=404)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["invoice_number"])
        return Response(
            zlib.decompress(row["ubl_gz"]),
            media_type="application/xml",
            headers={"Content-Disposition": f'attachment; filename="{safe}-{invoice_id}.xml"'},
        )

    @app.post("/invoices/{invoice_id}/{action}")
    async def invoice_action(request: Request, invoice_id: int, action: str) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        target = {"approve": "approved", "hold": "on_hold", "reject": "rejected"}.get(action)
        if target is None:
            return not_found(request, session, f"Unknown action {action}.")
        reason = str(form.get("reason_code", "")).strip() or None
        note = str(form.get("note", "")).strip() or None
        if target != "approved" and reason not in REASON_CODES:
            verb = "hold" if target == "on_hold" else "reject"
            return invoice_page(request, session, invoice_id, f"Choose a reason to {verb} this invoice.", 422)
        with portal.db() as conn:
            row = conn.execute("SELECT status FROM invoices WHERE id = ?", (invoice_id,)).fetchone()
            if row is None:
                return not_found(request, session, f"There is no invoice {invoice_id}.")
            if row["status"] not in ("received", "on_hold"):
                pass
            else:
                conn.execute("UPDATE invoices SET status = ? WHERE id = ?", (target, invoice_id))
                conn.execute(
                    "INSERT INTO invoice_history VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        invoice_id,
                        target,
                        reason if target != "approved" else None,
                        note,
                        portal.now_iso(),
                        session.username,
                    ),
                )
                return RedirectResponse(f"/invoices/{invoice_id}?done={target}", status_code=303)
        return invoice_page(
            request,
            session,
            invoice_id,
            f"This invoice is already {row['status'].replace('_', ' ')}; nothing changed.",
            409,
        )
