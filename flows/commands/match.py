"""`procbots match`: offline invoice matching of files against an order book.

Reads orders and goods receipts (CSV/XLSX) and invoices and credit notes (PEPPOL UBL
2.1 XML, or CSV/XLSX rows; a folder means every such file in it) as columns through
:mod:`connectors.match_columns`, matches them with :mod:`bots.domain.match_tables` and
prints the decisions as a table or, with ``--json`` (written as it is made), as

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
    stages = _Stages()
    from bots.domain.match_tables import match_tables
    from connectors.match_columns import load_bulk
    from connectors.match_inputs import MatchInputError, load_policy

    stages.done("import")
    try:
        if out is not None and out.suffix.lower() not in {".xlsx", ".xlsm"}:
            raise MatchInputError(f"--out {out}: the report is a workbook; give a .xlsx path")
        policy = load_policy(policy_file)
        inputs = load_bulk(orders, receipts, [*invoices, *(more_invoices or [])])
        stages.done("read")
        result = match_tables(inputs.tables, policy)
        stages.done("match")
        decided, order = result.decided(), result.order()
        stages.done("word")
    except (MatchInputError, ValueError) as exc:
        typer.echo(f"procbots match: {exc}", err=True)
        raise typer.Exit(2) from None

    # Files that cannot be read at all are named, and the rest of the batch is decided.
    for problem in inputs.unreadable:
        typer.echo(f"procbots match: {problem}", err=True)
    summary = _with_conflicts(result.summary(), inputs.conflicts)
    report: Path | None = None
    if out is not None:
        from bots.match_report import write_match_report

        try:
            report = write_match_report(out, _decisions(result, inputs.conflicts))
        except OSError as exc:
            typer.echo(
                f"procbots match: --out {out}: cannot write the report: {exc.strerror or exc}", err=True
            )
            raise typer.Exit(2) from None
        summary["report"] = str(report)
        stages.done("report")
    if as_json:
        _write_json(result, decided, order, inputs.conflicts, summary, inputs.unreadable)
        stages.done("json")
    else:
        _print_table(_decisions(result, inputs.conflicts), summary)
    stages.report()
    if inputs.unreadable or inputs.conflicts or (result.decision != 0).any():
        raise typer.Exit(1)


class _Stages:
    """Stage times on stderr when ``PROCBOTS_MATCH_TIMINGS`` is set (the benchmark reads them)."""

    def __init__(self) -> None:
        import os
        import time

        self.clock = time.perf_counter
        self.enabled = bool(os.environ.get("PROCBOTS_MATCH_TIMINGS"))
        self.last = self.clock()
        self.times: dict[str, float] = {}

    def done(self, stage: str) -> None:
        now = self.clock()
        self.times[stage] = now - self.last
        self.last = now

    def report(self) -> None:
        if self.enabled:
            typer.echo(f"procbots match timings: {json.dumps(self.times)}", err=True)


def _decisions(result: Any, conflicts: list[Decision]) -> list[Decision]:
    """Every decision, in processing order, then the documents held for conflicting rows."""
    return [*result.decisions(), *conflicts]


def _with_conflicts(summary: dict[str, Any], conflicts: list[Decision]) -> dict[str, Any]:
    """The summary with the documents held as ``INPUT_CONFLICT`` counted in."""
    if not conflicts:
        return summary
    from bots.domain.matching import summarise

    extra = summarise(conflicts)
    summary["documents"] += extra["documents"]
    summary["counts"]["hold"] += extra["counts"]["hold"]
    reasons = {r["code"]: r["count"] for r in summary["top_reasons"]}
    for r in extra["top_reasons"]:
        reasons[r["code"]] = reasons.get(r["code"], 0) + r["count"]
    summary["top_reasons"] = [
        {"code": code, "count": n} for code, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]
    ]
    suppliers = {row["supplier_vat"]: row for row in summary["by_supplier"]}
    for row in extra["by_supplier"]:
        found = suppliers.get(row["supplier_vat"])
        if found is None:
            suppliers[row["supplier_vat"]] = row
        else:
            for key in ("documents", "approve", "hold", "reject"):
                found[key] += row[key]
    summary["by_supplier"] = [suppliers[k] for k in sorted(suppliers, key=lambda v: v or "")]
    return summary


_CHUNK = 50_000


def _write_json(
    result: Any,
    decided: dict[int, Decision],
    order: Any,
    conflicts: list[Decision],
    summary: dict[str, Any],
    unreadable: list[str],
) -> None:
    """``{"invoices": [...], "summary": {...}}`` on stdout, written in chunks as it is made.

    A clean approval's object is encoded column-wise (polars, from the tables' columns,
    no ``Decision``); a document with reasons or notes is its ``Decision.to_dict()``
    (orjson). Same keys, same order, as ``Decision.to_dict``.
    """
    import sys

    import numpy as np
    import orjson
    import polars as pl

    out = sys.stdout.buffer
    out.write(b'{"invoices": [\n')
    t = result.tables
    indices = np.asarray(order, dtype=np.int64)
    first = True
    for start in range(0, len(indices), _CHUNK):
        chunk = indices[start : start + _CHUNK]
        encoded = _clean_approvals(result, chunk, pl).to_list()
        for k, i in enumerate(chunk.tolist()):
            decision = decided.get(i)
            if decision is not None:
                encoded[k] = orjson.dumps(decision.to_dict()).decode()
        if encoded:
            out.write(("" if first else ",\n").encode() + ",\n".join(encoded).encode())
            first = False
    for decision in conflicts:
        out.write(b"" if first else b",\n")
        out.write(orjson.dumps(decision.to_dict()))
        first = False
    del t
    out.write(b'\n], "summary": ')
    out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if unreadable:
        out.write(b', "unreadable_files": ')
        out.write(orjson.dumps(unreadable))
    out.write(b"}\n")
    out.flush()


def _clean_approvals(result: Any, chunk: Any, pl: Any) -> Any:
    """The JSON objects of documents ``chunk`` as clean approvals, one string each."""
    t = result.tables
    pennies = result.pennies()[chunk]
    magnitude = pl.Series(abs(pennies))
    gross = (
        pl.when(pl.Series(pennies < 0)).then(pl.lit("-")).otherwise(pl.lit(""))
        + (magnitude // 100).cast(pl.String)
        + "."
        + (magnitude % 100).cast(pl.String).str.zfill(2)
    )
    frame = pl.DataFrame(
        {
            "invoice_number": pl.Series(t.doc_numbers, dtype=pl.String).gather(chunk),
            "supplier_vat": pl.Series(t.vat_numbers, dtype=pl.String).gather(t.doc_vat[chunk]),
            "document_type": pl.Series(t.doc_types, dtype=pl.String).gather(chunk),
            "po_number": pl.Series(t.doc_po_numbers, dtype=pl.String).gather(chunk),
            "issue_date": pl.Series(t.doc_dates, dtype=pl.Date).gather(chunk).cast(pl.String),
            "currency": pl.Series(t.currencies, dtype=pl.String).gather(t.doc_currency[chunk]),
            "source": pl.Series(t.doc_sources, dtype=pl.String).gather(chunk),
        }
    )
    empty = pl.lit([], dtype=pl.List(pl.String))
    return frame.select(
        pl.struct(
            pl.col("invoice_number"),
            pl.col("supplier_vat"),
            pl.col("document_type"),
            pl.lit("approve").alias("decision"),
            empty.alias("reasons"),
            empty.alias("notes"),
            pl.col("po_number"),
            pl.col("issue_date"),
            pl.col("currency"),
            gross.alias("gross_amount"),
            pl.col("source"),
        ).struct.json_encode()
    ).to_series()


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
