"""The stable file formats of procbots: orders, goods receipts and invoice rows (CSV or XLSX).

Columns (headers matched case-, space- and punctuation-insensitively; aliases overridable):

* Orders: ``po_number, line_no, supplier_id, supplier_vat, item_code, description,
  quantity, unit_price, vat_rate, receipt_required`` (optional extras: ``requisition_ref``,
  ``supplier_name``, ``cost_centre``, ``delivery_site``, ``need_by``, ``unit_code``).
  A requisition file to be raised as orders may carry ``requisition_ref`` instead of
  ``po_number``.
* Receipts: ``grn_number, po_number, line_no, quantity_received, received_date``.
* Invoices: ``document_type (invoice|credit_note), invoice_number, supplier_vat,
  invoice_date, po_number, line_no, quantity, unit_price, net_amount, vat_rate,
  vat_amount, billing_reference`` (optional: ``currency``, ``supplier_name``,
  ``description``, ``vat_category``). Credit notes are stated positive, as in UBL.

Each ``load_*`` reads rows, groups them into documents and returns
``(documents, errors)``. A document with any bad row is left out whole, with an error
saying so: a half-loaded order or invoice is worse than none. A file that cannot be
read at all raises :class:`~connectors.rows.SpreadsheetError`.

Example:
    >>> orders, errors = load_orders("orders.xlsx")  # doctest: +SKIP
    >>> for error in errors:  # doctest: +SKIP
    ...     print(error)  # orders.xlsx!Orders row 14, column 'unit_price' ('abc'): expected a number
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bots.domain.identifiers import check_gb_vat
from bots.domain.models import (
    CreditNote,
    DocumentTotals,
    GoodsReceipt,
    Invoice,
    InvoiceLine,
    Party,
    POLine,
    PurchaseOrder,
    ReceiptLine,
    money,
)
from connectors import csvfiles, excel
from connectors.limits import RowLimit
from connectors.rows import (
    PERCENT,
    HeaderError,
    ReadResult,
    RowError,
    SpreadsheetError,
    build_validated,
    to_text,
)

__all__ = [
    "InvoiceRow",
    "OrderRow",
    "ReceiptRow",
    "load_invoice_rows",
    "load_orders",
    "load_receipts",
    "read_table",
]

M = TypeVar("M", bound=BaseModel)
UK_VAT_RATES = (Decimal(20), Decimal(5), Decimal(0))
_LONDON = ZoneInfo("Europe/London")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


@lru_cache(maxsize=4096)
def _checked_vat(value: str) -> tuple[bool, str, str]:
    # Order files repeat a few supplier VAT numbers on every line: check each once.
    check = check_gb_vat(value)
    return check.valid, check.normalised, check.message


def _vat_number(value: str | None) -> str | None:
    if value is None:
        return None
    valid, normalised, message = _checked_vat(value)
    if not valid:
        raise ValueError(message)
    return normalised


class OrderRow(_Row):
    """One purchase-order line as a row of the orders file."""

    po_number: str | None = None
    requisition_ref: str | None = None
    line_no: int = Field(ge=1)
    supplier_id: str = Field(min_length=1)
    supplier_name: str = ""
    supplier_vat: str | None = None
    item_code: str = ""
    description: str = ""
    quantity: Decimal = Field(gt=0)
    unit_price: Decimal = Field(ge=0)
    vat_rate: Annotated[Decimal, PERCENT] = Decimal(20)
    receipt_required: bool = True
    unit_code: str = "EA"
    cost_centre: str = ""
    delivery_site: str = ""
    need_by: dt.date | None = None

    _check_vat = field_validator("supplier_vat")(_vat_number)

    @field_validator("vat_rate")
    @classmethod
    def _uk_rate(cls, value: Decimal) -> Decimal:
        if value not in UK_VAT_RATES:
            raise ValueError(f"VAT rate {value}% is not a UK rate (20, 5 or 0)")
        return value

    @model_validator(mode="after")
    def _has_reference(self) -> OrderRow:
        if not self.po_number and not self.requisition_ref:
            raise ValueError("needs a po_number or a requisition_ref")
        return self


class ReceiptRow(_Row):
    """One goods-received line."""

    grn_number: str = Field(min_length=1)
    po_number: str = Field(min_length=1)
    line_no: int = Field(ge=1)
    quantity_received: Decimal = Field(ge=0)
    received_date: dt.date

    @field_validator("received_date")
    @classmethod
    def _not_future(cls, value: dt.date) -> dt.date:
        today = dt.datetime.now(_LONDON).date()
        if value > today + dt.timedelta(days=1):
            raise ValueError(f"received date {value:%d/%m/%Y} is in the future")
        return value


INVOICE_KEY_FIELDS = ("document_type", "supplier_vat", "invoice_number", "invoice_date")
"""The rows of one invoice or credit note share these."""
INVOICE_HEADER_FIELDS = ("po_number", "billing_reference", "currency", "supplier_name")
"""Fields every row of one document must agree on."""

_DOCUMENT_TYPES = {
    "invoice": "invoice",
    "inv": "invoice",
    "380": "invoice",
    "creditnote": "credit_note",
    "credit": "credit_note",
    "crn": "credit_note",
    "cn": "credit_note",
    "381": "credit_note",
}


class InvoiceRow(_Row):
    """One invoice or credit-note line as a row."""

    document_type: Literal["invoice", "credit_note"] = "invoice"
    invoice_number: str = Field(min_length=1)
    supplier_vat: str
    supplier_name: str = ""
    invoice_date: dt.date
    currency: str = "GBP"
    po_number: str | None = None
    line_no: int | None = Field(default=None, ge=1)
    description: str = ""
    quantity: Decimal
    unit_price: Decimal = Field(ge=0)
    net_amount: Decimal | None = None
    vat_rate: Annotated[Decimal, PERCENT] = Field(default=Decimal(20), ge=0, le=100)
    vat_amount: Decimal | None = None
    vat_category: str | None = None
    billing_reference: str | None = None

    @field_validator("document_type", mode="before")
    @classmethod
    def _document_type(cls, value: Any) -> Any:
        if isinstance(value, str):
            key = "".join(ch for ch in value.lower() if ch.isalnum())
            if key not in _DOCUMENT_TYPES:
                raise ValueError(f"document type {value!r} is not invoice or credit_note")
            return _DOCUMENT_TYPES[key]
        return value

    @field_validator("supplier_vat")
    @classmethod
    def _vat(cls, value: str) -> str:
        # Invoices are read as sent: a bad check digit is matching's concern, not a read error.
        return "".join(value.split()).upper()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"currency {value!r} is not an ISO 4217 code such as GBP")
        return value.upper()

    @model_validator(mode="after")
    def _credit_positive(self) -> InvoiceRow:
        if self.document_type == "credit_note" and (
            self.quantity < 0 or (self.net_amount is not None and self.net_amount < 0)
        ):
            raise ValueError("credit notes are stated with positive quantities and amounts")
        return self


# --- reading ---------------------------------------------------------------------------------


def read_table(
    path: str | Path,
    model: type[M],
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    required: Iterable[str] | None = None,
    sheet: str | None = None,
    row_limit: RowLimit | None = None,
) -> ReadResult[M]:
    """Read a CSV or Excel file (by extension) into ``model`` rows.

    ``row_limit`` bounds the data rows, checked before the file is loaded: by default a
    bot's work-item limit (``limits.work_item_rows``, e.g. a scan file); the bulk
    matching inputs below (orders, receipts, invoice rows) pass ``RowLimit.bulk()``.

    Raises:
        SpreadsheetError: unknown extension, or the file cannot be read.
        TooManyRowsError: more data rows than ``row_limit``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    limit = row_limit or RowLimit.work_items()
    if suffix in (".csv", ".txt", ".tsv"):
        return csvfiles.read_rows(path, model, aliases=aliases, required=required, row_limit=limit)
    if suffix in (".xlsx", ".xlsm", ".xls", ".xlsb"):
        return excel.read_rows(path, model, aliases=aliases, required=required, sheet=sheet, row_limit=limit)
    raise SpreadsheetError(path, f"has an unsupported extension {suffix or '(none)'!r}; use .csv or .xlsx")


def _group(
    result: ReadResult[M],
    key: Callable[[M], Any],
    raw_key: Callable[[dict[str, Any]], Any],
) -> tuple[dict[Any, list[tuple[int, M]]], dict[Any, list[int]]]:
    groups: dict[Any, list[tuple[int, M]]] = {}
    for number, row in zip(result.row_numbers, result.rows, strict=True):
        groups.setdefault(key(row), []).append((number, row))
    bad: dict[Any, list[int]] = {}
    for number, raw in result.rejected.items():
        bad.setdefault(raw_key(raw), []).append(number)
    return groups, bad


def _withheld(result: ReadResult[M], what: str, rows: list[int], good: list[tuple[int, M]]) -> RowError:
    shown = ", ".join(str(r) for r in sorted(rows)[:10]) + (" ..." if len(rows) > 10 else "")
    first = min([*rows, *(n for n, _ in good)])
    return result.error_at(first, f"{what} not loaded: its row(s) {shown} have errors")


def _consistent(
    result: ReadResult[M], what: str, rows: list[tuple[int, M]], fields: Iterable[str]
) -> list[RowError]:
    errors: list[RowError] = []
    first_number, first = rows[0]
    for name in fields:
        expected = getattr(first, name)
        for number, row in rows[1:]:
            if getattr(row, name) != expected:
                errors.append(
                    result.error_at(
                        number,
                        f"{what}: {name} differs from row {first_number} ({expected!r})",
                        result.columns.get(name, name),
                        getattr(row, name),
                    )
                )
    return errors


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False))


_PO_LINE_FIELDS = tuple(POLine.model_fields)
_po_line_values = operator.attrgetter(*_PO_LINE_FIELDS)
_ORDER_HEADER_FIELDS = ("supplier_id", "supplier_vat", "requisition_ref")
_order_header_values = operator.attrgetter(*_ORDER_HEADER_FIELDS)


def _po_line(row: OrderRow) -> POLine:
    """The purchase-order line of an order row (its values already checked by OrderRow,
    more strictly than POLine would; POLine validates them again, publicly)."""
    return build_validated(POLine, dict(zip(_PO_LINE_FIELDS, _po_line_values(row), strict=True)))


def load_orders(
    path: str | Path,
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    sheet: str | None = None,
    warnings: list[RowError] | None = None,
) -> tuple[list[PurchaseOrder], list[RowError]]:
    """Read an orders file into purchase orders (rows grouped by po_number, else requisition_ref).

    Example:
        >>> orders, errors = load_orders("orders.csv", aliases={"unit_price": ["price"]})  # doctest: +SKIP
    """
    result = read_table(
        path,
        OrderRow,
        aliases=aliases,
        sheet=sheet,
        required=("line_no", "supplier_id", "quantity", "unit_price"),
        row_limit=RowLimit.bulk(),
    )
    if "po_number" not in result.columns and "requisition_ref" not in result.columns:
        raise HeaderError(path, "has neither a po_number nor a requisition_ref column", sheet=result.sheet)
    if warnings is not None:
        warnings.extend(result.warnings)
    errors = list(result.errors)

    def raw_key(raw: dict[str, Any]) -> Any:
        return to_text(raw.get("po_number")) or to_text(raw.get("requisition_ref"))

    groups, bad = _group(result, lambda r: r.po_number or r.requisition_ref, raw_key)
    orders: list[PurchaseOrder] = []
    for reference, rows in groups.items():
        what = f"purchase order {reference}"
        if reference in bad:
            errors.append(_withheld(result, what, bad[reference], rows))
            continue
        # Lines of one order almost always agree: compare them as one tuple each, and
        # only when one differs let _consistent say where and how.
        header = _order_header_values(rows[0][1])
        if len(rows) > 1 and any(_order_header_values(row) != header for _, row in rows):
            problems = _consistent(result, what, rows, _ORDER_HEADER_FIELDS)
            if problems:
                errors += problems
                continue
        first = rows[0][1]
        try:
            # Header values come from validated OrderRows (as strict as PurchaseOrder's
            # fields); build_validated still runs its cross-line rules (unique line numbers).
            order = build_validated(
                PurchaseOrder,
                {
                    "po_number": first.po_number,
                    "requisition_ref": first.requisition_ref,
                    "supplier_id": first.supplier_id,
                    "supplier_name": first.supplier_name,
                    "supplier_vat": first.supplier_vat,
                    "cost_centre": first.cost_centre,
                    "delivery_site": first.delivery_site,
                    "need_by": first.need_by,
                    "lines": [_po_line(row) for _, row in rows],
                },
            )
        except ValidationError as exc:
            errors.append(result.error_at(rows[0][0], f"{what}: {_validation_message(exc)}"))
            continue
        orders.append(order)
    return orders, errors


def load_receipts(
    path: str | Path,
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    sheet: str | None = None,
    warnings: list[RowError] | None = None,
) -> tuple[list[GoodsReceipt], list[RowError]]:
    """Read a goods-received file into GRNs (rows grouped by grn_number)."""
    result = read_table(path, ReceiptRow, aliases=aliases, sheet=sheet, row_limit=RowLimit.bulk())
    if warnings is not None:
        warnings.extend(result.warnings)
    errors = list(result.errors)
    groups, bad = _group(result, lambda r: r.grn_number, lambda raw: to_text(raw.get("grn_number")))
    receipts: list[GoodsReceipt] = []
    for grn, rows in groups.items():
        what = f"goods receipt {grn}"
        if grn in bad:
            errors.append(_withheld(result, what, bad[grn], rows))
            continue
        problems = _consistent(result, what, rows, ("po_number",))
        if problems:
            errors += problems
            continue
        first = rows[0][1]
        receipts.append(
            GoodsReceipt(
                grn_number=grn,
                po_number=first.po_number,
                received_date=max(row.received_date for _, row in rows),
                lines=[
                    ReceiptLine(
                        po_number=row.po_number,
                        line_no=row.line_no,
                        quantity_received=row.quantity_received,
                        received_date=row.received_date,
                    )
                    for _, row in rows
                ],
            )
        )
    return receipts, errors


def _vat_category(row: InvoiceRow) -> str:
    if row.vat_category:
        return row.vat_category.upper()
    return "Z" if row.vat_rate == 0 else "S"


def load_invoice_rows(
    path: str | Path,
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    sheet: str | None = None,
    warnings: list[RowError] | None = None,
) -> tuple[list[Invoice], list[RowError]]:
    """Read invoice/credit-note rows into documents, grouped by type, supplier VAT and number.

    Totals are computed from the lines (net to the penny; VAT as stated per line where the
    ``vat_amount`` column is filled, else per rate group); credit notes come back as
    :class:`~bots.domain.models.CreditNote`.
    """
    result = read_table(path, InvoiceRow, aliases=aliases, sheet=sheet, row_limit=RowLimit.bulk())
    if warnings is not None:
        warnings.extend(result.warnings)
    errors = list(result.errors)

    def raw_key(raw: dict[str, Any]) -> Any:
        kind = InvoiceRow._document_type(raw.get("document_type") or "invoice") if raw else "invoice"
        vat = "".join((to_text(raw.get("supplier_vat")) or "").split()).upper()
        return (kind, vat, to_text(raw.get("invoice_number")))

    def safe_raw_key(raw: dict[str, Any]) -> Any:
        try:
            return raw_key(raw)
        except ValueError:
            return ("?", "", to_text(raw.get("invoice_number")))

    # One document per type, supplier, number and date: a supplier that restarts its
    # numbering each year sends the same number again, with another date.
    groups, bad = _group(
        result, lambda r: (r.document_type, r.supplier_vat, r.invoice_number, r.invoice_date), safe_raw_key
    )
    invoices: list[Invoice] = []
    for key, rows in groups.items():
        kind, _vat, number, _date = key
        what = f"{'credit note' if kind == 'credit_note' else 'invoice'} {number}"
        withheld = [
            r for k, rs in bad.items() if k == key[:3] or (k[0] == "?" and k[2] == number) for r in rs
        ]
        if withheld:
            errors.append(_withheld(result, what, withheld, rows))
            continue
        problems = _consistent(
            result,
            what,
            rows,
            INVOICE_HEADER_FIELDS,
        )
        if problems:
            errors += problems
            continue
        invoices.append(invoice_from_rows(kind, number, [row for _, row in rows], str(path)))
    return invoices, errors


def invoice_from_rows(kind: str, number: str, rows: Sequence[InvoiceRow], source: str) -> Invoice:
    """The invoice or credit note that validated rows of one document make.

    Totals are computed from the lines (net to the penny; VAT as stated per line where the
    ``vat_amount`` column is filled, else per rate group).
    """
    first = rows[0]
    lines = [
        InvoiceLine(
            line_id=str(position),
            quantity=row.quantity,
            unit_price=row.unit_price,
            net_amount=row.net_amount if row.net_amount is not None else money(row.quantity * row.unit_price),
            vat_category=_vat_category(row),
            vat_rate=row.vat_rate,
            item_name=row.description,
            order_line_reference=str(row.line_no) if row.line_no is not None else None,
        )
        for position, row in enumerate(rows, start=1)
    ]
    net = sum((line.net_amount for line in lines), Decimal("0.00"))
    if all(row.vat_amount is not None for row in rows):
        tax = sum((row.vat_amount for row in rows if row.vat_amount is not None), Decimal("0.00"))
    else:
        by_rate: dict[Decimal, Decimal] = {}
        for line in lines:
            by_rate[line.vat_rate] = by_rate.get(line.vat_rate, Decimal(0)) + line.net_amount
        tax = sum((money(n * r / 100) for r, n in by_rate.items()), Decimal("0.00"))
    totals = DocumentTotals(
        line_extension=net,
        tax_exclusive=net,
        tax=tax,
        tax_inclusive=net + tax,
        payable=net + tax,
    )
    cls = CreditNote if kind == "credit_note" else Invoice
    return cls(
        document_type=kind,
        invoice_number=number,
        issue_date=first.invoice_date,
        currency=first.currency,
        supplier=Party(name=first.supplier_name, vat_number=first.supplier_vat),
        po_number=first.po_number,
        billing_reference=first.billing_reference,
        lines=lines,
        totals=totals,
        source=source,
    )
