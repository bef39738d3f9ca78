"""The dashboard, the health check and the supplier pages (list, detail, look-up API)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sandbox.portal import PAGE_SIZE
from sandbox.web import Web

__all__ = ["register"]


def register(app: FastAPI, web: Web) -> None:
    """Add ``/healthz``, ``/``, ``/suppliers`` and ``/api/suppliers``."""
    portal, render, session_for, not_found = web.portal, web.render, web.session_for, web.not_found
    page_of, pager = web.page_of, web.pager

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with portal.db() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return {"status": "ok", "seed": int(meta["seed"]), "orders": int(meta["orders"])}

    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            counts = {
                "orders": conn.execute("SELECT COUNT(*) FROM purchase_orders").fetchone()[0],
                "open_orders": conn.execute(
                    "SELECT COUNT(*) FROM purchase_orders WHERE status != 'received'"
                ).fetchone()[0],
                "inbox": conn.execute("SELECT COUNT(*) FROM invoices WHERE status = 'received'").fetchone()[
                    0
                ],
                "on_hold": conn.execute("SELECT COUNT(*) FROM invoices WHERE status = 'on_hold'").fetchone()[
                    0
                ],
                "contracts": conn.execute("SELECT COUNT(*) FROM contracts").fetchone()[0],
                "receipts": conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0],
            }
            buyer = conn.execute("SELECT * FROM buyer").fetchone()
        return render(request, "dashboard.html", {"counts": counts, "buyer": buyer}, session=session)

    @app.get("/api/suppliers")
    def supplier_lookup(request: Request, q: str = "") -> JSONResponse:
        session_for(request, api=True)
        q = q.strip()
        if not q:
            return JSONResponse([])
        like = f"%{q}%"
        with portal.db() as conn:
            rows = conn.execute(
                "SELECT supplier_id, name, vat FROM suppliers WHERE name LIKE ? OR supplier_id LIKE ? OR vat LIKE ? "  # noqa: E501
                "ORDER BY name LIMIT 10",
                (like, f"{q}%", f"%{q}%"),
            ).fetchall()
        return JSONResponse([{"id": r["supplier_id"], "name": r["name"], "vat": r["vat"]} for r in rows])

    @app.get("/suppliers", response_class=HTMLResponse)
    def suppliers(request: Request, q: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if q.strip():
            like = f"%{q.strip()}%"
            where, args = "WHERE name LIKE ? OR supplier_id LIKE ? OR vat LIKE ?", [like, like, like]
        with portal.db() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM suppliers {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM suppliers {where} ORDER BY name LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "suppliers.html",
            {"rows": rows, "q": q, "pager": pager(request, page, total)},
            session=session,
        )

    @app.get("/suppliers/{supplier_id}", response_class=HTMLResponse)
    def supplier_detail(request: Request, supplier_id: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            supplier = conn.execute(
                "SELECT * FROM suppliers WHERE supplier_id = ?", (supplier_id,)
            ).fetchone()
            items = conn.execute(
                "SELECT * FROM items WHERE supplier_id = ? ORDER BY description", (supplier_id,)
            ).fetchall()
        if supplier is None:
            return not_found(request, session, f"There is no supplier {supplier_id}.")
        return render(request, "supplier.html", {"s": supplier, "items": items}, session=session)
