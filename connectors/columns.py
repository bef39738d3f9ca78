"""Bulk tables as typed columns: CSV/XLSX read with polars and validated column by column.

What the row readers (:mod:`connectors.csvfiles`, :mod:`connectors.excel` with
:class:`~connectors.rows.RowSchema`) do one pydantic model per row, this module does per
column for the million-row inputs of bulk matching:

1. **Read** the raw cells as strings: a CSV straight into polars (when every record is
   one line, so a row number is its line); anything else (XLSX through the guarded
   calamine reader, CSV with multi-line records or a header below line 1) from the same
   ``(row number, cells)`` records the row readers use.
2. **Validate** each column with vectorised rules that accept only plainly written values
   (``12``, ``-3.5``, ``2025-05-01``, ``01/05/2025``, ``yes``) that the row model accepts
   too, with the same value. Money and quantities become exact fixed-point integers
   (1/10,000, never float).
3. Every **other** row (``£1,234.50``, a bad VAT number, a missing value, ...) goes through
   the row model itself (:meth:`RowSchema.validate`), so it is accepted with the value the
   model gives, or rejected with the very error the row readers report: file, row,
   column, value and the rule.

The result, :class:`TypedTable`, is a polars frame with ``__row`` (the row number as a
spreadsheet shows it), one column per field (decimals as ``Int64`` in 1/10,000,
``__inexact`` marking a row with a value the integers cannot hold exactly), the row
models of the rows that took step 3, and the errors.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from connectors.rows import (
    EARLIEST_DATE,
    LATEST_DATE,
    CellProblem,
    RowError,
    RowSchema,
    SpreadsheetError,
)

__all__ = ["SCALE", "TypedTable", "read_typed"]

SCALE = 10_000
"""Decimals are held as integers of 1/10,000 (pence and fractions of a penny, exactly)."""
_DIGITS = 4
_LIMIT = 2**53
"""Integers beyond this (in 1/10,000) are left to the row model and marked inexact."""
MAX_BULK_BYTES = 4 * 1024**3
"""Bulk inputs' own size limit (the bot inputs' is in :mod:`connectors.csvfiles`)."""

_TRUE = ("yes", "y", "true", "t", "1", "x")
_FALSE = ("no", "n", "false", "f", "0")
_NUMBER = r"^-?[0-9]{1,14}(\.[0-9]{0,4})?$"
_WHOLE = r"^[0-9]{1,9}$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_UK_DATE = r"^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}$"
# Characters Python's str.strip() removes but polars' strip_chars() may not; a cell
# with any is left to the row model.
_ODD_TEXT = "[\x00-\x08\x0b\x0c\x0e-\x1f\x85\u2028\u2029]"
_CONTROL = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_LAST_BYTES = b"\x85\xa8\xa9"
_NOT_ODD = bytes(b for b in range(256) if b not in _CONTROL + _LAST_BYTES)
_ODD_SEQUENCES = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")


def _has_odd_text(data: bytes) -> bool:
    """Whether UTF-8 ``data`` holds a character :data:`_ODD_TEXT` matches: one
    ``translate`` pass keeps the control bytes and the last bytes of the multi-byte ones;
    only when there are such bytes are the sequences searched (a regex took seconds)."""
    found = data.translate(None, _NOT_ODD)
    if not found:
        return False
    if found.translate(None, _LAST_BYTES):
        return True
    return any(seq in data for seq in _ODD_SEQUENCES)


_BAD_CELL = "\x00"
_EXCEL_ROWS = 1_048_576
"""Stands for an XLSX cell the string columns cannot show faithfully (row model decides)."""


@dataclass(slots=True)
class TypedTable:
    """Validated rows of one file as typed columns (see the module docstring)."""

    path: Path
    sheet: str | None
    frame: pl.DataFrame
    columns: dict[str, str]
    """Field -> header text as found in the file."""
    errors: list[RowError]
    models: dict[int, BaseModel] = field(default_factory=dict)
    """Row number -> row model, for the rows the row model validated (step 3)."""
    rejected: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Row number -> raw cells by field, of the rows with errors."""

    def error_at(
        self, row: int | None, message: str, column: str | None = None, value: Any = None
    ) -> RowError:
        """A :class:`RowError` at ``row`` of this file (for checks across rows)."""
        return RowError(str(self.path), self.sheet, row, column, value, message)


Rules = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.Expr]]
"""The row model's own constraints, column-wise: given the typed frame, the frame (values
normalised as the model would, e.g. VAT numbers) and an expression true where a row
satisfies every constraint; a row failing one is left to the row model, which words the error."""


def read_typed(
    path: Path,
    schema: RowSchema[Any],
    *,
    rules: Rules | None = None,
    sheet: str | None = None,
) -> TypedTable:
    """Read and validate one CSV/XLSX file column-wise (see the module docstring).

    Raises:
        SpreadsheetError: the file cannot be read at all (the message names it and why).
        HeaderError: no header row with the required columns.
    """
    suffix = path.suffix.lower()
    originals: Callable[[], dict[int, list[Any]]] | None = None
    sheet_name: str | None = None
    if suffix in (".csv", ".txt", ".tsv"):
        frame, columns, odd = _read_csv(path, schema)
    elif suffix in (".xlsx", ".xlsm"):
        (frame, columns), originals, sheet_name = _read_xlsx(path, schema, sheet)
        odd = True
    else:
        raise SpreadsheetError(
            path, f"has an unsupported extension {suffix or '(none)'!r}; use .csv or .xlsx"
        )
    return _validate(path, sheet_name, schema, frame, columns, originals, rules, odd)


# --- reading raw cells ------------------------------------------------------------------------


def _read_csv(path: Path, schema: RowSchema[Any]) -> tuple[pl.DataFrame, dict[str, str], bool]:
    from connectors.csvfiles import decode_csv, read_bytes, sniff_delimiter

    data = read_bytes(path, MAX_BULK_BYTES)
    from connectors.limits import RowLimit, text_lines

    # Bulk inputs have their own (large) row limit, checked before anything is parsed.
    lines = text_lines(data)
    RowLimit.bulk().check(path, lines - 1, counted="counting its lines")
    if data.isascii() and b"\x00" not in data[:4096] and not data.isspace():
        # Plain ASCII (the usual export): valid UTF-8 as it is; only the head is decoded,
        # to find the delimiter and the header.
        text, encoding = data[: 1 << 16].decode("ascii"), "utf-8"
    else:
        text, encoding = decode_csv(path, data)
    delimiter = sniff_delimiter(text)
    end = text.find("\n", 0, 1 << 20)
    first_line = text[:end] if end >= 0 else text[: 1 << 20]
    header_cells = next(csv.reader([first_line], delimiter=delimiter), [])
    mapping = schema.match_header(header_cells)
    simple = bool(mapping) and all(r in mapping.values() for r in schema.required) and '"' not in first_line
    if simple:
        payload = data[3:] if encoding == "utf-8-sig" else data if encoding == "utf-8" else text.encode()
        try:
            frame = pl.read_csv(
                io.BytesIO(payload),
                has_header=False,
                skip_rows=1,
                separator=delimiter,
                infer_schema=False,
                columns=sorted(mapping),
                new_columns=[mapping[i] for i in sorted(mapping)],
                truncate_ragged_lines=True,
                raise_if_empty=False,
                quote_char='"',
            )
        except pl.exceptions.PolarsError:
            frame = None
        if frame is not None:
            if payload is not data:
                lines = payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)
            # Every record on one line (no quoted line breaks, no skipped blank lines):
            # the row number is the line number.
            if lines == frame.height + 1:
                columns = {name: str(header_cells[i]).strip() for i, name in mapping.items()}
                frame = frame.with_columns(__row=pl.int_range(2, frame.height + 2, dtype=pl.Int64))
                return frame, columns, _has_odd_text(payload)
        text, _ = decode_csv(path, data)
    from connectors.csvfiles import _records

    records = list(_records(path, text, delimiter))
    frame, columns, _ = _records_frame(path, None, schema, records, {})
    return frame, columns, True


def _read_xlsx(
    path: Path, schema: RowSchema[Any], sheet: str | None
) -> tuple[tuple[pl.DataFrame, dict[str, str]], Callable[[], dict[int, list[Any]]], str]:
    from connectors.excel import ReadLimits, read_frame, read_records
    from connectors.limits import RowLimit

    limit = RowLimit.bulk()
    # A sheet holds at most 1,048,576 rows: a bulk limit above that needs no row count
    # (the declared dimension is still checked).
    limits = ReadLimits(max_rows=limit if limit.rows < _EXCEL_ROWS else None)
    fast = read_frame(path, schema, sheet=sheet, limits=limits)
    if fast is None:  # hidden rows, merged cells, formulas without values: row by row
        found = read_records(path, schema, sheet=sheet, limits=limits)
        frame, columns, cells = _records_frame(path, found.sheet, schema, found.records, found.skip_rows)
        return (frame, columns), lambda: cells, found.sheet

    def originals() -> dict[int, list[Any]]:
        # The cells as calamine types them, for the rows the row model checks.
        found = read_records(path, schema, sheet=fast.sheet, limits=limits)
        return _records_frame(path, found.sheet, schema, found.records, found.skip_rows)[2]

    kinds = {name: schema.kinds[name].name for name in fast.columns}
    fixes = []
    for name, kind in kinds.items():
        cell = pl.col(name)
        if kind == "date":
            # A date cell reads as "2025-05-01 00:00:00": the row model takes its date.
            timestamp = cell.str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
            fixes.append(pl.when(timestamp).then(cell.str.slice(0, 10)).otherwise(cell).alias(name))
        elif kind == "percent":
            # 0 < x < 1 is a percent-formatted cell (20% stored as 0.2): the row model scales it.
            fraction = cell.str.contains(r"^0*\.[0-9]*[1-9][0-9]*$")
            fixes.append(pl.when(fraction).then(pl.lit(_BAD_CELL)).otherwise(cell).alias(name))
    frame = fast.frame.with_columns(fixes) if fixes else fast.frame
    return (frame, fast.columns), originals, fast.sheet


def _records_frame(
    path: Path,
    sheet: str | None,
    schema: RowSchema[Any],
    records: list[tuple[int, list[Any]]],
    skip: Mapping[int, str],
) -> tuple[pl.DataFrame, dict[str, str], dict[int, list[Any]]]:
    """String columns of the mapped fields from raw records (header found as the row
    readers find it); XLSX cells that are not text become their plain spelling."""
    iterator = iter(records)
    mapping, header_cells, _ = schema.find_header(path, sheet, iterator)
    columns = {name: str(header_cells[i]).strip() for i, name in mapping.items()}
    kinds = {name: schema.kinds[name].name for name in mapping.values()}
    numbers: list[int] = []
    values: dict[str, list[str | None]] = {name: [] for name in mapping.values()}
    originals: dict[int, list[Any]] = {}
    for number, cells in iterator:
        if number in skip:
            continue  # hidden rows are left out, as by the row readers
        picked = [cells[index] if index < len(cells) else None for index in mapping]
        numbers.append(number)
        originals[number] = picked
        for name, cell in zip(mapping.values(), picked, strict=True):
            values[name].append(_spelling(cell, kinds[name]))
    frame = pl.DataFrame(
        {**{name: pl.Series(name, v, dtype=pl.String) for name, v in values.items()}},
        schema=dict.fromkeys(values, pl.String),
    ).with_columns(__row=pl.Series("__row", numbers, dtype=pl.Int64))
    return frame, columns, originals


def _spelling(cell: Any, kind: str) -> str | None:
    if cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, bool | CellProblem):
        return _BAD_CELL
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        if kind == "percent" and 0 < cell < 1:
            return _BAD_CELL  # a percent-formatted cell: the row model scales it
        if kind == "date":
            return _BAD_CELL  # an Excel serial: the row model reads it
        return str(int(cell)) if cell.is_integer() and abs(cell) < 2**53 else repr(cell)
    if isinstance(cell, dt.datetime):
        return cell.date().isoformat() if kind == "date" else _BAD_CELL
    if isinstance(cell, dt.date):
        return cell.isoformat() if kind == "date" else _BAD_CELL
    return _BAD_CELL


# --- validating --------------------------------------------------------------------------------


def _text(name: str, odd: bool) -> tuple[pl.Expr, pl.Expr]:
    raw = pl.col(name)
    value = raw.str.strip_chars()
    value = pl.when(value == "").then(None).otherwise(value)
    # Characters str.strip() removes but strip_chars() may not: checked only when the
    # file has any (``odd``), and such cells left to the row model.
    ok = raw.is_null() | ~raw.str.contains(_ODD_TEXT) if odd else pl.lit(True)
    return value, ok


def _decimal(name: str, odd: bool, percent: bool = False) -> tuple[pl.Expr, pl.Expr]:
    # A plain number with at most four decimals (the regex) is read exactly by the
    # fixed-point cast; anything else (£, commas, spaces, more decimals) is the row model's.
    raw = pl.col(name)
    text = raw.str.strip_suffix("%") if percent else raw
    ok = raw.is_null() | text.str.contains(_NUMBER)
    value = text.cast(pl.Decimal(18, _DIGITS), strict=False).to_physical().cast(pl.Int64)
    return value, ok


def _whole(name: str, odd: bool) -> tuple[pl.Expr, pl.Expr]:
    # The integer cast reads what int() does ("7", "007", "-3", "+3"); anything else is
    # null here and the row model's.
    value = pl.col(name).cast(pl.Int64, strict=False)
    return value, pl.col(name).is_null() | value.is_not_null()


def _date(name: str, odd: bool) -> tuple[pl.Expr, pl.Expr]:
    # ISO dates written in full (yyyy-mm-dd); dd/mm/yyyy and the rest go to the row model.
    raw = pl.col(name)
    value = pl.when(raw.str.len_bytes() == 10).then(raw.str.to_date("%Y-%m-%d", strict=False))
    in_range = value.is_between(pl.lit(EARLIEST_DATE), pl.lit(LATEST_DATE))
    return value, raw.is_null() | in_range.fill_null(False)


def _bool(name: str, odd: bool) -> tuple[pl.Expr, pl.Expr]:
    text = pl.col(name).str.to_lowercase()
    value = pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False)
    return value, pl.col(name).is_null() | value.is_not_null()


_KINDS = {
    "text": _text,
    "decimal": _decimal,
    "percent": lambda name, odd: _decimal(name, odd, percent=True),
    "int": _whole,
    "date": _date,
    "bool": _bool,
}


def _validate(
    path: Path,
    sheet: str | None,
    schema: RowSchema[Any],
    raw: pl.DataFrame,
    columns: dict[str, str],
    originals: Callable[[], dict[int, list[Any]]] | None,
    rules: Rules | None,
    odd: bool,
) -> TypedTable:
    names = [c for c in raw.columns if c != "__row"]
    errors: list[RowError] = []
    # Empty rows are no rows, as for the row readers (rows of blank cells fail the
    # vectorised rules and the row model leaves them out).
    if names:
        empty = pl.all_horizontal([pl.col(n).is_null() for n in names])
        if raw.select(empty.any()).item():
            raw = raw.filter(~empty)
    typed: list[pl.Expr] = []
    oks: list[pl.Expr] = []
    for name in names:
        value, ok = _KINDS[schema.kinds[name].name](name, odd)
        typed.append(value.alias(name))
        oks.append(ok)
    frame = raw.select(
        pl.col("__row"),
        *typed,
        __fast=pl.all_horizontal(oks) if oks else pl.lit(True),
    )
    # Defaults of the fields the file does not carry, and of empty cells.
    fields = schema.model.model_fields
    fills = []
    for name in names:
        default = fields[name].default
        if default is not None and not fields[name].is_required():
            kind = schema.kinds[name].name
            fills.append(pl.col(name).fill_null(_typed_default(default, kind)).alias(name))
    for name, info in fields.items():
        if name not in frame.columns and name in schema.kinds and not info.is_required():
            kind = schema.kinds[name].name
            default = info.default
            value = _typed_default(default, kind) if default is not None else pl.lit(None, _dtype(kind))
            fills.append(value.alias(name))
    if fills:
        frame = frame.with_columns(fills)
    required = [n for n, info in fields.items() if info.is_required() and n in frame.columns]
    checks = [pl.col(n).is_not_null() for n in required]
    if rules is not None:
        frame, ok = rules(frame)
        checks.append(ok)
    if checks:
        frame = frame.with_columns(__fast=pl.col("__fast") & pl.all_horizontal(checks).fill_null(False))
    frame = frame.drop([c for c in frame.columns if c.startswith("__") and c not in ("__row", "__fast")])
    if frame["__fast"].all():  # the usual case: no copy
        slow = frame.clear()
    else:
        slow = frame.filter(~pl.col("__fast"))
        frame = frame.filter(pl.col("__fast"))
    frame = frame.drop("__fast").with_columns(__inexact=pl.lit(False))
    table = TypedTable(path, sheet, frame, columns, errors)
    if slow.height:
        _by_row_model(table, schema, raw, slow["__row"].to_list(), originals, columns)
    return table


def _dtype(kind: str) -> Any:
    return {
        "decimal": pl.Int64,
        "percent": pl.Int64,
        "int": pl.Int64,
        "date": pl.Date,
        "bool": pl.Boolean,
    }.get(kind, pl.String)


def _typed_default(default: Any, kind: str) -> Any:
    if kind in ("decimal", "percent"):
        return pl.lit(int(Decimal(default) * SCALE), dtype=pl.Int64)
    return pl.lit(default, dtype=_dtype(kind))


def _by_row_model(
    table: TypedTable,
    schema: RowSchema[Any],
    raw: pl.DataFrame,
    numbers: list[int],
    originals: Callable[[], dict[int, list[Any]]] | None,
    columns: dict[str, str],
) -> None:
    """Rows the vectorised rules did not accept: validated by the row model, one by one,
    so each is accepted with the model's values or rejected with the row readers' error."""
    names = [c for c in raw.columns if c != "__row"]
    header = [columns[n] for n in names]
    if originals is not None:
        cells = originals()
        cells_by_row: list[tuple[int, list[Any]]] = [(n, cells[n]) for n in numbers]
    else:
        subset = raw.filter(pl.col("__row").is_in(numbers)).select(*names, "__row")
        cells_by_row = [(row[-1], list(row[:-1])) for row in subset.iter_rows()]
    result = schema.validate(table.path, table.sheet, [(0, header), *cells_by_row])
    table.errors.extend(result.errors)
    table.rejected.update(result.rejected)
    if not result.rows:
        return
    table.models.update(zip(result.row_numbers, result.rows, strict=True))
    values: dict[str, list[Any]] = {"__row": list(result.row_numbers)}
    inexact = [False] * len(result.rows)
    for name in table.frame.columns:
        if name in ("__row", "__inexact"):
            continue
        kind = schema.kinds[name].name
        found = [getattr(model, name) for model in result.rows]
        if kind in ("decimal", "percent"):
            scaled = []
            for k, value in enumerate(found):
                number, exact = _scaled(value)
                scaled.append(number)
                inexact[k] = inexact[k] or not exact
            values[name] = scaled
        else:
            values[name] = found
    values["__inexact"] = inexact
    extra = pl.DataFrame(values, schema=table.frame.schema)
    table.frame = pl.concat([table.frame, extra]).sort("__row")


def _scaled(value: Decimal | None) -> tuple[int | None, bool]:
    """A Decimal in 1/10,000 as an int, and whether that is exact (else 0, inexact)."""
    if value is None:
        return None, True
    try:
        scaled = value.scaleb(_DIGITS)
        whole = int(scaled)
    except (InvalidOperation, OverflowError, ValueError):
        return 0, False
    return (whole, True) if whole == scaled and abs(whole) < _LIMIT else (0, False)
