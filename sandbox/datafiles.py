"""``procbots sandbox data``: the input files the bots read, from the same seed as the portal.

Writes into ``out``: ``orders.csv``/``orders.xlsx`` and ``receipts.csv``/``receipts.xlsx``
(the portal's history in the ARCHITECTURE formats), ``invoices/*.xml`` (PEPPOL UBL),
``requisitions.xlsx`` (new requisitions, one row per line, not yet POs in the portal),
``contracts/`` (new contract PDFs plus ``metadata.xlsx``) and ``goods-receipts/``: PEPPOL
despatch advices (``DESP-....xml``) and a point-of-use scan export (``point-of-use-scans.csv``)
for the deliveries of the orders whose invoices wait for a goods receipt (seed scenario
``awaiting_receipt``); a third of those deliveries have neither, so their invoices stay held.

Example:
    >>> paths = write_input_files(Path("var/inbox/sample"), seed=1, orders=200)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

from sandbox.seed import Dataset, generate
from sandbox.ubl import UblLine, render_despatch, render_ubl

__all__ = [
    "CONTRACT_METADATA_COLUMNS",
    "ORDER_COLUMNS",
    "RECEIPT_COLUMNS",
    "REQUISITION_COLUMNS",
    "SCAN_COLUMNS",
    "write_input_files",
    "write_receipt_inputs",
]

ORDER_COLUMNS = (
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
RECEIPT_COLUMNS = ("grn_number", "po_number", "line_no", "quantity_received", "received_date")
REQUISITION_COLUMNS = (
    "requisition_ref",
    "supplier_id",
    "supplier_vat",
    "cost_centre",
    "delivery_site",
    "need_by",
    "item_code",
    "description",
    "quantity",
    "unit_price",
    "vat_rate",
)
SCAN_COLUMNS = ("gtin", "po_number", "po_line", "quantity", "scanned_at", "location")
CONTRACT_METADATA_COLUMNS = (
    "file",
    "contract_id",
    "title",
    "supplier_name",
    "supplier_vat",
    "companies_house",
    "buyer_ods",
    "cpv_codes",
    "procedure",
    "value_net",
    "value_gross",
    "start_date",
    "end_date",
    "max_end_date",
    "kpi_count",
    "kpis",
    "sme",
)


def _cell(value: object) -> object:
    """Amounts and quantities as Excel numbers (as a trust's spreadsheet has them); codes as text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _write_table(
    stem: Path, columns: tuple[str, ...], rows: list[list[object]], csv_too: bool = True
) -> list[Path]:
    from openpyxl import Workbook

    written = []
    if csv_too:
        path = stem.with_suffix(".csv")
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows([["" if v is None else str(v) for v in row] for row in rows])
        written.append(path)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(stem.name)
    ws.append(list(columns))
    for row in rows:
        # Codes stay text in Excel (a GTIN as a number loses nothing, but a leading zero would).
        ws.append([_cell(v) for v in row])
    xlsx = stem.with_suffix(".xlsx")
    wb.save(xlsx)
    written.append(xlsx)
    return written


def write_receipt_inputs(out: Path, data: Dataset) -> tuple[int, int]:
    """The despatch advices and scan export of ``data.deliveries``; returns (advices, scan rows).

    Each scanned line is two scans (the second without its PO line, found by GTIN),
    the day after the despatch at 10:15 London time.
    """
    out.mkdir(parents=True, exist_ok=True)
    suppliers = data.suppliers_by_id
    advices = 0
    scans: list[list[object]] = []
    for delivery in data.deliveries:
        if delivery.channel == "despatch":
            supplier = suppliers[delivery.supplier_id]
            lines = [
                UblLine(k + 1, ln.quantity, ln.unit_price, ln.vat_rate, ln.description, ln.item_code, ln.gtin,
                        ln.line_no)
                for k, ln in enumerate(delivery.lines)
            ]  # fmt: skip
            xml = render_despatch(
                delivery.despatch_id, delivery.despatched, delivery.po_number, supplier.name, supplier.vat,
                data.buyer, lines,
            )  # fmt: skip
            (out / f"{delivery.despatch_id}.xml").write_text(xml, encoding="utf-8")
            advices += 1
        elif delivery.channel == "scan":
            at = dt.datetime.combine(delivery.despatched + dt.timedelta(days=1), dt.time(10, 15))
            for ln in delivery.lines:
                first = (ln.quantity + 1) // 2
                scans.append([ln.gtin, delivery.po_number, ln.line_no, first, at.isoformat(" "), "Ward 7"])
                if ln.quantity - first:
                    later = (at + dt.timedelta(minutes=40)).isoformat(" ")
                    scans.append([ln.gtin, delivery.po_number, None, ln.quantity - first, later, "Ward 7"])
    if scans:
        with (out / "point-of-use-scans.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(SCAN_COLUMNS)
            writer.writerows([["" if v is None else str(v) for v in row] for row in scans])
    return advices, len(scans)


def write_input_files(
    out: Path, seed: int = 1, orders: int = 200, data: Dataset | None = None
) -> dict[str, object]:
    """Write the sample inputs; returns the paths and counts written."""
    data = data or generate(seed, orders)
    out.mkdir(parents=True, exist_ok=True)
    vat = {s.supplier_id: s.vat for s in data.suppliers}
    order_rows: list[list[object]] = [
        [
            o.po_number,
            ln.line_no,
            o.supplier_id,
            vat[o.supplier_id],
            ln.item_code,
            ln.description,
            ln.quantity,
            ln.unit_price,
            ln.vat_rate,
            "true" if ln.receipt_required else "false",
        ]
        for o in data.orders
        for ln in o.lines
    ]
    receipt_rows: list[list[object]] = [
        [r.grn_number, r.po_number, line_no, q, r.received_date]
        for r in data.receipts
        for line_no, q in r.lines
    ]
    files = _write_table(out / "orders", ORDER_COLUMNS, order_rows)
    files += _write_table(out / "receipts", RECEIPT_COLUMNS, receipt_rows)
    req_rows: list[list[object]] = [
        [
            r.requisition_ref,
            r.supplier_id,
            r.supplier_vat,
            r.cost_centre,
            r.delivery_site,
            r.need_by,
            r.item_code,
            r.description,
            r.quantity,
            r.unit_price,
            r.vat_rate,
        ]
        for r in data.new_requisitions
    ]
    files += _write_table(out / "requisitions", REQUISITION_COLUMNS, req_rows, csv_too=False)
    invoices = out / "invoices"
    invoices.mkdir(exist_ok=True)
    for inv in data.invoices:
        # Duplicates keep the supplier's own number; the portal id keeps the two files apart.
        name = re.sub(r"[^A-Za-z0-9._-]", "_", inv.invoice_number)
        path = invoices / f"{inv.id:06d}-{name}.xml"
        path.write_text(render_ubl(inv.document), encoding="utf-8")
    contracts = out / "contracts"
    contracts.mkdir(exist_ok=True)
    meta_rows: list[list[object]] = []
    for c in data.new_contracts:
        (contracts / c.filename).write_bytes(c.document)
        meta_rows.append(
            [
                c.filename,
                c.contract_id,
                c.title,
                c.supplier_name,
                c.supplier_vat,
                c.companies_house,
                c.buyer_ods,
                c.cpv_codes,
                c.procedure,
                c.value_net,
                c.value_gross,
                c.start_date,
                c.end_date,
                c.max_end_date,
                c.kpi_count,
                "; ".join(c.kpis),
                "yes" if c.sme else "no",
            ]
        )
    files += _write_table(contracts / "metadata", CONTRACT_METADATA_COLUMNS, meta_rows, csv_too=False)
    advices, scan_rows = write_receipt_inputs(out / "goods-receipts", data)
    return {
        "out": str(out),
        "files": [str(f) for f in files],
        "orders": len(data.orders),
        "order_lines": len(order_rows),
        "receipt_lines": len(receipt_rows),
        "invoices": len(data.invoices),
        "requisitions": len({r.requisition_ref for r in data.new_requisitions}),
        "requisition_lines": len(req_rows),
        "contracts": len(data.new_contracts),
        "despatch_advices": advices,
        "scan_rows": scan_rows,
        "awaiting_receipt": len(data.deliveries),
    }
