"""The input rules of bulk matching (issue 15), through `procbots match` on real files:
invoice rows form one document per (type, supplier VAT, number, date); rows of one document
that disagree hold it as INPUT_CONFLICT while the rest is decided; a rebill after a full
credit is approved with a note; bad order or receipt rows still stop the run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_match_cli import INVOICE_HEADER, SUPPLIER_A, by_number, procbots
from tests.test_match_cli import files as files  # the fixture: orders, receipts, invoices


def _match(files: dict[str, Path], *invoices: Path, orders: Path | None = None) -> tuple[int, dict, str]:
    result = procbots(
        "match", "--orders", orders or files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", *invoices, "--json",
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


def test_the_same_number_with_another_date_is_another_document_left_to_the_duplicate_rules(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """INV-7 on 1 May 2025 and INV-7 again on 2 May 2025 (one unit each of PO-100 line 1):
    two documents, the second an exact duplicate in the same financial year; INV-9 billed in
    the financial years 2025/26 and again 2026/27 is two invoices, both approved (a supplier
    that restarts its numbering each year)."""
    path = tmp_path / "dated.csv"
    path.write_text(
        INVOICE_HEADER
        + f"invoice,INV-7,{SUPPLIER_A},01/05/2025,PO-100,1,1,10.00,10.00,20%,2.00,\n"
        + f"invoice,INV-7,{SUPPLIER_A},02/05/2025,PO-100,1,1,10.00,10.00,20%,2.00,\n"
        + f"invoice,INV-9,{SUPPLIER_A},03/05/2025,PO-100,2,1,500.00,500.00,20%,100.00,\n",
        encoding="utf-8",
    )
    code, payload, stderr = _match(files, path)
    assert code == 1, stderr
    got = [(d["invoice_number"], d["issue_date"], d["decision"], [r["code"] for r in d["reasons"]])
           for d in payload["invoices"]]  # fmt: skip
    assert got == [
        ("INV-7", "2025-05-01", "approve", []),
        ("INV-7", "2025-05-02", "reject", ["DUPLICATE_INVOICE"]),
        ("INV-9", "2025-05-03", "approve", []),
    ]
    assert "Duplicate of invoice INV-7 dated 1 May 2025" in payload["invoices"][1]["reasons"][0]["message"]


def test_a_supplier_restarting_its_numbers_next_year_is_not_a_duplicate(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "years.csv"
    path.write_text(
        INVOICE_HEADER
        + f"invoice,INV-1,{SUPPLIER_A},01/05/2025,PO-100,1,1,10.00,10.00,20%,2.00,\n"
        + f"invoice,INV-1,{SUPPLIER_A},01/05/2026,PO-100,1,2,10.00,20.00,20%,4.00,\n",
        encoding="utf-8",
    )
    code, payload, stderr = _match(files, path)
    assert code == 0, stderr
    assert [(d["issue_date"], d["decision"]) for d in payload["invoices"]] == [
        ("2025-05-01", "approve"),
        ("2026-05-01", "approve"),
    ]


def test_rows_of_one_document_that_disagree_hold_it_as_input_conflict_and_the_rest_is_decided(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "conflict.csv"
    path.write_text(
        INVOICE_HEADER
        + f"invoice,INV-C,{SUPPLIER_A},01/05/2025,PO-100,1,1,10.00,10.00,20%,2.00,\n"
        + f"invoice,INV-C,{SUPPLIER_A},01/05/2025,PO-200,2,1,500.00,500.00,20%,100.00,\n"
        + f"invoice,INV-OK,{SUPPLIER_A},02/05/2025,PO-100,2,1,500.00,500.00,20%,100.00,\n",
        encoding="utf-8",
    )
    code, payload, stderr = _match(files, path)
    assert code == 1, stderr
    docs = by_number(payload)
    assert docs["INV-OK"]["decision"] == "approve"
    held = docs["INV-C"]
    assert held["decision"] == "hold"
    assert [r["code"] for r in held["reasons"]] == ["INPUT_CONFLICT"]
    message = held["reasons"][0]["message"]
    assert "rows 2, 3" in message
    assert "row 3 has PO Number 'PO-200', row 2 'PO-100'" in message
    assert payload["summary"]["counts"] == {"approve": 1, "hold": 1, "reject": 0}
    assert {"code": "INPUT_CONFLICT", "count": 1} in payload["summary"]["top_reasons"]


def test_a_rebill_after_a_full_credit_note_is_approved_with_a_note(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """INV-R bills 2 units of PO-100 line 1, CN-R credits them in full, INV-R is billed again:
    the rebill is approved (not a duplicate), with a note naming the credit note."""
    path = tmp_path / "rebill.csv"
    path.write_text(
        INVOICE_HEADER
        + f"invoice,INV-R,{SUPPLIER_A},01/05/2025,PO-100,1,2,10.00,20.00,20%,4.00,\n"
        + f"credit_note,CN-R,{SUPPLIER_A},02/05/2025,PO-100,1,2,10.00,20.00,20%,4.00,INV-R\n"
        + f"invoice,INV-R,{SUPPLIER_A},03/05/2025,PO-100,1,2,10.00,20.00,20%,4.00,\n",
        encoding="utf-8",
    )
    code, payload, stderr = _match(files, path)
    assert code == 0, stderr
    got = [(d["invoice_number"], d["decision"], [n["code"] for n in d["notes"]]) for d in payload["invoices"]]
    assert got == [
        ("INV-R", "approve", []),
        ("CN-R", "approve", []),
        ("INV-R", "approve", ["REBILL_AFTER_CREDIT"]),
    ]
    assert "reversed in full by credit note CN-R" in payload["invoices"][2]["notes"][0]["message"]


def test_a_bad_receipt_row_still_stops_the_run(files: dict[str, Path], tmp_path: Path) -> None:
    receipts = tmp_path / "receipts.csv"
    receipts.write_text(
        "GRN Number,PO Number,Line No,Quantity Received,Received Date\nGRN-1,PO-100,1,ten,28/04/2025\n",
        encoding="utf-8",
    )
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", receipts, "--invoices", files["invoices_a"],
    )  # fmt: skip
    assert result.returncode == 2
    assert "receipts.csv row 2, column 'Quantity Received' ('ten'): expected a number" in result.stderr
    assert result.stdout == ""


def test_order_lines_of_one_po_that_disagree_stop_the_run(files: dict[str, Path], tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "PO Number,Line No,Supplier ID,Supplier VAT,Item Code,Description,Quantity,Unit Price,VAT Rate,"
        "Receipt Required\n"
        f"PO-100,1,SUP-A,{SUPPLIER_A},G,Gloves,10,10.00,20,yes\n"
        "PO-100,2,SUP-X,,S,Service,1,500.00,20,no\n",
        encoding="utf-8",
    )
    code, _payload, stderr = _match(files, files["invoices_a"], orders=orders)
    assert code == 2
    assert (
        "orders.csv row 3, column 'Supplier ID' ('SUP-X'): purchase order PO-100: supplier_id differs"
        in stderr
    )


def test_xlsx_invoice_rows_follow_the_same_rules_with_excel_row_numbers(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """Invoice rows in a workbook (a title row above the header): the conflict names the
    rows as Excel shows them, dates and percent cells read as the row reader reads them."""
    import datetime as dt

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Invoices exported 2025-05-03"])
    ws.append(INVOICE_HEADER.strip().split(","))
    ws.append(
        ["invoice", "INV-X", SUPPLIER_A, dt.date(2025, 5, 1), "PO-100", 1, 1, 10.0, 10.0, 0.2, 2.0, None]
    )
    ws.append(
        ["invoice", "INV-X", SUPPLIER_A, dt.date(2025, 5, 1), "PO-200", 2, 1, 500.0, 500.0, 0.2, 100.0, None]
    )
    # 20% as Excel stores a percent-formatted cell: 0.2 (read as 20, or the line would be held).
    ws.append(
        ["invoice", "INV-Y", SUPPLIER_A, dt.date(2025, 5, 2), "PO-100", 2, 1, 500.0, 500.0, 0.2, 100.0, None]
    )
    path = tmp_path / "invoices.xlsx"
    wb.save(path)

    code, payload, stderr = _match(files, path)
    assert code == 1, stderr
    docs = by_number(payload)
    assert docs["INV-Y"]["decision"] == "approve"
    assert docs["INV-Y"]["issue_date"] == "2025-05-02"
    held = docs["INV-X"]
    assert [r["code"] for r in held["reasons"]] == ["INPUT_CONFLICT"]
    assert "(rows 3, 4)" in held["reasons"][0]["message"]
    assert "row 4 has PO Number 'PO-200', row 3 'PO-100'" in held["reasons"][0]["message"]
