"""`procbots match`: offline invoice matching of files against an order book.

Reads orders and goods receipts (CSV/XLSX) and invoices and credit notes (PEPPOL UBL
2.1 XML, or CSV/XLSX rows; a folder means every such file in it) through
:mod:`connectors.match_inputs`, matches them with :mod:`bots.domain.matching` and prints the
decisions as a table or, with ``--json``, as

    {"invoices": [{"invoice_number", "supplier_vat", "decision", "reasons": [...], ...}],
     "summary": {...}}

Exit codes: 0 every document approved, 1 some held or rejected, or an invoice file that
cannot be read at all (named on stderr and in ``unreadable_files``; the other files are
decided), 2 bad usage or input (each bad file, row and field named on stderr; nothing is
matched then, because a half-read order book would turn good invoices into PO_NOT_FOUND
holds).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bots.domain.matching import Decision


def __getattr__(name: str) -> Any:
    # ``InputError`` is the old name of :class:`connectors.match_inputs.MatchInputError`
    # (``flows.commands.run`` uses it); resolved on use so that loading the CLI does not
    # import the input readers.
    if name == "InputError":
        from connectors.match_inputs import MatchInputError

        return MatchInputError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    why each one is held or rejected. Exit 0 all approved, 1 some held or rejected (or an
    invoice file unreadable; the others are decided), 2 bad input."""
    from bots.domain.match_tables import match_documents
    from bots.domain.matching import summarise
    from connectors.match_inputs import (
        MatchInputError,
        load_orders,
        load_policy,
        load_receipts,
        read_invoice_files,
    )

    try:
        policy = load_policy(policy_file)
        order_book = load_orders(orders)
        grns = load_receipts(receipts) if receipts is not None else []
        files = read_invoice_files([*invoices, *(more_invoices or [])])
        decisions = match_documents(order_book, grns, files.decidable(), policy)
        if out is not None and out.suffix.lower() not in {".xlsx", ".xlsm"}:
            raise MatchInputError(f"--out {out}: the report is a workbook; give a .xlsx path")
    except (MatchInputError, ValueError) as exc:
        typer.echo(f"procbots match: {exc}", err=True)
        raise typer.Exit(2) from None

    # Files that cannot be read at all are named, and the rest of the batch is decided.
    for problem in files.unreadable:
        typer.echo(f"procbots match: {problem}", err=True)
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
        payload: dict[str, Any] = {"invoices": [d.to_dict() for d in decisions], "summary": summary}
        if files.unreadable:
            payload["unreadable_files"] = files.unreadable
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _print_table(decisions, summary)
    if files.unreadable or any(d.decision != "approve" for d in decisions):
        raise typer.Exit(1)


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
