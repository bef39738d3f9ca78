"""A large run's report: summary, exceptions and by-supplier sheets in the workbook, and
the full decision list as a CSV file beside it instead of a sheet of every document."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest

from bots import match_report
from bots.domain.match_tables import match_documents
from tests.matching_builders import invoice, order, receipt


def _decisions() -> list:
    # INV-1 approved, INV-2 over price (held), INV-3 a duplicate of INV-1 (rejected).
    return match_documents(
        [order()],
        [receipt()],
        [
            invoice("INV-1", lines=[("1", "2", "10.00", "20")]),
            invoice("INV-2", lines=[("1", "2", "11.00", "20")]),
            invoice("INV-1", lines=[("1", "2", "10.00", "20")]),
        ],
    )


def test_a_large_run_lists_every_decision_in_a_csv_beside_the_workbook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(match_report, "_SHEET_LIMIT", 2)  # three documents count as large here
    decisions = _decisions()
    out = match_report.write_match_report(tmp_path / "matching.xlsx", decisions)

    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Summary", "Exceptions", "By supplier", "Notes"]
    listing = tmp_path / "matching-decisions.csv"
    assert match_report.decisions_csv_path(out) == listing
    with listing.open(encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header[:3] == ["Decision", "Invoice", "Type"]
    assert [(r[0], r[1]) for r in rows] == [(d.decision, d.invoice_number) for d in decisions]
    assert {r[0] for r in rows} == {"approve", "hold", "reject"}
    figures = {row[0]: row[1] for row in wb["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert figures["All decisions (CSV beside this workbook)"] == "matching-decisions.csv"


def test_a_small_run_keeps_the_all_decisions_sheet_and_writes_no_csv(tmp_path: Path) -> None:
    out = match_report.write_match_report(tmp_path / "matching.xlsx", _decisions())
    assert openpyxl.load_workbook(out).sheetnames[:3] == ["Summary", "Exceptions", "All decisions"]
    assert not (tmp_path / "matching-decisions.csv").exists()
