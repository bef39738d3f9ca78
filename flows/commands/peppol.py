"""`procbots peppol` commands: read a PEPPOL BIS 3 document and show what it states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from connectors.peppol import PeppolDocument

app = typer.Typer(help="PEPPOL BIS 3 (UBL 2.1) documents.", no_args_is_help=True)

_TITLES = {
    "invoice": "Invoice",
    "credit_note": "Credit note",
    "order": "Order",
    "despatch_advice": "Despatch advice",
}


@app.command("read")
def read(
    file: Annotated[Path, typer.Argument(help="UBL 2.1 Invoice, CreditNote, Order or DespatchAdvice XML")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stable JSON shape instead of tables")
    ] = False,
) -> None:
    """Read one document: its parties, lines, totals and findings (arithmetic and identifier warnings).

    Exit 2 when the file cannot be read, naming the file and the element.
    """
    from connectors.peppol import PeppolError, read_document, to_json_shape

    if not file.is_file():
        typer.echo(f"procbots peppol read: {file}: no such file", err=True)
        raise typer.Exit(2)
    try:
        doc = read_document(file, name=str(file))
    except PeppolError as exc:
        typer.echo(f"procbots peppol read: {exc}", err=True)
        raise typer.Exit(2) from None
    shape = to_json_shape(doc)
    if as_json:
        typer.echo(json.dumps(shape, indent=2, ensure_ascii=False))
        return
    _print_tables(doc, shape)


def _print_tables(doc: PeppolDocument, shape: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = _TITLES[doc.document_type]
    currency = shape["currency"] or ""
    console.print(f"[bold]{title} {shape['id']}[/bold]  issued {shape['issue_date']}  {currency}")
    for role in ("supplier", "buyer"):
        party = shape[role]
        console.print(
            f"  {role}: {party['name'] or '-'}  VAT {party['vat_number'] or '-'}"
            f"  endpoint {party['endpoint_id'] or '-'}"
        )
    for label, key in (("order reference", "order_reference"), ("billing reference", "billing_reference")):
        if shape[key]:
            console.print(f"  {label}: {shape[key]}")

    lines = Table(title="Lines", show_lines=False)
    for column, justify in (
        ("id", "left"),
        ("item", "left"),
        ("quantity", "right"),
        ("unit", "left"),
        ("price", "right"),
        ("net", "right"),
        ("VAT", "left"),
        ("order line", "left"),
    ):
        lines.add_column(column, justify=justify)  # type: ignore[arg-type]
    for line in shape["lines"]:
        vat = line["vat"]
        lines.add_row(
            line["id"],
            line["item"]["name"] or line["item"]["seller_item_id"] or line["item"]["gtin"] or "",
            line["quantity"],
            line["unit_code"] or "",
            line["price"] or "",
            line["net_amount"] or "",
            f"{vat['category']} {vat['percent']}%"
            if vat["category"] and vat["percent"]
            else vat["category"] or "",
            line["order_line_reference"] or "",
        )
    console.print(lines)

    stated = {k: v for k, v in shape["totals"].items() if v is not None}
    if stated:
        totals = Table(title="Totals")
        totals.add_column("total")
        totals.add_column(currency, justify="right")
        for name, amount in stated.items():
            totals.add_row(name.replace("_", " "), amount)
        console.print(totals)

    if shape["findings"]:
        findings = Table(title="Findings (warnings)")
        findings.add_column("code")
        findings.add_column("message", overflow="fold")
        for finding in shape["findings"]:
            findings.add_row(finding["code"], finding["message"])
        console.print(findings)
    else:
        console.print("No findings: the arithmetic adds up and the identifiers check.")
