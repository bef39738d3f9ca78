"""The sandbox portal's database: its schema, and loading a seed dataset into it.

:func:`write_database` creates the SQLite file the portal serves from a
:class:`~sandbox.seed_records.Dataset`; :func:`contract_row`,
:data:`CONTRACT_COLUMNS` and :data:`CONTRACT_PLACEHOLDERS` are shared with the portal's
contract upload route.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zlib
from pathlib import Path

from sandbox.seed_records import ANCHOR, ContractRecord, Dataset
from sandbox.ubl import render_ubl

__all__ = ["CONTRACT_COLUMNS", "CONTRACT_PLACEHOLDERS", "SCHEMA", "contract_row", "write_database"]

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, salt TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0, totp_secret TEXT);
CREATE TABLE sessions (
    token TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL, stage TEXT NOT NULL);
CREATE TABLE login_events (at REAL NOT NULL, username TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE TABLE buyer (name TEXT, vat TEXT, gln TEXT, ods TEXT, street TEXT, city TEXT, postcode TEXT);
CREATE TABLE suppliers (
    supplier_id TEXT PRIMARY KEY, name TEXT NOT NULL, vat TEXT NOT NULL, companies_house TEXT,
    street TEXT, city TEXT, postcode TEXT, email TEXT, sme INTEGER NOT NULL);
CREATE INDEX suppliers_name ON suppliers (name COLLATE NOCASE);
CREATE TABLE items (
    code TEXT PRIMARY KEY, gtin TEXT, description TEXT NOT NULL, supplier_id TEXT NOT NULL,
    unit_price TEXT NOT NULL, vat_rate TEXT NOT NULL, receipt_required INTEGER NOT NULL);
CREATE TABLE cost_centres (code TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE sites (ods TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE purchase_orders (
    id INTEGER PRIMARY KEY, po_number TEXT UNIQUE, requisition_ref TEXT NOT NULL,
    supplier_id TEXT NOT NULL, cost_centre TEXT NOT NULL, delivery_site TEXT NOT NULL, need_by TEXT NOT NULL,
    status TEXT NOT NULL, net_total TEXT NOT NULL, vat_total TEXT NOT NULL, gross_total TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL);
CREATE INDEX po_requisition ON purchase_orders (requisition_ref);
CREATE INDEX po_supplier ON purchase_orders (supplier_id);
CREATE INDEX po_status ON purchase_orders (status);
CREATE TABLE po_lines (
    po_id INTEGER NOT NULL, line_no INTEGER NOT NULL, item_code TEXT NOT NULL, description TEXT NOT NULL,
    quantity TEXT NOT NULL, unit_price TEXT NOT NULL, vat_rate TEXT NOT NULL, net_amount TEXT NOT NULL,
    receipt_required INTEGER NOT NULL, PRIMARY KEY (po_id, line_no)) WITHOUT ROWID;
CREATE TABLE receipts (
    id INTEGER PRIMARY KEY, grn_number TEXT UNIQUE NOT NULL, po_id INTEGER NOT NULL,
    received_date TEXT NOT NULL);
CREATE INDEX receipts_po ON receipts (po_id);
CREATE TABLE receipt_lines (
    receipt_id INTEGER NOT NULL, line_no INTEGER NOT NULL, quantity_received TEXT NOT NULL,
    PRIMARY KEY (receipt_id, line_no)) WITHOUT ROWID;
CREATE TABLE invoices (
    id INTEGER PRIMARY KEY, invoice_number TEXT NOT NULL, document_type TEXT NOT NULL,
    supplier_id TEXT NOT NULL, supplier_vat TEXT NOT NULL, po_number TEXT, issue_date TEXT NOT NULL,
    net_total TEXT NOT NULL, vat_total TEXT NOT NULL, gross_total TEXT NOT NULL, status TEXT NOT NULL,
    billing_reference TEXT, received_at TEXT NOT NULL, scenario TEXT, ubl_gz BLOB NOT NULL);
CREATE INDEX invoices_status ON invoices (status);
CREATE INDEX invoices_supplier ON invoices (supplier_id);
CREATE TABLE invoice_history (
    invoice_id INTEGER NOT NULL, status TEXT NOT NULL, reason_code TEXT, note TEXT, at TEXT NOT NULL,
    by TEXT NOT NULL);
CREATE INDEX invoice_history_invoice ON invoice_history (invoice_id);
CREATE TABLE contracts (
    id INTEGER PRIMARY KEY, contract_id TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
    supplier_name TEXT NOT NULL,
    supplier_vat TEXT, companies_house TEXT, buyer_ods TEXT NOT NULL, cpv_codes TEXT NOT NULL,
    procedure TEXT NOT NULL, value_net TEXT NOT NULL, value_gross TEXT NOT NULL, start_date TEXT NOT NULL,
    end_date TEXT NOT NULL, max_end_date TEXT, kpi_count INTEGER NOT NULL, sme INTEGER NOT NULL,
    filename TEXT NOT NULL, document BLOB NOT NULL, sha256 TEXT NOT NULL, uploaded_at TEXT NOT NULL,
    uploaded_by TEXT NOT NULL, kpis TEXT NOT NULL DEFAULT '[]');
"""


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def contract_row(c: ContractRecord, uploaded_at: str, uploaded_by: str) -> tuple[object, ...]:
    import hashlib

    return (
        c.contract_id,
        c.title,
        c.supplier_name,
        c.supplier_vat,
        c.companies_house,
        c.buyer_ods,
        c.cpv_codes,
        c.procedure,
        str(c.value_net),
        str(c.value_gross),
        c.start_date.isoformat(),
        c.end_date.isoformat(),
        c.max_end_date.isoformat() if c.max_end_date else None,
        c.kpi_count,
        int(c.sme),
        c.filename,
        c.document,
        hashlib.sha256(c.document).hexdigest(),
        uploaded_at,
        uploaded_by,
        json.dumps(list(c.kpis)),
    )


CONTRACT_COLUMNS = (
    "contract_id, title, supplier_name, supplier_vat, companies_house, buyer_ods, cpv_codes, procedure, "
    "value_net, value_gross, start_date, end_date, max_end_date, kpi_count, sme, filename, document, sha256, "
    "uploaded_at, uploaded_by, kpis"
)
"""The columns :func:`contract_row` fills, in its order; ``kpis`` is a JSON list of KPI names."""
CONTRACT_PLACEHOLDERS = ",".join("?" * len(CONTRACT_COLUMNS.split(",")))


def write_database(path: Path, data: Dataset, orders: int) -> None:
    """Create the portal database at ``path`` (a new file) and load the dataset into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a crash mid-seed just means seeding again
        conn.executescript(SCHEMA)
        with conn:
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("seed", str(data.seed)), ("orders", str(orders)), ("schema", "1")],
            )
            b = data.buyer
            conn.execute(
                "INSERT INTO buyer VALUES (?, ?, ?, ?, ?, ?, ?)",
                (b.name, b.vat, b.gln, b.ods, b.street, b.city, b.postcode),
            )
            conn.executemany(
                "INSERT INTO suppliers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        s.supplier_id,
                        s.name,
                        s.vat,
                        s.companies_house,
                        s.street,
                        s.city,
                        s.postcode,
                        s.email,
                        int(s.sme),
                    )
                    for s in data.suppliers
                ],
            )
            conn.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i.code,
                        i.gtin,
                        i.description,
                        i.supplier_id,
                        str(i.unit_price),
                        str(i.vat_rate),
                        int(i.receipt_required),
                    )
                    for i in data.items
                ],
            )
            conn.executemany("INSERT INTO cost_centres VALUES (?, ?)", data.cost_centres)
            conn.executemany("INSERT INTO sites VALUES (?, ?)", data.sites)
            po_rows = []
            line_rows: list[tuple[object, ...]] = []
            for o in data.orders:
                net, vat, gross = o.totals()
                po_rows.append(
                    (
                        o.id,
                        o.po_number,
                        o.requisition_ref,
                        o.supplier_id,
                        o.cost_centre,
                        o.delivery_site,
                        o.need_by.isoformat(),
                        o.status,
                        str(net),
                        str(vat),
                        str(gross),
                        _iso(o.created_at),
                        "seed",
                    )
                )
                line_rows.extend(
                    (
                        o.id,
                        ln.line_no,
                        ln.item_code,
                        ln.description,
                        str(ln.quantity),
                        str(ln.unit_price),
                        str(ln.vat_rate),
                        str(ln.net_amount),
                        int(ln.receipt_required),
                    )
                    for ln in o.lines
                )
            conn.executemany("INSERT INTO purchase_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", po_rows)
            conn.executemany("INSERT INTO po_lines VALUES (?,?,?,?,?,?,?,?,?)", line_rows)
            conn.executemany(
                "INSERT INTO receipts VALUES (?, ?, ?, ?)",
                [(r.id, r.grn_number, r.po_id, r.received_date.isoformat()) for r in data.receipts],
            )
            conn.executemany(
                "INSERT INTO receipt_lines VALUES (?, ?, ?)",
                [(r.id, line_no, str(q)) for r in data.receipts for line_no, q in r.lines],
            )
            inv_rows = []
            history = []
            for inv in data.invoices:
                doc = inv.document
                received = _iso(inv.received_at)
                inv_rows.append(
                    (
                        inv.id,
                        inv.invoice_number,
                        inv.document_type,
                        inv.supplier_id,
                        inv.supplier_vat,
                        inv.po_number,
                        inv.issue_date.isoformat(),
                        str(doc.net_total),
                        str(doc.vat_total),
                        str(doc.gross_total),
                        "received",
                        inv.billing_reference,
                        received,
                        inv.scenario,
                        zlib.compress(render_ubl(doc).encode(), 1),
                    )
                )
                history.append((inv.id, "received", None, "Received through PEPPOL", received, "peppol"))
            conn.executemany("INSERT INTO invoices VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", inv_rows)
            conn.executemany("INSERT INTO invoice_history VALUES (?, ?, ?, ?, ?, ?)", history)
            conn.executemany(
                f"INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ({CONTRACT_PLACEHOLDERS})",
                [contract_row(c, _iso(ANCHOR), "seed") for c in data.contracts],
            )
        conn.execute("PRAGMA synchronous=NORMAL")
    finally:
        conn.close()
