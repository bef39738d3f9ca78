"""Goods receipt pages: the list and the receipt detail."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from sandbox.portal import PAGE_SIZE
from sandbox.web import Web

__all__ = ["register"]


def register(app: FastAPI, web: Web) -> None:
    """Add ``/receipts`` and ``/receipts/{grn_number}``."""
    portal, render, session_for, not_found = web.portal, web.render, web.session_for, web.not_found
    page_of, pager = web.page_of, web.pager

    @app.get("/receipts", response_class=HTMLResponse)
    def receipts(request: Request, po_number: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if po_number.strip():
            where, args = "WHERE po.po_number = ?", [po_number.strip().upper()]
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM receipts r JOIN purchase_orders po ON po.id = r.po_id {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT r.*, po.po_number, s.name AS supplier_name, (SELECT COUNT(*) FROM receipt_lines "
                "WHERE receipt_id = r.id) AS line_count FROM receipts r JOIN purchase_orders po ON po.id = r.po_id "  # noqa: E501
                f"JOIN suppliers s USING (supplier_id) {where} ORDER BY r.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        export = "/receipts/export.csv" + (
            f"?{urlencode({'po_number': po_number.strip()})}" if po_number.strip() else ""
        )
        return render(
            request,
            "receipts.html",
            {"rows": rows, "po_number": po_number, "pager": pager(request, page, total), "export": export},
            session=session,
        )

    @app.get("/receipts/{grn_number}", response_class=HTMLResponse)
    def receipt_detail(request: Request, grn_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            receipt = conn.execute(
                "SELECT r.*, po.po_number, s.name AS supplier_name FROM receipts r JOIN purchase_orders po "
                "ON po.id = r.po_id JOIN suppliers s USING (supplier_id) WHERE grn_number = ?",
                (grn_number,),
            ).fetchone()
            if receipt is None:
                return not_found(request, session, f"There is no goods receipt {grn_number}.")
            lines = conn.execute(
                "SELECT rl.*, l.item_code, l.description, l.quantity AS ordered FROM receipt_lines rl "
                "JOIN po_lines l ON l.po_id = ? AND l.line_no = rl.line_no WHERE rl.receipt_id = ? ORDER BY rl.line_no",  # noqa: E501
                (receipt["po_id"], receipt["id"]),
            ).fetchall()
        return render(request, "receipt_detail.html", {"r": receipt, "lines": lines}, session=session)
