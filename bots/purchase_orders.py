"""The purchase-order bot: requisition spreadsheet in, purchase orders raised in the portal.

Procurement staff drop a requisition workbook (or CSV), one row per line; rows that
share a ``requisition_ref`` are one order. The bot

1. reads every row with the file connectors, converting cells itself so that a bad
   cell is reported against its requisition (row and field named), never dropped;
2. checks each requisition (:func:`check_requisition`): supplier known to the portal
   and VAT number matching, GB VAT and GTIN check digits, quantity above 0, price not
   negative, VAT rate allowed by policy, delivery site shaped like an ODS code,
   need-by date not in the past (Europe/London). A failed requisition is a business
   exception whose reason names every row and field at fault;
3. raises each valid requisition in the portal **exactly once**: it searches the PO
   list by requisition reference before creating, checkpoints the PO number the
   moment the portal shows it, then checks the PO detail page against the
   requisition (supplier, lines, totals);
4. writes the results workbook (and optionally a PEPPOL Order per PO) to the outbox.

The validation half of this module is pure (no I/O); the portal half drives page
objects from :mod:`connectors.portal.pages`.

Example:
    >>> from decimal import Decimal
    >>> req = Requisition(
    ...     requisition_ref="REQ-1", source="reqs.xlsx", supplier_id="SUP-0001",
    ...     supplier_vat="GB980780684", cost_centre="CC100", delivery_site="RX1AB",
    ...     need_by=dt.date(2030, 1, 31),
    ...     lines=[RequisitionLine(row=2, item_code="5012345678900", description="Gloves",
    ...                            quantity=Decimal("10"), unit_price=Decimal("4.50"),
    ...                            vat_rate=Decimal("20"))],
    ... )
    >>> check_requisition(req, today=dt.date(2029, 1, 1), vat_rates=[Decimal("20")])
    []
    >>> to_purchase_order(req).gross_total
    Decimal('54.00')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from bots.identifiers import check_gb_vat, check_gtin, check_ods_code
from bots.models import POLine, PurchaseOrder
from connectors.rows import (
    ColumnKind,
    ConversionError,
    ReadResult,
    RowError,
    to_date,
    to_decimal,
    to_percent,
    to_text,
)

__all__ = [
    "LONDON",
    "REQUISITION_ALIASES",
    "Problem",
    "Requisition",
    "RequisitionBatch",
    "RequisitionLine",
    "RequisitionRow",
    "check_requisition",
    "group_requisitions",
    "london_today",
    "read_requisitions",
    "to_purchase_order",
]

LONDON = ZoneInfo("Europe/London")


def london_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Europe/London (need-by dates are UK calendar dates)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(LONDON).date()


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(_Model):
    """One thing wrong with a requisition, at one row and field of the input file."""

    code: str
    field: str | None = None
    row: int | None = None
    value: str | None = None
    message: str

    def __str__(self) -> str:
        place = f"row {self.row}" if self.row is not None else "requisition"
        if self.field:
            place += f", {self.field}"
        if self.value not in (None, ""):
            shown = self.value if len(self.value or "") <= 40 else (self.value or "")[:37] + "..."
            place += f" ({shown!r})"
        return f"{place}: {self.message}"


class RequisitionLine(_Model):
    """One requested line; amounts are ``None`` when the cell could not be read."""

    row: int
    item_code: str = ""
    description: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    vat_rate: Decimal | None = None


class Requisition(_Model):
    """A requisition: the lines of one ``requisition_ref``, with the problems found reading them.

    This is the work item's payload, so it stays JSON-serialisable.
    """

    requisition_ref: str
    source: str = ""
    supplier_id: str = ""
    supplier_vat: str = ""
    cost_centre: str = ""
    delivery_site: str = ""
    need_by: dt.date | None = None
    lines: list[RequisitionLine] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    @property
    def rows(self) -> list[int]:
        """The input rows of this requisition."""
        return [line.row for line in self.lines]

    @property
    def first_row(self) -> int | None:
        """Where the requisition starts in the input file."""
        return min(self.rows, default=None)


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)


def check_requisition(
    requisition: Requisition,
    *,
    today: dt.date,
    vat_rates: Iterable[Decimal],
    suppliers: Mapping[str, str | None] | None = None,
) -> list[Problem]:
    """Every problem with ``requisition``; an empty list means it can be raised.

    Args:
        requisition: the requisition, with any problems found while reading it.
        today: the UK calendar date (see :func:`london_today`); need-by must not be before it.
        vat_rates: the VAT rates policy allows (``config`` ``matching.vat_rates``).
        suppliers: supplier id -> VAT number as the portal knows them; ``None``
            skips the "known supplier" check (no portal at hand).
    """
    problems = list(requisition.problems)
    row = requisition.first_row
    supplier_id = requisition.supplier_id
    if not supplier_id:
        problems.append(Problem(code="UNKNOWN_SUPPLIER", field="supplier_id", row=row, message="is required"))
    elif suppliers is not None and supplier_id not in suppliers:
        problems.append(
            Problem(
                code="UNKNOWN_SUPPLIER",
                field="supplier_id",
                row=row,
                value=supplier_id,
                message=f"supplier {supplier_id} is not known to the portal",
            )
        )
    vat = check_gb_vat(requisition.supplier_vat) if requisition.supplier_vat else None
    if vat is None:
        problems.append(
            Problem(code="INVALID_VAT_NUMBER", field="supplier_vat", row=row, message="is required")
        )
    elif not vat.valid:
        problems.append(
            Problem(
                code="INVALID_VAT_NUMBER",
                field="supplier_vat",
                row=row,
                value=requisition.supplier_vat,
                message=vat.message or "not a valid GB VAT number",
            )
        )
    elif suppliers is not None and supplier_id in suppliers:
        known = suppliers[supplier_id]
        if known and check_gb_vat(known).normalised != vat.normalised:
            problems.append(
                Problem(
                    code="SUPPLIER_VAT_MISMATCH",
                    field="supplier_vat",
                    row=row,
                    value=requisition.supplier_vat,
                    message=f"the portal has VAT number {known} for supplier {supplier_id}",
                )
            )
    if not requisition.cost_centre:
        problems.append(Problem(code="MISSING_FIELD", field="cost_centre", row=row, message="is required"))
    ods = check_ods_code(requisition.delivery_site) if requisition.delivery_site else None
    if ods is None or not ods.valid:
        problems.append(
            Problem(
                code="INVALID_DELIVERY_SITE",
                field="delivery_site",
                row=row,
                value=requisition.delivery_site,
                message=(ods.message if ods is not None else "is required"),
            )
        )
    if requisition.need_by is None:
        if not any(p.field == "need_by" for p in problems):
            problems.append(Problem(code="MISSING_FIELD", field="need_by", row=row, message="is required"))
    elif requisition.need_by < today:
        problems.append(
            Problem(
                code="NEED_BY_IN_PAST",
                field="need_by",
                row=row,
                value=requisition.need_by.strftime("%d/%m/%Y"),
                message=f"need-by date is before today ({today:%d/%m/%Y})",
            )
        )
    problems.extend(_line_problems(requisition.lines, vat_rates, problems))
    return problems


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _line_problems(
    lines: Sequence[RequisitionLine], vat_rates: Iterable[Decimal], known: Sequence[Problem]
) -> list[Problem]:
    allowed = sorted({Decimal(rate).normalize() for rate in vat_rates})
    unreadable = {(p.row, p.field) for p in known}
    problems: list[Problem] = []
    if not lines:
        problems.append(Problem(code="NO_LINES", message="has no lines"))
    for line in lines:
        code = line.item_code
        if not code:
            problems.append(
                Problem(code="MISSING_FIELD", field="item_code", row=line.row, message="is required")
            )
        elif code.isdigit():
            # Numeric item codes are GTINs (catalogue items); others are service codes.
            gtin = check_gtin(code)
            if not gtin.valid:
                problems.append(
                    Problem(
                        code="INVALID_GTIN",
                        field="item_code",
                        row=line.row,
                        value=code,
                        message=gtin.message or "GTIN check digit is wrong",
                    )
                )
        if line.quantity is None:
            if (line.row, "quantity") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="quantity", row=line.row, message="is required")
                )
        elif line.quantity <= 0:
            problems.append(
                Problem(
                    code="INVALID_QUANTITY",
                    field="quantity",
                    row=line.row,
                    value=_shown(line.quantity),
                    message="quantity must be more than 0",
                )
            )
        if line.unit_price is None:
            if (line.row, "unit_price") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="unit_price", row=line.row, message="is required")
                )
        elif line.unit_price < 0:
            problems.append(
                Problem(
                    code="INVALID_PRICE",
                    field="unit_price",
                    row=line.row,
                    value=_shown(line.unit_price),
                    message="unit price must not be negative",
                )
            )
        if line.vat_rate is None:
            if (line.row, "vat_rate") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="vat_rate", row=line.row, message="is required")
                )
        elif line.vat_rate.normalize() not in allowed:
            problems.append(
                Problem(
                    code="VAT_RATE_NOT_ALLOWED",
                    field="vat_rate",
                    row=line.row,
                    value=_shown(line.vat_rate),
                    message=f"VAT rate {_percent(line.vat_rate)}% is not allowed (allowed: "
                    + ", ".join(f"{_percent(r)}%" for r in allowed)
                    + ")",
                )
            )
    return problems


def to_purchase_order(requisition: Requisition, po_number: str | None = None) -> PurchaseOrder:
    """The purchase order a valid requisition becomes (line numbers in input order).

    Raises:
        ValueError: when a line has no quantity, price or VAT rate (check first).
    """
    lines = []
    for number, line in enumerate(requisition.lines, start=1):
        if line.quantity is None or line.unit_price is None or line.vat_rate is None:
            raise ValueError(f"row {line.row} of {requisition.requisition_ref} is incomplete")
        lines.append(
            POLine(
                line_no=number,
                item_code=line.item_code,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                vat_rate=line.vat_rate,
            )
        )
    return PurchaseOrder(
        po_number=po_number,
        requisition_ref=requisition.requisition_ref,
        supplier_id=requisition.supplier_id,
        supplier_vat=requisition.supplier_vat or None,
        cost_centre=requisition.cost_centre,
        delivery_site=requisition.delivery_site,
        need_by=requisition.need_by,
        lines=lines,
    )


# --- reading the requisition file -------------------------------------------------------

RAW = ColumnKind("raw", lambda value: value)
"""Keeps the cell as read: the bot converts it, so a bad cell stays with its requisition."""

REQUISITION_ALIASES: dict[str, list[str]] = {
    "requisition_ref": ["requisition", "requisition no", "requisition number", "req ref", "req no"],
    "supplier_id": ["supplier", "supplier code", "vendor", "vendor id"],
    "supplier_vat": ["vat number", "supplier vat number", "vat no", "vat reg"],
    "cost_centre": ["cost center", "cost centre code"],
    "delivery_site": ["site", "delivery ods", "ods code", "delivery location"],
    "need_by": ["need by date", "required by", "date required", "needed by"],
    "item_code": ["gtin", "item", "product code", "catalogue code"],
    "description": ["item description", "product"],
    "quantity": ["qty"],
    "unit_price": ["price", "unit cost", "price each"],
    "vat_rate": ["vat", "vat %", "vat percent", "tax rate"],
}
"""Header spellings staff use for each requisition column (matched case- and space-insensitively)."""

_REQUIRED_COLUMNS = [name for name in REQUISITION_ALIASES if name != "description"]


class RequisitionRow(BaseModel):
    """One row of the requisition file, cells as read (see :func:`group_requisitions`)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    requisition_ref: Annotated[Any, RAW] = None
    supplier_id: Annotated[Any, RAW] = None
    supplier_vat: Annotated[Any, RAW] = None
    cost_centre: Annotated[Any, RAW] = None
    delivery_site: Annotated[Any, RAW] = None
    need_by: Annotated[Any, RAW] = None
    item_code: Annotated[Any, RAW] = None
    description: Annotated[Any, RAW] = None
    quantity: Annotated[Any, RAW] = None
    unit_price: Annotated[Any, RAW] = None
    vat_rate: Annotated[Any, RAW] = None


class RequisitionBatch(_Model):
    """What one input file holds: requisitions (valid or not) and rows that belong to none."""

    source: str
    requisitions: list[Requisition]
    orphan_rows: list[str] = Field(default_factory=list)
    """Readable messages for rows with no requisition reference (reported, never raised)."""


def _text(value: Any) -> str:
    return (to_text(value) or "").strip()


_HEADER_FIELDS = ("supplier_id", "supplier_vat", "cost_centre", "delivery_site", "need_by")


def _convert(field: str, converter: Any, raw: Any, row: int, problems: list[Problem]) -> Any:
    try:
        return converter(raw)
    except ConversionError as exc:
        problems.append(
            Problem(code="UNREADABLE_VALUE", field=field, row=row, value=_text(raw), message=str(exc))
        )
        return None


def group_requisitions(
    rows: Sequence[RequisitionRow],
    row_numbers: Sequence[int],
    *,
    source: str,
    errors: Sequence[RowError] = (),
) -> RequisitionBatch:
    """Converts raw rows and groups them into requisitions by ``requisition_ref``, in file order.

    A cell that does not convert, or a header field (supplier, cost centre, site,
    need-by) that differs between rows of one requisition, becomes a :class:`Problem`
    of that requisition. ``errors`` are reader errors (a formula without a value);
    those rows cannot be placed and are reported as orphans.
    """
    order: list[str] = []
    headers: dict[str, dict[str, Any]] = {}
    header_rows: dict[str, int] = {}
    lines: dict[str, list[RequisitionLine]] = {}
    problems: dict[str, list[Problem]] = {}
    orphans = [str(error) for error in errors]
    for row, number in zip(rows, row_numbers, strict=True):
        ref = _text(row.requisition_ref)
        if not ref:
            orphans.append(f"row {number}: requisition_ref is empty, so the row belongs to no requisition")
            continue
        if ref not in lines:
            order.append(ref)
            lines[ref], problems[ref] = [], []
        found = problems[ref]

        header = {
            "supplier_id": _text(row.supplier_id),
            "supplier_vat": _text(row.supplier_vat),
            "cost_centre": _text(row.cost_centre),
            "delivery_site": _text(row.delivery_site).upper(),
            "need_by": _convert("need_by", to_date, row.need_by, number, found),
        }
        if ref not in headers:
            headers[ref], header_rows[ref] = header, number
        else:
            first = headers[ref]
            for name in _HEADER_FIELDS:
                if header[name] is not None and first[name] is not None and header[name] != first[name]:
                    found.append(
                        Problem(
                            code="INCONSISTENT_REQUISITION",
                            field=name,
                            row=number,
                            value=str(header[name]),
                            message=f"differs from {first[name]!s} on row {header_rows[ref]} "
                            "of the same requisition",
                        )
                    )
        lines[ref].append(
            RequisitionLine(
                row=number,
                item_code=_text(row.item_code),
                description=_text(row.description),
                quantity=_convert("quantity", to_decimal, row.quantity, number, found),
                unit_price=_convert("unit_price", to_decimal, row.unit_price, number, found),
                vat_rate=_convert("vat_rate", to_percent, row.vat_rate, number, found),
            )
        )
    requisitions = [
        Requisition(
            requisition_ref=ref,
            source=source,
            supplier_id=headers[ref]["supplier_id"],
            supplier_vat=headers[ref]["supplier_vat"],
            cost_centre=headers[ref]["cost_centre"],
            delivery_site=headers[ref]["delivery_site"],
            need_by=headers[ref]["need_by"],
            lines=lines[ref],
            problems=problems[ref],
        )
        for ref in order
    ]
    return RequisitionBatch(source=source, requisitions=requisitions, orphan_rows=orphans)


def read_requisitions(
    path: str | Path, *, aliases: Mapping[str, Iterable[str]] | None = None
) -> RequisitionBatch:
    """Reads a requisition workbook (.xlsx/.xlsm) or CSV into requisitions.

    Raises:
        connectors.rows.SpreadsheetError: the file cannot be read at all, or has no
            header row with the requisition columns (the message names the file).

    Example:
        >>> batch = read_requisitions("inbox/requisitions.xlsx")  # doctest: +SKIP
        >>> [r.requisition_ref for r in batch.requisitions][:2]  # doctest: +SKIP
        ['REQ-2026-000001', 'REQ-2026-000002']
    """
    path = Path(path)
    merged: dict[str, list[str]] = {name: list(spellings) for name, spellings in REQUISITION_ALIASES.items()}
    for name, extra in (aliases or {}).items():
        merged.setdefault(name, []).extend([extra] if isinstance(extra, str) else extra)
    result: ReadResult[RequisitionRow]
    if path.suffix.lower() in (".csv", ".txt"):
        from connectors import csvfiles

        result = csvfiles.read_rows(path, RequisitionRow, aliases=merged, required=_REQUIRED_COLUMNS)
    else:
        from connectors import excel

        result = excel.read_rows(path, RequisitionRow, aliases=merged, required=_REQUIRED_COLUMNS)
    return group_requisitions(result.rows, result.row_numbers, source=str(path), errors=result.errors)
