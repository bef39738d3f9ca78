"""Goods receipt pages: the list, "Record goods receipt" and the receipt detail.

The record form refuses (422, with an error summary) an unknown PO or PO line, a
quantity that takes a line's received total over its ordered quantity, a received
date in the future (London) and a GRN number already recorded. The GRN number is the
caller's: a bot uses it to look for a receipt it may already have recorded.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.forms import FormField, arrange, arrange_keep_order, form_lines, line_order, parse_decimal, plain
from sandbox.portal import LONDON, PAGE_SIZE, Session
from sandbox.web import Web

__all__ = ["GRN_PATTERN", "register"]

GRN_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{2,39}"
HEADER_FIELDS = (
    ("grn_number", "GRN number", "text", "Your goods received note number, for example GRN-2026-0001"),
    ("po_number", "PO number", "text", "For example PO-000123"),
    ("received_date", "Received date", "date", ""),
)
LINE_FIELDS = (("po_line", "PO line", "numeric"), ("quantity", "quantity received", "decimal"))


def _header_fields(values: dict[str, str], errors: dict[str, str]) -> list[FormField]:
    return [
        FormField(name, label, kind, values.get(name, ""), errors.get(name, ""), hint)
        for name, label, kind, hint in HEADER_FIELDS
    ]


def _line_fields(n: int, values: dict[str, str], errors: dict[str, str], order: list[int]) -> list[FormField]:
    out = []
    for k in order:
        name, label, mode = LINE_FIELDS[k]
        out.append(
            FormField(
                f"line-{n}-{name}",
                f"Line {n} {label}",
                value=values.get(name, ""),
                error=errors.get(name, ""),
                attrs={"inputmode": mode},
            )
        )
    return out


def _po_lines(conn: sqlite3.Connection, po_id: int) -> dict[int, dict[str, Any]]:
    """The PO's lines with what has been received on each so far (exact decimals)."""
    lines = {
        r["line_no"]: {**dict(r), "received": Decimal(0)}
        for r in conn.execute("SELECT * FROM po_lines WHERE po_id = ? ORDER BY line_no", (po_id,))
    }
    for r in conn.execute(
        "SELECT rl.line_no, rl.quantity_received FROM receipt_lines rl "
        "JOIN receipts r ON r.id = rl.receipt_id WHERE r.po_id = ?",
        (po_id,),
    ):
        if r["line_no"] in lines:
            lines[r["line_no"]]["received"] += Decimal(r["quantity_received"])
    return lines


def _po_status(lines: dict[int, dict[str, Any]]) -> str:
    goods = [ln for ln in lines.values() if ln["receipt_required"]]
    if not any(ln["received"] for ln in goods):
        return "open"
    if all(ln["received"] >= Decimal(ln["quantity"]) for ln in goods):
        return "received"
    return "part_received"


def _check_lines(
    po_number: str, po_lines: dict[int, dict[str, Any]] | None, lines: list[tuple[int, dict[str, str]]]
) -> tuple[list[tuple[int, dict[str, str], dict[str, str]]], list[tuple[int, Decimal]]]:
    """Each line's errors, and the (PO line, quantity) pairs when there are none."""
    views, parsed, seen = [], [], set()
    for n, v in lines:
        e: dict[str, str] = {}
        text = v.get("po_line", "")
        line_no = int(text) if text.isdigit() else None
        if line_no is None:
            e["po_line"] = f"Line {n}: enter the PO line number, for example 1"
        elif po_lines is not None and line_no not in po_lines:
            e["po_line"] = f"Line {n}: {po_number} has no line {line_no}"
        elif line_no in seen:
            e["po_line"] = f"Line {n}: PO line {line_no} is already on this receipt"
        qty = parse_decimal(v.get("quantity", ""))
        if qty is None or qty <= 0 or qty.as_tuple().exponent < -3:  # type: ignore[operator]
            e["quantity"] = f"Line {n}: quantity received must be a number greater than 0"
        elif po_lines is not None and line_no in po_lines and not e:
            ln = po_lines[line_no]
            ordered = Decimal(ln["quantity"])
            if ln["received"] + qty > ordered:
                e["quantity"] = (
                    f"Line {n}: receiving {plain(qty)} would take line {line_no} of {po_number} to "
                    f"{plain(ln['received'] + qty)} received of {plain(ordered)} ordered"
                )
        if line_no is not None:
            seen.add(line_no)
        if not e and line_no is not None and qty is not None:
            parsed.append((line_no, qty))
        views.append((n, v, e))
    return views, parsed


def _insert_receipt(
    conn: sqlite3.Connection,
    po_id: int,
    values: dict[str, str],
    lines: list[tuple[int, Decimal]],
    po_lines: dict[int, dict[str, Any]],
) -> None:
    cur = conn.execute(
        "INSERT INTO receipts (grn_number, po_id, received_date) VALUES (?, ?, ?)",
        (values["grn_number"], po_id, values["received_date"]),
    )
    conn.executemany(
        "INSERT INTO receipt_lines VALUES (?, ?, ?)", [(cur.lastrowid, n, plain(q)) for n, q in lines]
    )
    for n, q in lines:
        po_lines[n]["received"] += q
    conn.execute("UPDATE purchase_orders SET status = ? WHERE id = ?", (_po_status(po_lines), po_id))


def register(app: FastAPI, web: Web) -> None:
    """Add ``/receipts``, ``/receipts/new`` and ``/receipts/{grn_number}``."""
    portal, chaos, render, session_for, not_found = (
        web.portal,
        web.chaos,
        web.render,
        web.session_for,
        web.not_found,
    )
    page_of, pager, checked_form = web.page_of, web.pager, web.checked_form

    def new_receipt_page(
        request: Request,
        session: Session,
        values: dict[str, str],
        errors: dict[str, str],
        lines: list[tuple[int, dict[str, str], dict[str, str]]],
        status: int = 200,
    ) -> HTMLResponse:
        order = line_order(len(LINE_FIELDS), chaos)
        place = arrange_keep_order if chaos.shuffle else arrange
        line_rows = [(n, place(_line_fields(n, v, e, order), chaos)) for n, v, e in lines]
        summary = [(k, errors[k]) for k in (*(f[0] for f in HEADER_FIELDS), "_form") if k in errors]
        for n, _, line_errors in lines:
            summary += [(f"line-{n}-{k}", v) for k, v in line_errors.items()]
        po, po_lines = None, None
        with portal.db() as conn:
            po = conn.execute(
                "SELECT * FROM purchase_orders WHERE po_number = ?", (values.get("po_number", "").upper(),)
            ).fetchone()
            if po is not None:
                po_lines = list(_po_lines(conn, po["id"]).values())
        return render(
            request,
            "receipt_new.html",
            {
                "fields": arrange(_header_fields(values, errors), chaos),
                "lines": line_rows,
                "line_template": _line_fields(0, {}, {}, order),
                "errors": summary,
                "form_error": errors.get("_form"),
                "po": po,
                "po_lines": po_lines,
                "plain": plain,
            },
            status=status,
            session=session,
        )

    @app.get("/receipts/new", response_class=HTMLResponse)
    def new_receipt(request: Request, po_number: str = "") -> HTMLResponse:
        session = session_for(request)
        return new_receipt_page(request, session, {"po_number": po_number.strip()}, {}, [(1, {}, {})])

    @app.post("/receipts/new")
    async def record_receipt(request: Request) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        values = {name: str(form.get(name, "")).strip() for name, _, _, _ in HEADER_FIELDS}
        values["po_number"] = values["po_number"].upper()
        lines = [
            (n, v) for n, v in form_lines(form.multi_items(), (f[0] for f in LINE_FIELDS)) if any(v.values())
        ]
        errors: dict[str, str] = {}
        grn = values["grn_number"]
        if not grn:
            errors["grn_number"] = "Enter the GRN number"
        elif not re.fullmatch(GRN_PATTERN, grn):
            errors["grn_number"] = "GRN number: 3 to 40 letters, digits, . - or _"
        try:
            received = dt.date.fromisoformat(values["received_date"])
        except ValueError:
            errors["received_date"] = "Enter the received date as a real date, for example 2026-12-01"
        else:
            today = dt.datetime.fromtimestamp(portal.now(), LONDON).date()
            if received > today:
                errors["received_date"] = (
                    f"The received date {received.isoformat()} is in the future; goods can only be "
                    "receipted once they have arrived"
                )
        with portal.db() as conn:
            if grn and conn.execute("SELECT 1 FROM receipts WHERE grn_number = ?", (grn,)).fetchone():
                errors["grn_number"] = f"Goods receipt {grn} is already recorded"
            po = conn.execute(
                "SELECT id FROM purchase_orders WHERE po_number = ?", (values["po_number"],)
            ).fetchone()
            if not values["po_number"]:
                errors["po_number"] = "Enter the PO number"
            elif po is None:
                errors["po_number"] = f"There is no purchase order {values['po_number']}"
            po_lines = _po_lines(conn, po["id"]) if po is not None else None
            line_views, parsed = _check_lines(values["po_number"], po_lines, lines)
            if not lines:
                errors["_form"] = "Add at least one line"
                line_views = [(1, {}, {"po_line": "Line 1: enter the PO line number, for example 1"})]
            if not errors and not any(e for _, _, e in line_views) and po is not None and po_lines:
                try:
                    _insert_receipt(conn, po["id"], values, parsed, po_lines)
                except sqlite3.IntegrityError:  # the same GRN number posted twice at once
                    conn.rollback()
                    errors["grn_number"] = f"Goods receipt {grn} is already recorded"
                else:
                    return RedirectResponse(f"/receipts/{quote(grn, safe='')}?recorded=1", status_code=303)
        return new_receipt_page(request, session, values, errors, line_views, status=422)

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
    def receipt_detail(request: Request, grn_number: str, recorded: str = "") -> HTMLResponse:
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
        return render(
            request,
            "receipt_detail.html",
            {"r": receipt, "lines": lines, "recorded": bool(recorded)},
            session=session,
        )
