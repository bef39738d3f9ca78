"""``/_sandbox/*``: the truth about the portal for tests, and test-only controls.

Only mounted in sandbox mode. ``GET /_sandbox/state`` returns what really happened
(amounts as decimal strings); query parameters keep a 100,000-order state small:
``sections=purchase_orders,invoices``, ``since_po=PO-000123`` (orders after it),
``po_number=``, ``requisition_ref=``, ``invoice_status=``, ``limit=``.
``POST /_sandbox/clock`` ``{"advance_s": 5}`` moves the portal clock forward, so
session expiry and lockout can be tested without waiting. ``POST /_sandbox/unlock``
``{"username": "buyer1"}`` clears a lockout.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sandbox.web import Web

__all__ = ["register"]

SECTIONS = ("purchase_orders", "receipts", "invoices", "contracts", "logins")


def register(app: FastAPI, web: Web) -> None:
    """Add the ``/_sandbox`` routes to the portal app."""
    portal = web.portal

    @app.get("/_sandbox/state")
    def state(request: Request) -> JSONResponse:
        q = request.query_params
        wanted = [s for s in q.get("sections", ",".join(SECTIONS)).split(",") if s in SECTIONS]
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else -1
        out: dict[str, Any] = {"now": portal.now_iso()}
        with portal.db() as conn:
            if "purchase_orders" in wanted:
                clauses: list[str] = []
                args: list[Any] = []
                if q.get("since_po"):
                    m = re.search(r"(\d+)$", q["since_po"])
                    clauses.append("po.id > ?")
                    args.append(int(m.group(1)) if m else 0)
                for key in ("po_number", "requisition_ref"):
                    if q.get(key):
                        clauses.append(f"po.{key} = ?")
                        args.append(q[key])
                where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
                orders = conn.execute(
                    "SELECT po.*, s.vat AS supplier_vat FROM purchase_orders po JOIN suppliers s USING (supplier_id) "  # noqa: E501
                    f"{where} ORDER BY po.id LIMIT ?",
                    [*args, limit],
                ).fetchall()
                lines: dict[int, list[dict[str, Any]]] = {}
                if orders:
                    lo, hi = orders[0]["id"], orders[-1]["id"]
                    for ln in conn.execute(
                        "SELECT * FROM po_lines WHERE po_id BETWEEN ? AND ? ORDER BY po_id, line_no", (lo, hi)
                    ):
                        lines.setdefault(ln["po_id"], []).append(
                            {
                                "line_no": ln["line_no"],
                                "item_code": ln["item_code"],
                                "description": ln["description"],
                                "quantity": ln["quantity"],
                                "unit_price": ln["unit_price"],
                                "vat_rate": ln["vat_rate"],
                                "net_amount": ln["net_amount"],
                                "receipt_required": bool(ln["receipt_required"]),
                            }
                        )
                out["purchase_orders"] = [
                    {
                        "po_number": o["po_number"],
                        "requisition_ref": o["requisition_ref"],
                        "supplier_id": o["supplier_id"],
                        "supplier_vat": o["supplier_vat"],
                        "cost_centre": o["cost_centre"],
                        "delivery_site": o["delivery_site"],
                        "need_by": o["need_by"],
                        "status": o["status"],
                        "lines": lines.get(o["id"], []),
                        "net_total": o["net_total"],
                        "vat_total": o["vat_total"],
                        "gross_total": o["gross_total"],
                        "created_at": o["created_at"],
                        "created_by": o["created_by"],
                    }
                    for o in orders
                ]
            if "receipts" in wanted:
                where, rargs = (
                    ("WHERE po.po_number = ?", [q["po_number"]]) if q.get("po_number") else ("", [])
                )
                receipts: dict[str, dict[str, Any]] = {}
                for r in conn.execute(
                    "SELECT r.grn_number, po.po_number, r.received_date, rl.line_no, rl.quantity_received "
                    "FROM receipts r JOIN receipt_lines rl ON rl.receipt_id = r.id "
                    f"JOIN purchase_orders po ON po.id = r.po_id {where} ORDER BY r.id, rl.line_no",
                    rargs,
                ):
                    entry = receipts.setdefault(
                        r["grn_number"],
                        {
                            "grn_number": r["grn_number"],
                            "po_number": r["po_number"],
                            "received_date": r["received_date"],
                            "lines": [],
                        },
                    )
                    entry["lines"].append(
                        {"line_no": r["line_no"], "quantity_received": r["quantity_received"]}
                    )
                out["receipts"] = list(receipts.values())
            if "invoices" in wanted:
                clauses = []
                args = []
                if q.get("invoice_status"):
                    clauses.append("status = ?")
                    args.append(q["invoice_status"])
                if q.get("po_number"):
                    clauses.append("po_number = ?")
                    args.append(q["po_number"])
                where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
                invoices = conn.execute(
                    "SELECT id, invoice_number, document_type, supplier_id, supplier_vat, po_number, issue_date, "  # noqa: E501
                    "net_total, vat_total, gross_total, status, billing_reference, scenario FROM invoices "
                    f"{where} ORDER BY id LIMIT ?",
                    [*args, limit],
                ).fetchall()
                history: dict[int, list[dict[str, Any]]] = {}
                if invoices:
                    ids = [i["id"] for i in invoices]
                    for h in conn.execute(
                        "SELECT * FROM invoice_history WHERE invoice_id BETWEEN ? AND ? ORDER BY rowid",
                        (min(ids), max(ids)),
                    ):
                        history.setdefault(h["invoice_id"], []).append(
                            {
                                "status": h["status"],
                                "reason_code": h["reason_code"],
                                "note": h["note"],
                                "at": h["at"],
                                "by": h["by"],
                            }
                        )
                out["invoices"] = [{**dict(i), "history": history.get(i["id"], [])} for i in invoices]
            if "contracts" in wanted:
                rows = conn.execute(
                    "SELECT contract_id, title, supplier_name, supplier_vat, companies_house, buyer_ods, cpv_codes, "  # noqa: E501
                    "procedure, value_net, value_gross, start_date, end_date, max_end_date, kpi_count, sme, filename, "  # noqa: E501
                    "sha256, length(document) AS size, uploaded_at, uploaded_by, kpis "
                    "FROM contracts ORDER BY id"
                ).fetchall()
                out["contracts"] = [
                    {
                        **dict(r),
                        "sme": bool(r["sme"]),
                        "cpv_codes": r["cpv_codes"].split(","),
                        "kpis": json.loads(r["kpis"]),
                    }
                    for r in rows
                ]
            if "logins" in wanted:
                counts = dict(
                    conn.execute("SELECT outcome, COUNT(*) FROM login_events GROUP BY outcome").fetchall()
                )
                locked = [
                    r[0]
                    for r in conn.execute(
                        "SELECT username FROM users WHERE locked_until > ?", (portal.now(),)
                    )
                ]
                active = conn.execute(
                    "SELECT COUNT(*) FROM sessions WHERE stage = 'full' AND expires > ?", (portal.now(),)
                ).fetchone()[0]
                out["logins"] = {
                    "succeeded": counts.get("succeeded", 0),
                    "failed": counts.get("failed", 0),
                    "locked_attempts": counts.get("locked", 0),
                    "totp_failed": counts.get("totp_failed", 0),
                    "sessions_expired": counts.get("session_expired", 0),
                    "active_sessions": active,
                    "locked_users": locked,
                }
        return JSONResponse(out)

    @app.get("/_sandbox/clock")
    def clock() -> dict[str, Any]:
        return {"now": portal.now(), "offset_s": portal.clock_offset}

    @app.post("/_sandbox/clock")
    async def advance_clock(request: Request) -> dict[str, Any]:
        body = await request.json()
        portal.clock_offset += float(body.get("advance_s", 0))
        return {"now": portal.now(), "offset_s": portal.clock_offset}

    @app.post("/_sandbox/unlock")
    async def unlock(request: Request) -> dict[str, Any]:
        body = await request.json()
        with portal.db() as conn:
            conn.execute(
                "UPDATE users SET failed = 0, locked_until = 0 WHERE username = ?", (body.get("username"),)
            )
        return {"unlocked": body.get("username")}
