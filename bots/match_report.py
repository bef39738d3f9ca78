"""The invoice matching report workbook: what a payables team opens after a run.

Sheets, written through :func:`connectors.excel.write_report`:

* **Summary**: counts and values by decision, top hold reasons and the largest
  suppliers, with native charts.
* **Exceptions**: one row per reason a document was held or rejected (invoice,
  supplier, PO, line, code, message, amount) with empty *Action taken* and *Cleared by*
  columns, so a clerk can work down the list, filter by code and sign rows off.
* **All decisions**: one row per document with its decision, reason codes and notes; above
  20,000 documents a CSV file beside the workbook (``<name>-decisions.csv``) instead.
* **By supplier** and **Notes** (facts that did not change a decision, such as an
  under-priced line or a rounding difference accepted).

The decisions come from :func:`bots.domain.match_tables.match_documents`; this module only lays them out.

Example:
    >>> decisions = match_documents(orders, receipts, invoices)  # doctest: +SKIP
    >>> write_match_report("var/outbox/matching.xlsx", decisions)  # doctest: +SKIP
    PosixPath('var/outbox/matching.xlsx')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from bots.domain.matching import Decision, summarise
from connectors.csvfiles import write_csv
from connectors.excel import ChartSpec, Column, Sheet, Summary, write_report

__all__ = ["decisions_csv_path", "write_match_report"]

# Above this many documents the workbook is streamed (constant memory, plain widths).
_STREAM_FROM = 20_000
# Above this many documents the full decision list is a CSV file beside the workbook
# (``<name>-decisions.csv``) instead of an "All decisions" sheet nobody scrolls.
_SHEET_LIMIT = 20_000
_KINDS = ("approve", "hold", "reject")
_LABELS = {"approve": "Approved", "hold": "Held", "reject": "Rejected"}

_EXCEPTION_COLUMNS = [
    Column("decision", "Decision", width=10),
    Column("invoice_number", "Invoice", width=16),
    Column("document_type", "Type", width=11),
    Column("supplier_vat", "Supplier VAT", width=16),
    Column("issue_date", "Invoice date", "date"),
    Column("po_number", "PO", width=14),
    Column("line_no", "Line", "int", width=6),
    Column("code", "Reason code", width=24),
    Column("message", "What to check", width=90),
    Column("gross_amount", "Gross amount", "money"),
    Column("currency", "Currency", width=8),
    Column("source", "Source file", width=30),
    Column("action", "Action taken", width=30),
    Column("cleared_by", "Cleared by", width=14),
]

_DECISION_COLUMNS = [
    Column("decision", "Decision", width=10),
    Column("invoice_number", "Invoice", width=16),
    Column("document_type", "Type", width=11),
    Column("supplier_vat", "Supplier VAT", width=16),
    Column("issue_date", "Invoice date", "date"),
    Column("po_number", "PO", width=14),
    Column("gross_amount", "Gross amount", "money"),
    Column("currency", "Currency", width=8),
    Column("codes", "Reason codes", width=40),
    Column("notes", "Notes", width=60),
    Column("source", "Source file", width=30),
]

_SUPPLIER_COLUMNS = [
    Column("supplier_vat", "Supplier VAT", width=16),
    Column("documents", "Documents", "int"),
    Column("approve", "Approved", "int"),
    Column("hold", "Held", "int"),
    Column("reject", "Rejected", "int"),
    Column("value", "Value", "money"),
]

_NOTE_COLUMNS = [
    Column("invoice_number", "Invoice", width=16),
    Column("supplier_vat", "Supplier VAT", width=16),
    Column("po_number", "PO", width=14),
    Column("line_no", "Line", "int", width=6),
    Column("code", "Note", width=24),
    Column("message", "Detail", width=90),
]


def _document(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.decision,
        "invoice_number": decision.invoice_number,
        "document_type": decision.document_type.replace("_", " "),
        "supplier_vat": decision.supplier_vat or "",
        "issue_date": decision.issue_date,
        "po_number": decision.po_number or "",
        # Credit notes reduce what is owed: shown negative so columns add up.
        "gross_amount": -decision.gross_amount
        if decision.document_type == "credit_note"
        else decision.gross_amount,
        "currency": decision.currency,
        "source": decision.source or "",
    }


def _exception_rows(decisions: Sequence[Decision]) -> Iterator[dict[str, Any]]:
    for decision in decisions:
        if not decision.reasons:
            continue
        base = _document(decision)
        for reason in decision.reasons:
            yield {**base, "line_no": reason.line_no, "code": reason.code, "message": reason.message}


def _decision_rows(decisions: Sequence[Decision]) -> Iterator[dict[str, Any]]:
    for decision in decisions:
        yield {
            **_document(decision),
            "codes": ", ".join(dict.fromkeys(decision.codes)),
            "notes": "; ".join(note.message for note in decision.notes),
        }


def _note_rows(decisions: Sequence[Decision]) -> Iterator[dict[str, Any]]:
    for decision in decisions:
        for note in decision.notes:
            yield {
                "invoice_number": decision.invoice_number,
                "supplier_vat": decision.supplier_vat or "",
                "po_number": decision.po_number or "",
                "line_no": note.line_no,
                "code": note.code,
                "message": note.message,
            }


def _summary(decisions: Sequence[Decision], totals: dict[str, Any], title: str) -> Summary:
    counts: dict[str, int] = totals["counts"]
    values = {kind: Decimal(totals["values"][kind]) for kind in _KINDS}
    figures: list[tuple[str, Any]] = [
        ("Documents matched", len(decisions)),
        ("Generated (UK time)", dt.datetime.now(dt.UTC).replace(microsecond=0)),
    ]
    for kind in _KINDS:
        figures.append((f"{_LABELS[kind]}: documents", counts[kind]))
        figures.append((f"{_LABELS[kind]}: value", values[kind]))
    hold_reasons = [r for r in totals["top_reasons"] if r["code"] != "DUPLICATE_INVOICE"]
    for reason in hold_reasons[:5]:
        figures.append((f"Held for {reason['code']}", reason["count"]))
    charts = [
        ChartSpec(
            "Documents by decision",
            [_LABELS[k] for k in _KINDS],
            {"Documents": [counts[k] for k in _KINDS]},
            "pie",
        ),
        ChartSpec(
            "Value by decision (£)", [_LABELS[k] for k in _KINDS], {"Value": [values[k] for k in _KINDS]}
        ),
    ]
    if totals["top_reasons"]:
        charts.append(
            ChartSpec(
                "Top exception reasons",
                [r["code"] for r in totals["top_reasons"]],
                {"Reasons": [r["count"] for r in totals["top_reasons"]]},
            )
        )
    suppliers = sorted(totals["by_supplier"], key=lambda s: (-s["documents"], s["supplier_vat"] or ""))[:10]
    if suppliers:
        charts.append(
            ChartSpec(
                "Documents by supplier (top 10)",
                [s["supplier_vat"] or "(no VAT number)" for s in suppliers],
                {_LABELS[k]: [s[k] for s in suppliers] for k in _KINDS},
            )
        )
    return Summary(title, figures, charts)


def write_match_report(
    path: str | Path, decisions: Sequence[Decision], *, title: str = "Invoice matching"
) -> Path:
    """Write the matching report workbook for ``decisions``; returns its path.

    Example:
        >>> write_match_report("matching.xlsx", decisions)  # doctest: +SKIP
        PosixPath('matching.xlsx')
    """
    totals = summarise(decisions)
    by_supplier = [
        {**row, "supplier_vat": row["supplier_vat"] or "", "value": Decimal(row["value"])}
        for row in totals["by_supplier"]
    ]
    sheets = [
        Sheet(
            "Exceptions", _EXCEPTION_COLUMNS, _exception_rows(decisions), highlight=("decision", {"reject"})
        ),
        Sheet("By supplier", _SUPPLIER_COLUMNS, by_supplier),
        Sheet("Notes", _NOTE_COLUMNS, _note_rows(decisions)),
    ]
    summary = _summary(decisions, totals, title)
    if len(decisions) > _SHEET_LIMIT:
        listing = decisions_csv_path(path)
        write_csv(
            listing,
            [c.header for c in _DECISION_COLUMNS],
            ([row.get(c.key) for c in _DECISION_COLUMNS] for row in _decision_rows(decisions)),
        )
        figures = [*summary.figures, ("All decisions (CSV beside this workbook)", listing.name)]
        summary = replace(summary, figures=figures)
    else:
        sheets.insert(
            1,
            Sheet(
                "All decisions",
                _DECISION_COLUMNS,
                _decision_rows(decisions),
                highlight=("decision", {"hold", "reject"}),
            ),
        )
    return write_report(path, sheets, summary=summary, write_only=len(decisions) > _STREAM_FROM)


def decisions_csv_path(report: str | Path) -> Path:
    """Where a large run's full decision list goes: ``<report name>-decisions.csv`` beside it."""
    report = Path(report)
    return report.with_name(f"{report.stem}-decisions.csv")
