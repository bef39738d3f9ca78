"""The malformed spreadsheet/CSV corpus: each file fails clearly, naming file and place, within limits.

All files are read in one subprocess with an address-space cap and a per-file alarm
(see ``tests/bad_spreadsheet_worker.py``); each parametrised case then checks its file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BAD = Path(__file__).parent / "fixtures" / "bad"
ROOT = Path(__file__).resolve().parents[1]

# file -> (outcome, [substrings that must appear in one error], row, column) ; None = not checked
EXPECTED: dict[str, tuple[str, list[str], int | None, str | None]] = {
    "orders_truncated.xlsx": ("raised", ["damaged or truncated"], None, None),
    "orders_empty.xlsx": ("raised", ["is empty"], None, None),
    "orders_not_a_zip.xlsx": ("raised", ["not an Excel workbook"], None, None),
    "orders_old_binary.xls": ("raised", ["97-2003", ".xls", "save it as .xlsx"], None, None),
    "orders_encrypted.xlsx": ("raised", ["password-protected"], None, None),
    "orders_binary.xlsb": ("raised", [".xlsb"], None, None),
    "orders_zip_bomb.xlsx": ("raised", ["zip bomb", "xl/worksheets/sheet1.xml"], None, None),
    "orders_huge_dimension.xlsx": ("raised", ["A1:XFD1048576", "1,048,576 rows"], None, None),
    "orders_external_links.xlsx": ("raised", ["links to other workbooks", "prices-2019.xlsx"], None, None),
    "orders_wrong_headers.xlsx": ("raised", ["no header row", "missing: line_no"], None, None),
    "orders_text_in_numbers.xlsx": ("errors", ["!Orders row 3", "expected a number"], 3, "quantity"),
    "orders_uncached_formula.xlsx": ("errors", ["formula =G2*2 has no calculated value"], 2, "unit_price"),
    "orders_duplicate_lines.xlsx": ("errors", ["PO-000001", "line numbers repeat"], 2, None),
    "orders_negative_quantities.csv": ("errors", ["row 2", "greater than 0"], 2, "quantity"),
    "orders_formula_injection.csv": ("errors", ["=cmd|", "expected a number"], 2, "unit_price"),
    "orders_cp1252.csv": ("errors", ["'£x'", "expected a number"], 2, "unit_price"),
    "orders_utf16.csv": ("raised", ["UTF-16", "CSV UTF-8"], None, None),
    "orders_empty.csv": ("raised", ["is empty"], None, None),
    "orders_binary_garbage.csv": ("raised", ["NUL bytes"], None, None),
    "receipts_dates_far.csv": ("errors", ["01/01/1900", "outside 1990-2100"], 2, "received_date"),
    "receipts_future.xlsx": ("errors", ["!Receipts row 2", "in the future"], 2, "received_date"),
    "invoices_bad_type.csv": ("errors", ["'debit_memo'", "not invoice or credit_note"], 2, "document_type"),
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    """Every corpus file read once, in a resource-limited subprocess."""
    paths = [str(BAD / name) for name in EXPECTED]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bad_spreadsheet_worker.py"), *paths],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {Path(k).name: v for k, v in json.loads(proc.stdout).items()}


def test_corpus_is_large_enough_and_all_files_are_covered() -> None:
    """At least 15 spreadsheet/CSV files, and every one of them has an expectation."""
    mine = {p.name for p in BAD.iterdir() if p.suffix in (".xlsx", ".xlsm", ".xls", ".xlsb", ".csv")}
    assert len(mine) >= 15
    assert mine == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_fails_clearly(name: str, outcomes: dict[str, Any]) -> None:
    """Each malformed file gives the expected error, naming the file and, for cells, the row and column."""
    outcome, needles, row, column = EXPECTED[name]
    got = outcomes[name]
    assert got["outcome"] == outcome, got
    texts = [e["text"] for e in got["errors"]]
    assert any(name in t for t in texts), texts
    matching = [e for e in got["errors"] if all(n in e["text"] for n in needles)]
    assert matching, texts
    if row is not None:
        assert any(e.get("row") == row for e in matching), matching
    if column is not None:
        assert any(e.get("column") == column for e in matching), matching
