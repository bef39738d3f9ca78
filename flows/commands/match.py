"""`procbots match`: offline invoice matching of files against an order book.

Reads orders and goods receipts (CSV/XLSX) and invoices and credit notes (PEPPOL UBL
2.1 XML, or CSV/XLSX rows; a folder means every such file in it), matches them with
:mod:`bots.matching` and prints the decisions as a table or, with ``--json``, as

    {"invoices": [{"invoice_number", "supplier_vat", "decision", "reasons": [...], ...}],
     "summary": {...}}

Exit codes: 0 every document approved, 1 some held or rejected, 2 bad usage or input
(each bad file, row and field named on stderr; nothing is matched then, because a
half-read order book would turn good invoices into PO_NOT_FOUND holds).
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bots.matching import Decision, MatchingPolicy
    from bots.models import GoodsReceipt, Invoice, PurchaseOrder

_INVOICE_SUFFIXES = {".xml", ".csv", ".xlsx", ".xlsm"}
_TABLE_SUFFIXES = {".csv", ".xlsx", ".xlsm"}


class InputError(Exception):
    """Bad input: the message names the file (and row, column or element)."""


def match(
    orders: Annotated[Path, typer.Option("--orders", help="Orders CSV/XLSX (po_number, line_no, ...)")],
    invoices: Annotated[
        list[Path],
        typer.Option("--invoices", help="Invoice files or folders: UBL XML, CSV or XLSX (repeatable)"),
    ],
    more_invoices: Annotated[
        list[Path] | None,
        typer.Argument(help="More invoice files, so `--invoices a.xml b.xml` works", show_default=False),
    ] = None,
    receipts: Annotated[
        Path | None, typer.Option("--receipts", help="Goods receipts CSV/XLSX (needed for 3-way lines)")
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help='TOML of matching tolerances, with [suppliers."GB..."] overrides'),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the report workbook (.xlsx) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Match invoices and credit notes to orders and goods receipts (2/3-way), and say
    why each one is held or rejected. Exit 0 all approved, 1 some held or rejected, 2 bad input."""
    from bots.matching import match_invoices, summarise

    try:
        policy = _policy(policy_file)
        order_book = _load_orders(orders)
        grns = _load_receipts(receipts) if receipts is not None else []
        documents = _load_invoices([*invoices, *(more_invoices or [])])
        decisions = match_invoices(order_book, grns, documents, policy)
        if out is not None and out.suffix.lower() not in {".xlsx", ".xlsm"}:
            raise InputError(f"--out {out}: the report is a workbook; give a .xlsx path")
    except (InputError, ValueError) as exc:
        typer.echo(f"procbots match: {exc}", err=True)
        raise typer.Exit(2) from None

    summary = summarise(decisions)
    report: Path | None = None
    if out is not None:
        from bots.match_report import write_match_report

        try:
            report = write_match_report(out, decisions)
        except OSError as exc:
            typer.echo(
                f"procbots match: --out {out}: cannot write the report: {exc.strerror or exc}", err=True
            )
            raise typer.Exit(2) from None
        summary["report"] = str(report)
    if as_json:
        typer.echo(
            json.dumps(
                {"invoices": [d.to_dict() for d in decisions], "summary": summary},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _print_table(decisions, summary)
    if any(d.decision != "approve" for d in decisions):
        raise typer.Exit(1)


# --- inputs -------------------------------------------------------------------------------


def _policy(path: Path | None) -> MatchingPolicy:
    """The configured policy (settings), with a --policy TOML file layered over it."""
    from pydantic import ValidationError

    from bots.matching import MatchingPolicy
    from config.settings import get_settings

    base = MatchingPolicy.from_settings(get_settings().matching)
    if path is None:
        return base
    if not path.is_file():
        raise InputError(f"--policy {path}: no such file")
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--policy {path}: not valid TOML: {exc}") from None
    # A policy file may be a whole procbots config with a [matching] table.
    if set(data) == {"matching"} and isinstance(data["matching"], dict):
        data = data["matching"]
    merged = base.model_dump()
    suppliers = {**merged.pop("suppliers"), **data.pop("suppliers", {})}
    try:
        return MatchingPolicy.model_validate({**merged, **data, "suppliers": suppliers})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise InputError(f"--policy {path}: {problems}") from None


def _check_file(path: Path, option: str) -> None:
    if not path.exists():
        raise InputError(f"{option} {path}: no such file")
    if not path.is_file():
        raise InputError(f"{option} {path}: not a file")
    if path.suffix.lower() not in _TABLE_SUFFIXES:
        raise InputError(f"{option} {path}: expected a .csv or .xlsx file")


def _row_errors(errors: list[Any]) -> None:
    if errors:
        shown = "\n  ".join(str(e) for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise InputError(f"{len(errors)} problem(s) in the input:\n  {shown}{more}")


def _load_orders(path: Path) -> list[PurchaseOrder]:
    from connectors.formats import load_orders
    from connectors.rows import SpreadsheetError

    _check_file(path, "--orders")
    try:
        orders, errors = load_orders(path)
    except SpreadsheetError as exc:
        raise InputError(str(exc)) from None
    _row_errors(errors)
    missing = [o.requisition_ref for o in orders if not o.po_number]
    if missing:
        raise InputError(
            f"--orders {path}: rows without a po_number (requisition {missing[0]}); raise them first"
        )
    return orders


def _load_receipts(path: Path) -> list[GoodsReceipt]:
    from connectors.formats import load_receipts
    from connectors.rows import SpreadsheetError

    _check_file(path, "--receipts")
    try:
        receipts, errors = load_receipts(path)
    except SpreadsheetError as exc:
        raise InputError(str(exc)) from None
    _row_errors(errors)
    return receipts


def _invoice_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _INVOICE_SUFFIXES)
            if not found:
                raise InputError(f"--invoices {path}: the folder holds no .xml, .csv or .xlsx files")
            files += found
        elif not path.exists():
            raise InputError(f"--invoices {path}: no such file")
        elif path.suffix.lower() not in _INVOICE_SUFFIXES:
            raise InputError(f"--invoices {path}: expected UBL .xml, .csv or .xlsx")
        else:
            files.append(path)
    if not files:
        raise InputError("--invoices: give at least one invoice file or folder")
    return files


def _load_invoices(paths: list[Path]) -> list[Invoice]:
    from bots.models import Invoice
    from connectors.formats import load_invoice_rows
    from connectors.peppol import PeppolError, read_document
    from connectors.rows import SpreadsheetError

    documents: list[Invoice] = []
    errors: list[Any] = []
    for path in _invoice_files(paths):
        if path.suffix.lower() == ".xml":
            try:
                doc = read_document(path, name=str(path))
            except PeppolError as exc:
                errors.append(exc)
                continue
            if not isinstance(doc.model, Invoice):
                errors.append(
                    f"{path}: is a {doc.document_type.replace('_', ' ')}, not an invoice or credit note"
                )
                continue
            documents.append(doc.model)
        else:
            try:
                loaded, row_errors = load_invoice_rows(path)
            except SpreadsheetError as exc:
                errors.append(exc)
                continue
            errors += row_errors
            documents += loaded
    _row_errors(errors)
    return documents


# --- output -------------------------------------------------------------------------------

_STYLE = {"approve": "green", "hold": "yellow", "reject": "red"}


def _print_table(decisions: list[Decision], summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Invoice matching")
    for column, justify in (
        ("Invoice", "left"),
        ("Supplier VAT", "left"),
        ("PO", "left"),
        ("Gross", "right"),
        ("Decision", "left"),
        ("Reason codes", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for d in decisions:
        amount = -d.gross_amount if d.document_type == "credit_note" else d.gross_amount
        label = d.invoice_number + (" (CN)" if d.document_type == "credit_note" else "")
        style = _STYLE[d.decision]
        table.add_row(
            label,
            d.supplier_vat or "-",
            d.po_number or "-",
            f"{amount:,.2f}" + ("" if d.currency == "GBP" else f" {d.currency}"),
            f"[{style}]{d.decision}[/{style}]",
            ", ".join(dict.fromkeys(d.codes)),
        )
    console.print(table)
    exceptions = [d for d in decisions if d.reasons]
    if exceptions:
        console.print("[bold]What to check[/bold]")
    for d in exceptions:
        style = _STYLE[d.decision]
        console.print(
            f"[{style}]{d.decision}[/{style}] {d.invoice_number} ({d.supplier_vat or 'no VAT number'}):"
        )
        for r in d.reasons:
            console.print(f"  {r.code}: {r.message}", highlight=False)
    counts = summary["counts"]
    values = {k: f"£{Decimal(v):,.2f}" for k, v in summary["values"].items()}
    console.print(
        f"{summary['documents']} document(s): "
        f"[green]{counts['approve']} approved[/green] ({values['approve']}), "
        f"[yellow]{counts['hold']} held[/yellow] ({values['hold']}), "
        f"[red]{counts['reject']} rejected[/red] ({values['reject']})",
        highlight=False,
    )
    if "report" in summary:
        console.print(f"Report: {summary['report']}", highlight=False)
