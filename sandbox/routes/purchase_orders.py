"""Purchase order pages: the list with filters, the new-order form, confirmation and detail."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.chaos import ChaosSpec
from sandbox.forms import (
    FormField,
    arrange,
    arrange_keep_order,
    form_lines,
    gtin_ok,
    line_order,
    parse_decimal,
    plain,
    price_text,
)
from sandbox.portal import PAGE_SIZE, Session
from sandbox.ubl import money
from sandbox.web import Web

__all__ = ["PO_STATUSES", "VAT_RATES", "po_filters", "register"]

VAT_RATES = ("20", "5", "0")
PO_STATUSES = ("open", "part_received", "received")


LINE_FIELDS = (
    ("item_code", "item code", "text"),
    ("description", "description", "text"),
    ("quantity", "quantity", "text"),
    ("unit_price", "unit price", "text"),
    ("vat_rate", "VAT rate", "select"),
)


def _line_fields(n: int, values: dict[str, str], errors: dict[str, str], order: list[int]) -> list[FormField]:
    out = []
    for k in order:
        name, label, kind = LINE_FIELDS[k]
        f = FormField(
            name=f"line-{n}-{name}",
            label=f"Line {n} {label}",
            kind=kind,
            value=values.get(name, "20" if name == "vat_rate" else ""),
            error=errors.get(name, ""),
        )
        if kind == "select":
            f.options = [(r, f"{r}%") for r in VAT_RATES]
        if name in ("quantity", "unit_price"):
            f.attrs = {"inputmode": "decimal"}
        out.append(f)
    return out


def po_filters(request: Request) -> tuple[str, list[Any], dict[str, str]]:
    params = {k: request.query_params.get(k, "").strip() for k in ("requisition_ref", "supplier", "status")}
    clauses, args = [], []
    if params["requisition_ref"]:
        clauses.append("po.requisition_ref LIKE ?")
        args.append(f"%{params['requisition_ref']}%")
    if params["supplier"]:
        clauses.append("(s.name LIKE ? OR po.supplier_id = ? OR s.vat = ?)")
        args += [f"%{params['supplier']}%", params["supplier"], params["supplier"]]
    if params["status"]:
        clauses.append("po.status = ?")
        args.append(params["status"])
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args, params


def register(app: FastAPI, web: Web) -> None:
    """Add ``/purchase-orders``, ``/purchase-orders/new`` and the order pages."""
    portal, chaos, render, session_for = web.portal, web.chaos, web.render, web.session_for
    checked_form, not_found, page_of, pager = web.checked_form, web.not_found, web.page_of, web.pager

    @app.get("/purchase-orders", response_class=HTMLResponse)
    def purchase_orders(request: Request) -> HTMLResponse:
        session = session_for(request)
        where, args, params = po_filters(request)
        page = page_of(request)
        with portal.db() as conn:
            total = conn.execute(
                f"SELECT COUNT(*) FROM purchase_orders po JOIN suppliers s USING (supplier_id) {where}", args
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT po.*, s.name AS supplier_name FROM purchase_orders po JOIN suppliers s USING (supplier_id) "  # noqa: E501
                f"{where} ORDER BY po.id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        export = "/purchase-orders/export.csv?" + urlencode({k: v for k, v in params.items() if v})
        return render(
            request,
            "purchase_orders.html",
            {
                "rows": rows,
                "params": params,
                "statuses": PO_STATUSES,
                "pager": pager(request, page, total),
                "export": export,
            },
            session=session,
        )

    def po_form_fields(values: dict[str, str], errors: dict[str, str]) -> list[FormField]:
        return arrange(
            [
                FormField(
                    "supplier",
                    "Supplier",
                    value=values.get("supplier", ""),
                    error=errors.get("supplier", ""),
                    hint="Start typing a name, VAT number or supplier ID",
                    attrs={"data-autocomplete": "/api/suppliers", "autocomplete": "off"},
                ),
                FormField(
                    "cost_centre",
                    "Cost centre",
                    value=values.get("cost_centre", ""),
                    error=errors.get("cost_centre", ""),
                    hint="For example CC4100",
                    attrs={"list": "cost-centres"},
                ),
                FormField(
                    "delivery_site",
                    "Delivery site (ODS code)",
                    value=values.get("delivery_site", ""),
                    error=errors.get("delivery_site", ""),
                    hint="For example RX101",
                    attrs={"list": "delivery-sites"},
                ),
                FormField(
                    "need_by",
                    "Need-by date",
                    kind="date",
                    value=values.get("need_by", ""),
                    error=errors.get("need_by", ""),
                ),
                FormField(
                    "requisition_ref",
                    "Requisition reference",
                    value=values.get("requisition_ref", ""),
                    error=errors.get("requisition_ref", ""),
                ),
            ],
            chaos,
        )

    def new_po_page(
        request: Request,
        session: Session,
        values: dict[str, str],
        errors: dict[str, str],
        lines: list[tuple[int, dict[str, str], dict[str, str]]],
        status: int = 200,
    ) -> HTMLResponse:
        order = line_order(len(LINE_FIELDS), chaos)
        with portal.db() as conn:
            cost_centres = conn.execute("SELECT * FROM cost_centres ORDER BY code").fetchall()
            sites = conn.execute("SELECT * FROM sites ORDER BY ods").fetchall()
        line_rows = [
            (
                n,
                arrange(_line_fields(n, v, e, order), ChaosSpec())
                if not chaos.shuffle
                else arrange_keep_order(_line_fields(n, v, e, order), chaos),
            )
            for n, v, e in lines
        ]
        template_fields = _line_fields(0, {}, {}, order)
        summary = list(errors.items())
        for n, _, line_errors in lines:
            summary += [(f"line-{n}-{k}", v) for k, v in line_errors.items()]
        return render(
            request,
            "po_new.html",
            {
                "fields": po_form_fields(values, errors),
                "lines": line_rows,
                "line_template": template_fields,
                "cost_centres": cost_centres,
                "sites": sites,
                "errors": summary,
                "form_error": errors.get("_form"),
            },
            status=status,
            session=session,
        )

    @app.get("/purchase-orders/new", response_class=HTMLResponse)
    def new_po(request: Request) -> HTMLResponse:
        session = session_for(request)
        return new_po_page(request, session, {}, {}, [(1, {}, {})])

    @app.post("/purchase-orders/new")
    async def create_po(request: Request) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        values = {
            k: str(form.get(k, "")).strip()
            for k in ("supplier", "cost_centre", "delivery_site", "need_by", "requisition_ref")
        }
        raw_lines = form_lines(form.multi_items(), (f[0] for f in LINE_FIELDS))
        lines = [(n, v) for n, v in raw_lines if any(v.get(f) for f, _, _ in LINE_FIELDS[:4])]
        errors: dict[str, str] = {}
        with portal.db() as conn:
            supplier = resolve_supplier(conn, values["supplier"])
            if not values["supplier"]:
                errors["supplier"] = "Enter a supplier"
            elif supplier is None:
                errors["supplier"] = f"No supplier matches “{values['supplier']}”. Choose one from the list."
            if not values["cost_centre"]:
                errors["cost_centre"] = "Enter a cost centre"
            elif (
                conn.execute(
                    "SELECT 1 FROM cost_centres WHERE code = ?", (values["cost_centre"].upper(),)
                ).fetchone()
                is None
            ):
                errors["cost_centre"] = f"Cost centre “{values['cost_centre']}” does not exist"
            if not values["delivery_site"]:
                errors["delivery_site"] = "Enter a delivery site ODS code"
            elif (
                conn.execute(
                    "SELECT 1 FROM sites WHERE ods = ?", (values["delivery_site"].upper(),)
                ).fetchone()
                is None
            ):
                errors["delivery_site"] = (
                    f"“{values['delivery_site']}” is not an ODS site code of this trust, for example RX101"
                )
        try:
            need_by = dt.date.fromisoformat(values["need_by"])
        except ValueError:
            need_by = None
            errors["need_by"] = "Enter the need-by date as a real date, for example 2026-12-31"
        ref = values["requisition_ref"]
        if not ref:
            errors["requisition_ref"] = "Enter a requisition reference"
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/_-]{2,39}", ref):
            errors["requisition_ref"] = "Requisition reference: 3 to 40 letters, digits, / - or _"
        parsed: list[tuple[str, str, Decimal, Decimal, Decimal]] = []
        line_views = []
        for n, v in lines:
            e: dict[str, str] = {}
            code = v.get("item_code", "")
            if not code:
                e["item_code"] = f"Line {n}: enter an item code or GTIN"
            elif code.isdigit() and len(code) in (8, 12, 13, 14) and not gtin_ok(code):
                e["item_code"] = f"Line {n}: GTIN {code} has a wrong check digit"
            if not v.get("description"):
                e["description"] = f"Line {n}: enter a description"
            qty = parse_decimal(v.get("quantity", ""))
            if qty is None or qty <= 0 or qty.as_tuple().exponent < -3:  # type: ignore[operator]
                e["quantity"] = f"Line {n}: quantity must be a number greater than 0"
            price = parse_decimal(v.get("unit_price", "").replace("£", "").replace(",", ""))
            if price is None or price < 0 or price.as_tuple().exponent < -4:  # type: ignore[operator]
                e["unit_price"] = f"Line {n}: unit price must be an amount in pounds, for example 12.50"
            rate = v.get("vat_rate", "")
            if rate not in VAT_RATES:
                e["vat_rate"] = f"Line {n}: choose a VAT rate"
            if not e and qty is not None and price is not None:
                parsed.append((code, v["description"], qty, price, Decimal(rate)))
            line_views.append((n, v, e))
        if not lines:
            errors["_form"] = "Add at least one line"
            line_views = [(1, {}, {"item_code": "Line 1: enter an item code or GTIN"})]
        if errors or any(e for _, _, e in line_views):
            return new_po_page(request, session, values, errors, line_views, status=422)
        assert supplier is not None
        assert need_by is not None
        po_number = insert_po(session, supplier["supplier_id"], values, need_by, parsed)
        return RedirectResponse(f"/purchase-orders/{po_number}/confirmation", status_code=303)

    def resolve_supplier(conn: sqlite3.Connection, text: str) -> sqlite3.Row | None:
        if not text:
            return None
        m = re.search(r"\((SUP-\d+)\)\s*$", text)
        key = m.group(1) if m else text
        return cast(
            "sqlite3.Row | None",
            conn.execute(
                "SELECT * FROM suppliers WHERE supplier_id = ? OR name = ? COLLATE NOCASE OR vat = ?",
                (key.upper(), key, key.upper().replace(" ", "")),
            ).fetchone(),
        )

    def insert_po(
        session: Session,
        supplier_id: str,
        values: dict[str, str],
        need_by: dt.date,
        lines: list[tuple[str, str, Decimal, Decimal, Decimal]],
    ) -> str:
        groups: dict[Decimal, Decimal] = {}
        line_rows = []
        with portal.db() as conn:
            for k, (code, desc, qty, price, rate) in enumerate(lines, start=1):
                net = money(qty * price)
                groups[rate] = groups.get(rate, Decimal("0")) + net
                item = conn.execute("SELECT receipt_required FROM items WHERE code = ?", (code,)).fetchone()
                receipt = bool(item[0]) if item else not code.upper().startswith("SVC-")
                line_rows.append(
                    (k, code, desc, plain(qty), price_text(price), plain(rate), str(net), int(receipt))
                )
            net_total = money(sum(groups.values(), Decimal("0")))
            vat_total = money(sum((money(v * r / 100) for r, v in groups.items()), Decimal("0")))
            cur = conn.execute(
                "INSERT INTO purchase_orders (requisition_ref, supplier_id, cost_centre, delivery_site, need_by, "  # noqa: E501
                "status, net_total, vat_total, gross_total, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
                (
                    values["requisition_ref"],
                    supplier_id,
                    values["cost_centre"].upper(),
                    values["delivery_site"].upper(),
                    need_by.isoformat(),
                    str(net_total),
                    str(vat_total),
                    str(net_total + vat_total),
                    portal.now_iso(),
                    session.username,
                ),
            )
            po_id = cur.lastrowid
            po_number = f"PO-{po_id:06d}"
            conn.execute("UPDATE purchase_orders SET po_number = ? WHERE id = ?", (po_number, po_id))
            conn.executemany(
                "INSERT INTO po_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(po_id, *row) for row in line_rows],
            )
        return po_number

    @app.get("/purchase-orders/{po_number}/confirmation", response_class=HTMLResponse)
    def po_confirmation(request: Request, po_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            po = conn.execute("SELECT * FROM purchase_orders WHERE po_number = ?", (po_number,)).fetchone()
        if po is None:
            return not_found(request, session, f"There is no purchase order {po_number}.")
        return render(request, "po_created.html", {"po": po}, session=session)

    @app.get("/purchase-orders/{po_number}", response_class=HTMLResponse)
    def po_detail(request: Request, po_number: str) -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            po = conn.execute(
                "SELECT po.*, s.name AS supplier_name, s.vat AS supplier_vat FROM purchase_orders po "
                "JOIN suppliers s USING (supplier_id) WHERE po_number = ?",
                (po_number,),
            ).fetchone()
            if po is None:
                return not_found(request, session, f"There is no purchase order {po_number}.")
            lines = conn.execute(
                "SELECT l.*, (SELECT COALESCE(SUM(CAST(rl.quantity_received AS REAL)), 0) FROM receipt_lines rl "  # noqa: E501
                "JOIN receipts r ON r.id = rl.receipt_id WHERE r.po_id = l.po_id AND rl.line_no = l.line_no) "
                "AS received FROM po_lines l WHERE po_id = ? ORDER BY line_no",
                (po["id"],),
            ).fetchall()
            receipts = conn.execute(
                "SELECT * FROM receipts WHERE po_id = ? ORDER BY id", (po["id"],)
            ).fetchall()
            invoices = conn.execute(
                "SELECT id, invoice_number, document_type, status, gross_total FROM invoices WHERE po_number = ? "  # noqa: E501
                "ORDER BY id",
                (po_number,),
            ).fetchall()
        return render(
            request,
            "po_detail.html",
            {"po": po, "lines": lines, "receipts": receipts, "invoices": invoices},
            session=session,
        )
