"""CSV exports: the order book and the goods receipts, streamed in the matching file formats."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from sandbox.portal import Portal
from sandbox.routes.purchase_orders import po_filters
from sandbox.web import Web

__all__ = ["ORDER_EXPORT_COLUMNS", "RECEIPT_EXPORT_COLUMNS", "register"]

ORDER_EXPORT_COLUMNS = (
    "po_number",
    "line_no",
    "supplier_id",
    "supplier_vat",
    "item_code",
    "description",
    "quantity",
    "unit_price",
    "vat_rate",
    "receipt_required",
)
RECEIPT_EXPORT_COLUMNS = ("grn_number", "po_number", "line_no", "quantity_received", "received_date")


def _stream(
    portal: Portal,
    header: Sequence[str],
    sql: str,
    args: list[Any],
    row: Callable[[Any], list[Any]],
    filename: str,
) -> StreamingResponse:
    """Stream ``sql``'s rows as CSV in chunks of 2,000 rows, so a big book never sits in memory."""

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        with portal.db() as conn:
            for n, r in enumerate(conn.execute(sql, args)):
                writer.writerow(row(r))
                if n % 2000 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def register(app: FastAPI, web: Web) -> None:
    """Add ``/purchase-orders/export.csv`` and ``/receipts/export.csv`` (before the detail pages)."""
    portal, session_for = web.portal, web.session_for

    @app.get("/purchase-orders/export.csv")
    def purchase_orders_csv(request: Request) -> StreamingResponse:
        session_for(request)
        where, args, _ = po_filters(request)
        return _stream(
            portal,
            ORDER_EXPORT_COLUMNS,
            "SELECT po.po_number, l.line_no, po.supplier_id, s.vat, l.item_code, l.description, l.quantity, "
            "l.unit_price, l.vat_rate, l.receipt_required FROM purchase_orders po "
            "JOIN suppliers s USING (supplier_id) JOIN po_lines l ON l.po_id = po.id "
            f"{where} ORDER BY po.id, l.line_no",
            args,
            lambda r: [*r[:9], "true" if r[9] else "false"],
            "orders.csv",
        )

    @app.get("/receipts/export.csv")
    def receipts_csv(request: Request, po_number: str = "") -> StreamingResponse:
        session_for(request)
        where, args = (
            ("WHERE po.po_number = ?", [po_number.strip().upper()]) if po_number.strip() else ("", [])
        )
        return _stream(
            portal,
            RECEIPT_EXPORT_COLUMNS,
            "SELECT r.grn_number, po.po_number, rl.line_no, rl.quantity_received, r.received_date "
            "FROM receipts r JOIN receipt_lines rl ON rl.receipt_id = r.id "
            f"JOIN purchase_orders po ON po.id = r.po_id {where} ORDER BY r.id, rl.line_no",
            args,
            list,
            "receipts.csv",
        )
