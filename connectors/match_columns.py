"""Bulk matching inputs as columns: orders, receipts and invoices straight into
:class:`~bots.domain.match_tables.MatchTables`, without a model per row.

``procbots match`` and the invoice-matching flow's file mode read their files here. CSV and
XLSX are read and validated column-wise (:mod:`connectors.columns`); PEPPOL UBL XML
documents are read by :mod:`connectors.peppol` as models (a few per file) and joined to the
columns. Models are built only for the documents the sequential matching rules look at
(credit notes, duplicates, shared purchase orders): :class:`_Models` makes them from the
validated rows.

The input rules (docs/matching.md):

- Orders and receipts: any bad row stops the run (:class:`MatchInputError` naming every
  file, row, column, value and rule, the first 50): a half-read order book would hold good
  invoices as ``PO_NOT_FOUND``.
- Invoice rows form one document per (document type, supplier VAT, invoice number,
  invoice date); the same number with another date is another document, left to the
  duplicate rules. A document whose rows disagree in a header field (PO number, billing
  reference, currency, supplier name) is held as ``INPUT_CONFLICT``, naming the rows; the
  rest of the batch is decided. A bad invoice row stops the run, as for orders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl

from connectors.columns import SCALE, TypedTable, read_typed
from connectors.match_inputs import MatchInputError, _invoice_files, _raise_problems, read_table_file

if TYPE_CHECKING:
    from bots.domain.match_tables import MatchTables
    from bots.domain.matching import Decision
    from bots.domain.models import Invoice, PurchaseOrder, ReceiptLine

__all__ = ["BulkInputs", "load_bulk"]

_UNIT = 2**31
"""Quantities and prices below this (in 1/10,000) multiply without leaving int64."""


@dataclass(slots=True)
class BulkInputs:
    """What :func:`load_bulk` read: the tables to match, and the documents held before
    matching because their rows disagree (``INPUT_CONFLICT``), in file order."""

    tables: MatchTables
    conflicts: list[Decision] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """One message per invoice file that could not be read at all, naming it and why
    (the other files are decided)."""


def load_bulk(orders: Path, receipts: Path | None, invoices: Iterable[Path]) -> BulkInputs:
    """Read the three inputs of bulk matching into columns (see the module docstring).

    Raises:
        MatchInputError: a file missing or unreadable, or bad rows (every one named).
    """
    from bots.domain.match_tables import MatchTables

    order_table = _table(orders, "--orders", _order_schema(), _order_rules)
    receipt_table = _table(receipts, "--receipts", _receipt_schema(), _receipt_rules) if receipts else None
    row_tables: list[TypedTable] = []
    xml_models: list[Invoice] = []
    unreadable: list[str] = []
    for path in _invoice_files(invoices):
        if path.suffix.lower() == ".xml":
            found = _xml_invoice(path)
            if isinstance(found, str | Exception):
                unreadable.append(str(found))
            else:
                xml_models.append(found)
        else:
            try:
                row_tables.append(_table(path, "--invoices", _invoice_schema(), _invoice_rules))
            except MatchInputError as exc:
                unreadable.append(str(exc))
    errors: list[Any] = []
    _raise_problems(order_table.errors)
    orders_part = _orders(order_table)
    _raise_problems(orders_part.pop("errors"))
    if receipt_table is not None:
        _raise_problems(receipt_table.errors)
    for table in row_tables:
        errors += table.errors
    # Bad rows stop the run (a half-read file is not decided), as does a batch with no
    # readable invoice file; an unreadable file alone is named and left out.
    if errors or not (row_tables or xml_models):
        _raise_problems([*unreadable, *errors])
    receipts_part = _receipts(receipt_table, orders_part["po_numbers"])
    documents, lines, models, conflicts, line_rows = _documents(row_tables, xml_models)
    source = _Models(order_table, receipt_table, row_tables, line_rows, models)
    tables = MatchTables.from_arrays(orders_part, receipts_part, documents, lines, source)
    return BulkInputs(tables, conflicts, unreadable)


def _table(path: Path, option: str, schema: Any, rules: Any) -> TypedTable:
    return read_table_file(path, option, lambda checked: read_typed(checked, schema, rules=rules))


def _xml_invoice(path: Path) -> Invoice | str | Exception:
    from bots.domain.models import Invoice
    from connectors.peppol import PeppolError, read_document

    try:
        doc = read_document(path, name=str(path))
    except PeppolError as exc:
        return exc
    if not isinstance(doc.model, Invoice):
        return f"{path}: is a {doc.document_type.replace('_', ' ')}, not an invoice or credit note"
    return doc.model


# --- schemas and the row models' rules, column-wise ----------------------------------------------


def _order_schema() -> Any:
    from connectors.formats import OrderRow
    from connectors.rows import RowSchema

    return RowSchema(OrderRow, required=("line_no", "supplier_id", "quantity", "unit_price"))


def _receipt_schema() -> Any:
    from connectors.formats import ReceiptRow
    from connectors.rows import RowSchema

    return RowSchema(ReceiptRow)


def _invoice_schema() -> Any:
    from connectors.formats import InvoiceRow
    from connectors.rows import RowSchema

    return RowSchema(InvoiceRow)


def _checked_vat_numbers(values: Sequence[str]) -> dict[str, str]:
    """Valid UK VAT numbers among ``values`` -> their normalised form (each checked once)."""
    from connectors.formats import _checked_vat

    found = {}
    for value in values:
        valid, normalised, _ = _checked_vat(value)
        if valid:
            found[value] = normalised
    return found


def _order_rules(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr]:
    # OrderRow: line_no >= 1, quantity > 0, unit_price >= 0, a UK VAT rate, a valid
    # VAT number (normalised), a po_number or a requisition_ref.
    vat = frame["supplier_vat"].drop_nulls().unique().to_list() if "supplier_vat" in frame.columns else []
    valid = _checked_vat_numbers(vat)
    if valid:
        frame = frame.with_columns(
            pl.col("supplier_vat")
            .replace_strict(valid, default=pl.col("supplier_vat"))
            .alias("supplier_vat"),
            __vat_ok=pl.col("supplier_vat").is_null() | pl.col("supplier_vat").is_in(list(valid)),
        )
    else:
        frame = frame.with_columns(__vat_ok=pl.col("supplier_vat").is_null())
    ok = (
        (pl.col("line_no") >= 1)
        & (pl.col("quantity") > 0)
        & (pl.col("unit_price") >= 0)
        & pl.col("vat_rate").is_in([20 * SCALE, 5 * SCALE, 0])
        & (pl.col("po_number").is_not_null() | pl.col("requisition_ref").is_not_null())
        & pl.col("__vat_ok")
    )
    return frame, ok


def _receipt_rules(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr]:
    from connectors.formats import _LONDON

    latest = dt.datetime.now(_LONDON).date() + dt.timedelta(days=1)
    ok = (pl.col("line_no") >= 1) & (pl.col("quantity_received") >= 0) & (pl.col("received_date") <= latest)
    return frame, ok


_TYPE_SPELLINGS = {
    "invoice": "invoice",
    "inv": "invoice",
    "380": "invoice",
    "credit_note": "credit_note",
    "creditnote": "credit_note",
    "credit note": "credit_note",
    "credit-note": "credit_note",
    "credit": "credit_note",
    "crn": "credit_note",
    "cn": "credit_note",
    "381": "credit_note",
}


def _invoice_rules(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr]:
    # InvoiceRow: document type by its spellings; VAT number without spaces, upper case;
    # currency three letters, upper case; line_no >= 1; unit_price >= 0; VAT rate 0-100;
    # credit notes stated positive. Anything not plain ASCII is left to the row model.
    kind = pl.col("document_type").str.to_lowercase()
    frame = frame.with_columns(
        __type_ok=kind.is_in(list(_TYPE_SPELLINGS)),
        document_type=kind.replace_strict(_TYPE_SPELLINGS, default=None),
        __vat_ok=pl.col("supplier_vat").str.contains(r"^[\x20-\x7e]*$"),
        supplier_vat=pl.col("supplier_vat").str.replace_all(" ", "").str.to_uppercase(),
        __currency_ok=pl.col("currency").str.contains(r"^[A-Za-z]{3}$"),
        currency=pl.col("currency").str.to_uppercase(),
    )
    credit = pl.col("document_type") == "credit_note"
    ok = (
        pl.col("__type_ok")
        & pl.col("__vat_ok")
        & pl.col("__currency_ok")
        & (pl.col("line_no").is_null() | (pl.col("line_no") >= 1))
        & (pl.col("unit_price") >= 0)
        & pl.col("vat_rate").is_between(0, 100 * SCALE)
        & (
            ~credit
            | ((pl.col("quantity") >= 0) & (pl.col("net_amount").is_null() | (pl.col("net_amount") >= 0)))
        )
    )
    return frame, ok


# --- orders and receipts ----------------------------------------------------------------------------


def _orders(table: TypedTable) -> dict[str, Any]:
    """The order columns of :meth:`MatchTables.from_arrays`; problems (lines of one PO
    that disagree or repeat a line number) in ``"errors"``.

    Raises:
        MatchInputError: rows without a PO number (requisitions not raised as orders yet).
    """
    from connectors.formats import _ORDER_HEADER_FIELDS

    frame = table.frame
    errors: list[Any] = []
    missing = frame.filter(pl.col("po_number").is_null())
    if missing.height:
        raise MatchInputError(
            f"--orders {table.path}: rows without a po_number "
            f"(requisition {missing['requisition_ref'][0]}); raise them first"
        )
    # A PO's lines are usually together: then a PO is a run of rows; else sort by PO.
    change = pl.col("po_number").ne_missing(pl.col("po_number").shift(1))
    frame = frame.with_columns(__po=(change.cum_sum() - 1).cast(pl.Int64))
    if frame.height and int(frame["__po"][-1]) + 1 != frame["po_number"].n_unique():
        frame = frame.with_columns(__po=pl.col("po_number").rank("dense").cast(pl.Int64) - 1).sort(
            ["__po", "__row"]
        )
    headers = [f for f in _ORDER_HEADER_FIELDS if f in frame.columns]
    per_po = frame.group_by("__po", maintain_order=True).agg(
        pl.col("po_number").first(),
        pl.col("supplier_vat").first(),
        *[pl.col(f).n_unique().alias(f"__n_{f}") for f in headers],
        __lines=pl.len(),
        __distinct=pl.col("line_no").n_unique(),
    )
    odd = per_po.filter(
        pl.any_horizontal(
            [pl.col(f"__n_{f}") > 1 for f in headers] + [pl.col("__lines") != pl.col("__distinct")]
        )
    )
    if odd.height:
        errors += _order_problems(table, frame.filter(pl.col("__po").is_in(odd["__po"].implode())))
    columns = {
        "po": frame["__po"].to_numpy(),
        "po_numbers": per_po["po_number"].to_list(),
        "po_vat": per_po["supplier_vat"].to_list(),
        "po_currency": ["GBP"] * per_po.height,
        "line_no": frame["line_no"].to_numpy(),
        "quantity": frame["quantity"].to_numpy(),
        "unit_price": frame["unit_price"].to_numpy(),
        "vat_rate": frame["vat_rate"].to_numpy(),
        "receipt_required": frame["receipt_required"].to_numpy(),
        "bad": frame["__inexact"].to_numpy(),
        "errors": errors,
    }
    table.frame = frame
    return columns


def _order_problems(table: TypedTable, rows: pl.DataFrame) -> list[Any]:
    """The row readers' errors for purchase orders whose lines disagree or repeat."""
    from pydantic import ValidationError

    from bots.domain.models import PurchaseOrder
    from connectors.formats import _ORDER_HEADER_FIELDS, _validation_message

    errors = []
    for (_code,), group in rows.group_by(["__po"], maintain_order=True):
        records = group.to_dicts()
        first = records[0]
        what = f"purchase order {first['po_number']}"
        found = False
        for name in _ORDER_HEADER_FIELDS:
            if name not in group.columns:
                continue
            for record in records[1:]:
                if record[name] != first[name]:
                    found = True
                    errors.append(
                        table.error_at(
                            record["__row"],
                            f"{what}: {name} differs from row {first['__row']} ({first[name]!r})",
                            table.columns.get(name, name),
                            record[name],
                        )
                    )
        if found:
            continue
        try:
            PurchaseOrder.model_validate(
                {
                    "po_number": first["po_number"],
                    "supplier_id": first["supplier_id"],
                    "lines": [
                        {"line_no": r["line_no"], "quantity": 1, "unit_price": 0, "vat_rate": 20}
                        for r in records
                    ],
                }
            )
        except ValidationError as exc:
            errors.append(table.error_at(first["__row"], f"{what}: {_validation_message(exc)}"))
    return errors


def _receipts(table: TypedTable | None, po_numbers: list[str]) -> dict[str, Any]:
    if table is None or not table.frame.height:
        empty = np.zeros(0, dtype=np.int64)
        return {"po": empty, "line_no": empty, "quantity": empty, "bad": np.zeros(0, dtype=np.bool_)}
    codes = pl.DataFrame({"po_number": po_numbers, "__po": pl.int_range(0, len(po_numbers), eager=True)})
    frame = table.frame.join(codes, on="po_number", how="left", maintain_order="left")
    return {
        "po": frame["__po"].fill_null(-1).cast(pl.Int64).to_numpy(),
        "line_no": frame["line_no"].to_numpy(),
        "quantity": frame["quantity_received"].to_numpy(),
        "bad": frame["__inexact"].to_numpy(),
    }


# --- invoices -------------------------------------------------------------------------------------

_KEY = ["document_type", "supplier_vat", "invoice_number", "invoice_date"]
_HEADER = ["po_number", "billing_reference", "currency", "supplier_name"]


def _documents(
    tables: list[TypedTable], xml: list[Invoice]
) -> tuple[dict[str, Any], dict[str, Any], dict[int, Any], list[Decision], pl.DataFrame]:
    """Document and line columns of every invoice file, the UBL documents' models by
    index, the documents held for rows that disagree, and each line's document, file and
    row (to build a document's model from its rows)."""
    doc_parts: list[pl.DataFrame] = []
    line_parts: list[pl.DataFrame] = []
    conflicts: list[Decision] = []
    models: dict[int, Any] = {}
    offset = 0
    for number, table in enumerate(tables):
        frame = table.frame
        for name in _HEADER:
            if name not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))
        frame = _number_documents(frame)
        # A header value that differs from its document's first row: the document is held.
        start = pl.col("__key").ne_missing(pl.col("__key").shift(1))
        differs = pl.any_horizontal(
            [
                pl.col(h).fill_null("\x00") != pl.when(start).then(pl.col(h).fill_null("\x00")).forward_fill()
                for h in _HEADER
            ]
        )
        clashing_keys = frame.filter(differs)["__key"].unique()
        if len(clashing_keys):
            clashing = frame.filter(pl.col("__key").is_in(clashing_keys.implode()))
            clashing_groups = clashing.group_by("__key", maintain_order=True).agg(
                *[pl.col(k).first() for k in _KEY], __rows=pl.col("__row")
            )
            conflicts += _conflicts(table, clashing, clashing_groups)
            frame = frame.filter(~pl.col("__key").is_in(clashing_keys.implode()))
            frame = frame.with_columns(__key=(start.cum_sum() - 1).cast(pl.Int64))
        frame = frame.with_columns(__doc=pl.col("__key") + offset)
        groups = frame.filter(start.fill_null(True)).select(*_KEY, *_HEADER, "__doc")
        lines = frame
        lines = _line_amounts(lines).with_columns(__table=pl.lit(number))
        totals = _totals(lines)
        docs = groups.join(totals, on="__doc", how="left", maintain_order="left")
        docs = docs.with_columns(__source=pl.lit(str(table.path)))
        doc_parts.append(docs)
        line_parts.append(lines)
        offset += groups.height
    documents = _document_columns(doc_parts)
    lines_out = _line_columns(line_parts)
    line_rows = (
        pl.concat([p.select("__doc", "__table", "__row") for p in line_parts])
        if line_parts
        else pl.DataFrame(schema={"__doc": pl.Int64, "__table": pl.Int32, "__row": pl.Int64})
    )
    if xml:
        _append_models(documents, lines_out, xml, offset, models)
    return documents, lines_out, models, conflicts, line_rows


def _number_documents(frame: pl.DataFrame) -> pl.DataFrame:
    """``__key``: each row's document (type, supplier VAT, number, date), numbered in the
    order documents first appear, rows of a document together and in file order.

    Exports write a document's rows together: then a document is a run of rows, found
    in one pass. Otherwise the documents are numbered by first appearance and the rows
    sorted by document.
    """
    if not frame.height:
        return frame.with_columns(__key=pl.lit(0, dtype=pl.Int64))
    change = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in _KEY])
    frame = frame.with_columns(__key=(change.cum_sum() - 1).cast(pl.Int64))
    runs = int(frame["__key"][-1]) + 1
    if runs == frame.select(pl.struct(_KEY).n_unique()).item():
        return frame
    ids = frame.select(_KEY).unique(maintain_order=True).with_row_index("__first_seen")
    frame = frame.drop("__key").join(ids, on=_KEY, how="left", maintain_order="left", nulls_equal=True)
    return (
        frame.with_columns(__key=pl.col("__first_seen").cast(pl.Int64))
        .drop("__first_seen")
        .sort("__key", "__row")
    )


def _line_amounts(lines: pl.DataFrame) -> pl.DataFrame:
    """Each line's net (stated, else quantity × price rounded half up to the penny), its
    VAT category (stated, else Z for 0% and S), the PO line it quotes and its label."""
    product_fits = (pl.col("quantity").abs() < _UNIT) & (pl.col("unit_price").abs() < _UNIT)
    product = pl.col("quantity") * pl.col("unit_price")  # 1/10^8
    pennies = (product.abs() + 500_000) // 1_000_000
    computed = pl.when(product < 0).then(-pennies).otherwise(pennies) * 100
    return lines.with_columns(
        __net=pl.when(pl.col("net_amount").is_not_null()).then(pl.col("net_amount")).otherwise(computed),
        __bad=pl.col("__inexact") | (pl.col("net_amount").is_null() & ~product_fits),
        __category=pl.when(pl.col("vat_category").is_not_null())
        .then(pl.col("vat_category").str.to_uppercase())
        .otherwise(pl.when(pl.col("vat_rate") == 0).then(pl.lit("Z")).otherwise(pl.lit("S"))),
        # Position in the document (its rows are consecutive): row index - first row index + 1.
        __label=pl.int_range(pl.len(), dtype=pl.Int64)
        - pl.when(pl.col("__doc").ne_missing(pl.col("__doc").shift(1)))
        .then(pl.int_range(pl.len(), dtype=pl.Int64))
        .forward_fill()
        + 1,
    )


def _totals(lines: pl.DataFrame) -> pl.DataFrame:
    """Per document: net, VAT (stated per line when every line states it, else per rate
    group rounded half up to the penny) and whether any of it is beyond the columns."""
    groups = lines.group_by("__doc", "vat_rate").agg(__group_net=pl.col("__net").sum())
    raw = pl.col("__group_net") * pl.col("vat_rate")  # 1/10^8 of a pound × per cent
    pennies = (raw.abs() + 50_000_000) // 100_000_000
    group_vat = groups.with_columns(
        __group_vat=pl.when(raw < 0).then(-pennies).otherwise(pennies) * 100,
        __group_big=pl.col("__group_net").abs() >= 2**42,
    )
    per_rate = group_vat.group_by("__doc").agg(
        __rate_vat=pl.col("__group_vat").sum(), __big=pl.col("__group_big").any()
    )
    stated = lines.group_by("__doc").agg(
        __net_total=pl.col("__net").sum(),
        __stated_vat=pl.col("vat_amount").sum(),
        __all_stated=pl.col("vat_amount").is_not_null().all(),
        __doc_bad=pl.col("__bad").any(),
    )
    joined = stated.join(per_rate, on="__doc", how="left")
    return joined.select(
        "__doc",
        __net_total=pl.col("__net_total"),
        __tax=pl.when(pl.col("__all_stated")).then(pl.col("__stated_vat")).otherwise(pl.col("__rate_vat")),
        __doc_bad=pl.col("__doc_bad") | pl.col("__big"),
    )


def _document_columns(parts: list[pl.DataFrame]) -> dict[str, Any]:
    docs = (
        pl.concat(parts, how="diagonal_relaxed")
        if parts
        else pl.DataFrame(
            schema={
                **dict.fromkeys(
                    ["document_type", "supplier_vat", "invoice_number", *_HEADER, "__source"], pl.String
                ),
                "invoice_date": pl.Date,
                "__net_total": pl.Int64,
                "__tax": pl.Int64,
                "__doc_bad": pl.Boolean,
            }
        )
    )
    net = docs["__net_total"].fill_null(0).to_numpy()
    tax = docs["__tax"].fill_null(0).to_numpy()
    zero = np.zeros(len(net), dtype=np.int64)
    ordinal = docs["invoice_date"].cast(pl.Int32).cast(pl.Int64).to_numpy() + dt.date(1970, 1, 1).toordinal()
    return {
        "invoice_number": docs["invoice_number"].to_list(),
        "document_type": docs["document_type"].to_list(),
        "issue_date": docs["invoice_date"].to_list(),
        "issue_ordinal": ordinal,
        "supplier_vat": docs["supplier_vat"].to_list(),
        "po_number": docs["po_number"].to_list(),
        "currency": docs["currency"].to_list(),
        "billing_reference": docs["billing_reference"].to_list(),
        "source": docs["__source"].to_list(),
        "line_extension": net,
        "tax_exclusive": net,
        "tax": tax,
        "tax_inclusive": net + tax,
        "payable": net + tax,
        "allowances": zero,
        "charges": zero,
        "bad": docs["__doc_bad"].fill_null(False).to_numpy(),
    }


def _line_columns(parts: list[pl.DataFrame]) -> dict[str, Any]:
    if parts:
        lines = pl.concat(
            [
                p.select(
                    "__doc",
                    "line_no",
                    "__label",
                    "quantity",
                    "unit_price",
                    "__net",
                    "vat_rate",
                    "__category",
                    "__bad",
                )
                for p in parts
            ]
        )
    else:
        lines = pl.DataFrame(
            schema={
                "__doc": pl.Int64,
                "line_no": pl.Int64,
                "__label": pl.Int64,
                "quantity": pl.Int64,
                "unit_price": pl.Int64,
                "__net": pl.Int64,
                "vat_rate": pl.Int64,
                "__category": pl.String,
                "__bad": pl.Boolean,
            }
        )
    categories = lines["__category"].unique(maintain_order=True)
    book = {c: i for i, c in enumerate(categories.to_list())}
    return {
        "document": lines["__doc"].to_numpy(),
        "line": lines["line_no"].fill_null(-1).to_numpy(),
        "label": lines["__label"].cast(pl.Int64).to_numpy(),
        "quantity": lines["quantity"].to_numpy(),
        "unit_price": lines["unit_price"].to_numpy(),
        "net_amount": lines["__net"].fill_null(0).to_numpy(),
        "vat_rate": lines["vat_rate"].to_numpy(),
        "category": lines["__category"].replace_strict(book, return_dtype=pl.Int64).to_numpy()
        if lines.height
        else np.zeros(0, dtype=np.int64),
        "categories": list(book),
        "bad": lines["__bad"].to_numpy(),
    }


def _append_models(
    documents: dict[str, Any], lines: dict[str, Any], xml: list[Invoice], offset: int, models: dict[int, Any]
) -> None:
    """Add UBL documents (models) to the columns."""
    from bots.domain.match_tables import MatchTables

    part = MatchTables.from_models([], [], xml)
    for k, model in enumerate(xml):
        models[offset + k] = model
    totals = {
        name: _scaled_list([getattr(m.totals, name) for m in xml])
        for name in (
            "line_extension",
            "tax_exclusive",
            "tax",
            "tax_inclusive",
            "payable",
            "allowances",
            "charges",
        )
    }
    extra_docs: dict[str, Any] = {
        "invoice_number": [m.invoice_number for m in xml],
        "document_type": [m.document_type for m in xml],
        "issue_date": [m.issue_date for m in xml],
        "issue_ordinal": part.doc_date,
        "supplier_vat": [m.supplier.vat_number for m in xml],
        "po_number": [m.po_number for m in xml],
        "currency": [m.currency for m in xml],
        "billing_reference": [m.billing_reference for m in xml],
        "source": [m.source for m in xml],
        **{name: values for name, (values, _) in totals.items()},
        "bad": part.doc_bad | np.any([inexact for _, inexact in totals.values()], axis=0),
    }
    for key, values in extra_docs.items():
        documents[key] = (
            np.concatenate([documents[key], values])
            if isinstance(documents[key], np.ndarray)
            else documents[key] + list(values)
        )
    book = {c: i for i, c in enumerate(lines["categories"])}
    extra_categories = [part.categories[c] for c in part.ln_category.tolist()]
    for c in extra_categories:
        book.setdefault(c, len(book))
    extra_lines = {
        "document": part.ln_doc + offset,
        "line": part.ln_line,
        "label": part.ln_label,
        "quantity": part.ln_qty,
        "unit_price": part.ln_price,
        "net_amount": part.ln_net,
        "vat_rate": part.ln_rate,
        "category": np.array([book[c] for c in extra_categories], dtype=np.int64),
        "bad": part.ln_bad,
    }
    for key, values in extra_lines.items():
        lines[key] = np.concatenate([np.asarray(lines[key]), np.asarray(values)]).astype(
            np.bool_ if key == "bad" else np.int64
        )
    lines["categories"] = list(book)


def _scaled_list(values: Sequence[Decimal]) -> tuple[np.ndarray, np.ndarray]:
    from connectors.columns import _scaled

    pairs = [_scaled(v) for v in values]
    return (
        np.array([p[0] or 0 for p in pairs], dtype=np.int64),
        np.array([not p[1] for p in pairs], dtype=np.bool_),
    )


def _conflicts(table: TypedTable, frame: pl.DataFrame, clashing: pl.DataFrame) -> list[Decision]:
    """``INPUT_CONFLICT`` holds for documents whose rows disagree in a header field."""
    from bots.domain.matching import Decision, Reason

    out = []
    for group in clashing.iter_rows(named=True):
        rows = frame.filter(pl.col("__row").is_in(group["__rows"]))
        first = rows.row(0, named=True)
        differing = []
        for name in _HEADER:
            values = rows[name].to_list()
            for row_number, value in zip(rows["__row"].to_list(), values, strict=True):
                if value != first[name]:
                    differing.append(
                        f"row {row_number} has {table.columns.get(name, name)} {value!r}, "
                        f"row {first['__row']} {first[name]!r}"
                    )
        kind = "credit note" if group["document_type"] == "credit_note" else "invoice"
        listed = ", ".join(str(r) for r in group["__rows"])
        message = (
            f"The rows of {kind} {group['invoice_number']} in {table.path.name} (rows {listed}) disagree: "
            + "; ".join(differing[:5])
            + ("; ..." if len(differing) > 5 else "")
            + "; correct the file and match it again"
        )
        out.append(
            Decision(
                invoice_number=group["invoice_number"],
                supplier_vat=group["supplier_vat"],
                document_type=group["document_type"],
                decision="hold",
                reasons=(Reason("INPUT_CONFLICT", None, message),),
                po_number=first["po_number"],
                gross_amount=Decimal("0.00"),
                issue_date=group["invoice_date"],
                currency=first["currency"],
                source=str(table.path),
            )
        )
    return out


# --- models for the sequential rules -------------------------------------------------------------


class _Models:
    """Builds the models of the few documents, orders and receipts the sequential
    matching rules look at, from the validated rows (:class:`~bots.domain.match_tables.ModelSource`)."""

    def __init__(
        self,
        orders: TypedTable,
        receipts: TypedTable | None,
        invoice_tables: list[TypedTable],
        lines: pl.DataFrame,
        documents: dict[int, Invoice],
    ) -> None:
        self.orders = orders
        self.receipts = receipts
        self.invoice_tables = invoice_tables
        self.lines = lines
        self.documents = documents

    def invoice_models(self, indices: Sequence[int]) -> list[Invoice]:
        from connectors.formats import InvoiceRow, invoice_from_rows

        wanted = [i for i in indices if i not in self.documents]
        rows = (
            self.lines.filter(pl.col("__doc").is_in(wanted)).select("__doc", "__table", "__row")
            if wanted
            else pl.DataFrame()
        )
        by_doc: dict[int, list[tuple[int, int]]] = {}
        for doc, table_index, row in rows.iter_rows():
            by_doc.setdefault(doc, []).append((table_index, row))
        # One pass over each file's rows for all the documents wanted (not one per document).
        records: dict[tuple[int, int], dict[str, Any]] = {}
        for table_index in sorted({t for pairs in by_doc.values() for t, _ in pairs}):
            table = self.invoice_tables[table_index]
            numbers = [row for pairs in by_doc.values() for t, row in pairs if t == table_index]
            for record in table.frame.filter(pl.col("__row").is_in(numbers)).iter_rows(named=True):
                records[(table_index, record["__row"])] = record
        out = []
        for i in indices:
            if i in self.documents:
                out.append(self.documents[i])
                continue
            table = self.invoice_tables[by_doc[i][0][0]]
            models: list[InvoiceRow] = [
                cast(
                    "InvoiceRow",
                    table.models.get(row) or _row_model(InvoiceRow, records[(table_index, row)]),
                )
                for table_index, row in sorted(by_doc[i], key=lambda pair: pair[1])
            ]
            first = models[0]
            out.append(invoice_from_rows(first.document_type, first.invoice_number, models, str(table.path)))
        return out

    def order_models(self, po_numbers: Sequence[str]) -> list[PurchaseOrder]:
        from bots.domain.models import POLine, PurchaseOrder

        frame = self.orders.frame.filter(pl.col("po_number").is_in(list(po_numbers)))
        out = []
        for (number,), group in frame.group_by(["po_number"], maintain_order=True):
            records = group.sort("__row").to_dicts()
            first = records[0]
            out.append(
                PurchaseOrder.model_construct(
                    po_number=number,
                    supplier_vat=first["supplier_vat"],
                    currency="GBP",
                    lines=[
                        POLine.model_construct(
                            line_no=r["line_no"],
                            item_code=r.get("item_code") or "",
                            quantity=self._exact(self.orders, r, "quantity"),
                            unit_price=self._exact(self.orders, r, "unit_price"),
                            vat_rate=self._exact(self.orders, r, "vat_rate"),
                            receipt_required=r["receipt_required"],
                        )
                        for r in records
                    ],
                )
            )
        return out

    def receipt_models(self, po_numbers: Sequence[str]) -> list[ReceiptLine]:
        from bots.domain.models import ReceiptLine

        if self.receipts is None:
            return []
        frame = self.receipts.frame.filter(pl.col("po_number").is_in(list(po_numbers))).sort("__row")
        return [
            ReceiptLine.model_construct(
                po_number=r["po_number"],
                line_no=r["line_no"],
                quantity_received=self._exact(self.receipts, r, "quantity_received"),
                received_date=r["received_date"],
            )
            for r in frame.iter_rows(named=True)
        ]

    @staticmethod
    def _exact(table: TypedTable, record: dict[str, Any], name: str) -> Decimal:
        model = table.models.get(record["__row"])
        if model is not None:
            value: Decimal = getattr(model, name)
            return value
        return Decimal(record[name]).scaleb(-4)


def _row_model(model: Any, record: dict[str, Any]) -> Any:
    """A row model from a row the vectorised rules accepted (exact values)."""
    values = {}
    for name, info in model.model_fields.items():
        if name not in record or record[name] is None:
            continue
        value = record[name]
        if info.annotation is not None and "Decimal" in str(info.annotation) and isinstance(value, int):
            value = Decimal(value).scaleb(-4)
        values[name] = value
    return model.model_validate(values)
