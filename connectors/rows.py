"""Rows from spreadsheets and CSV files into pydantic models, with every bad cell reported.

Shared by :mod:`connectors.excel` and :mod:`connectors.csvfiles`: both readers turn a file
into raw rows (lists of cell values with their source row number) and hand them to a
:class:`RowSchema`, which

* finds the header row (the first of the first :data:`HEADER_SEARCH_ROWS` rows that
  carries every required column), matching headers case-, space- and
  punctuation-insensitively, with configurable aliases
  (``aliases={"unit_price": ["price", "unit cost"]}``);
* converts each cell by the type of the model field it maps to: Excel serial dates,
  ``datetime`` cells, UK ``dd/mm/yyyy`` and ISO strings, money such as ``£1,234.50`` and
  ``(12.00)``, percentages (``20%`` -> ``20``), whole numbers, yes/no booleans. Numbers
  become :class:`~decimal.Decimal` through ``repr`` so a float cell ``0.1`` stays ``0.1``;
* validates the row into the model, mapping pydantic's errors back to the column;
* collects **every** error as a :class:`RowError` (file, sheet, row, column, value,
  message) while the good rows go on, and skips blank rows.

A problem with the file as a whole (not a spreadsheet, encrypted, no header row) raises
:class:`SpreadsheetError` instead; ``str()`` of either names the file and the place.

Example:
    >>> class Line(BaseModel):
    ...     po_number: str
    ...     unit_price: Decimal
    >>> schema = RowSchema(Line, aliases={"unit_price": ["price"]})
    >>> rows = [(1, ["PO Number", "Price"]), (2, ["PO-1", "£1,234.50"]), (3, ["PO-2", "abc"])]
    >>> result = schema.validate("orders.csv", None, rows)
    >>> result.rows[0].unit_price, result.row_numbers
    (Decimal('1234.50'), [2])
    >>> print(result.errors[0])
    orders.csv row 3, column 'Price' ('abc'): expected a number, e.g. 12 or £1,234.50
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import is_ as _is
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = [
    "BOOL",
    "DATE",
    "DATETIME",
    "DECIMAL",
    "HEADER_SEARCH_ROWS",
    "INT",
    "PERCENT",
    "RAW",
    "TEXT",
    "CellProblem",
    "ColumnKind",
    "ConversionError",
    "HeaderError",
    "ReadResult",
    "RowError",
    "RowSchema",
    "SpreadsheetError",
    "build_validated",
    "is_formula_like",
    "neutralise_formula",
    "normalise_header",
    "to_bool",
    "to_date",
    "to_datetime",
    "to_decimal",
    "to_int",
    "to_percent",
    "to_text",
]

HEADER_SEARCH_ROWS = 20
"""How many leading rows may hold titles or notes before the header row."""

EARLIEST_DATE = dt.date(1990, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)
"""Dates outside this window are typing mistakes (``01/01/1900``, ``2205``), not procurement."""

T = TypeVar("T", bound=BaseModel)


# --- errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem at one place of an input file.

    ``row`` is the 1-based row as a spreadsheet program shows it (for CSV: the record
    number, header included); ``column`` is the header as written in the file. Either is
    ``None`` when the problem concerns a whole row or the whole file.
    """

    file: str
    sheet: str | None
    row: int | None
    column: str | None
    value: Any
    message: str

    def __str__(self) -> str:
        place = Path(self.file).name if self.file else "<input>"
        if self.sheet:
            place += f"!{self.sheet}"
        if self.row is not None:
            place += f" row {self.row}"
        if self.column is not None:
            place += f"{',' if self.row is not None else ''} column {self.column!r}"
        if self.value not in (None, ""):
            shown = repr(self.value) if isinstance(self.value, str) else str(self.value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            place += f" ({shown})"
        return f"{place}: {self.message}"


class SpreadsheetError(ValueError):
    """The file as a whole cannot be read (wrong format, encrypted, damaged, too big)."""

    def __init__(
        self,
        file: str | Path,
        message: str,
        *,
        sheet: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.error = RowError(str(file), sheet, row, column, None, message)
        super().__init__(str(self.error))

    @property
    def file(self) -> str:
        """The path of the rejected file."""
        return self.error.file


class HeaderError(SpreadsheetError):
    """No row of the sheet carries the required column headers."""


class ConversionError(ValueError):
    """A cell value does not convert to the column's type; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class CellProblem:
    """Placed by a reader in a cell it could not read (a formula without a cached value).

    If the cell is in a mapped column, the row fails with ``message`` at that column.
    """

    message: str
    value: Any = None


@dataclass(slots=True)
class ReadResult(Generic[T]):
    """The outcome of reading one file: good rows, every error, and where each row came from.

    ``row_numbers[i]`` is the source row of ``rows[i]``, so callers can report later
    problems (grouping, cross-row checks) at the right place. ``warnings`` carry things
    the reader decided for the user (hidden rows skipped, duplicate headers ignored).
    """

    rows: list[T]
    errors: list[RowError]
    source: str
    row_numbers: list[int] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    sheet: str | None = None
    header_row: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    """Model field -> header text as found in the file."""
    rejected: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Row number -> raw cell values by field, for rows that failed (to tell which group they belonged to)."""

    @property
    def ok(self) -> bool:
        """True when no row had an error."""
        return not self.errors

    def error_at(
        self, row: int | None, message: str, column: str | None = None, value: Any = None
    ) -> RowError:
        """A :class:`RowError` at ``row`` of this result's file and sheet (for callers' own checks)."""
        return RowError(self.source, self.sheet, row, column, value, message)


# --- formula injection ------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def is_formula_like(value: str) -> bool:
    """True if a spreadsheet program could treat this text as a formula (CSV/formula injection).

    A plain number such as ``-12.50`` is not: it is data, and writers keep it as a number.
    """
    if not value or not value.startswith(_FORMULA_START):
        return False
    try:
        Decimal(value.strip())
    except InvalidOperation:
        return True
    return False


def neutralise_formula(value: str) -> str:
    """Prefix formula-like text with ``'`` so spreadsheet programs show it as text (OWASP advice)."""
    return "'" + value if is_formula_like(value) else value


# --- conversions ------------------------------------------------------------------------

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_ZERO = Decimal(0)
_MONEY_STRIP = re.compile(r"[£,\s\u00a0]|^GBP|GBP$", re.IGNORECASE)
_UK_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})")
_TEXT_DATE = re.compile(r"(\d{1,2})[\s\-/]([A-Za-z]{3,9})[\s\-/,]+(\d{4})")
_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_TRUE = frozenset({"yes", "y", "true", "t", "1", "x"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


def _float_to_decimal(value: float) -> Decimal:
    if value != value or value in (float("inf"), float("-inf")):
        raise ConversionError("expected a number, got a non-finite value")
    if value == 0:
        # -0.0 too: a spreadsheet shows it as 0, and equal cells must convert equally
        # (the reader memoises conversions by cell value, and -0.0 == 0.0).
        return _ZERO
    # repr gives the shortest string that round-trips, so 0.1 stays 0.1 (not 0.1000000000000000055).
    result = Decimal(repr(value))
    return result.quantize(Decimal(1)) if value.is_integer() else result


def to_decimal(value: Any) -> Decimal | None:
    """A number or amount as Decimal: ``£1,234.50``, ``(12.00)``, ``-£3``, ``GBP 5``, float cells.

    >>> to_decimal("£1,234.50"), to_decimal("(12.00)"), to_decimal(0.1)
    (Decimal('1234.50'), Decimal('-12.00'), Decimal('0.1'))
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConversionError("expected a number, got a true/false value")
    if isinstance(value, float):
        return _float_to_decimal(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConversionError("expected a number, got a non-finite value")
        return value
    if not isinstance(value, str):
        raise ConversionError(f"expected a number, got a {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    text = _MONEY_STRIP.sub("", text)
    if text.startswith("-"):
        negative, text = not negative, _MONEY_STRIP.sub("", text[1:])
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ConversionError("expected a number, e.g. 12 or £1,234.50") from None
    if not number.is_finite() or text[:1] == "-":
        raise ConversionError("expected a number, e.g. 12 or £1,234.50")
    return -number if negative else number


def to_percent(value: Any) -> Decimal | None:
    """A percentage as its number: ``20%`` -> 20, ``"20"`` -> 20.

    A numeric cell strictly between 0 and 1 is a percent-formatted cell (Excel stores
    20% as 0.2) and is scaled to 20; no UK VAT rate lies in that range.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            number = to_decimal(text[:-1])
            if number is None:
                raise ConversionError("expected a percentage, e.g. 20 or 20%")
            return number
        return to_decimal(text)
    number = to_decimal(value)
    if number is not None and isinstance(value, float) and 0 < number < 1:
        scaled = number * 100
        return scaled.quantize(Decimal(1)) if scaled == scaled.to_integral_value() else scaled.normalize()
    return number


def to_int(value: Any) -> int | None:
    """A whole number: ``3``, ``3.0``, ``"3"``; ``3.5`` is an error."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConversionError("expected a whole number, got a true/false value")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ConversionError("expected a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            return None
        if text.isdigit():
            return int(text)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ConversionError("expected a whole number") from None
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    raise ConversionError("expected a whole number")


def _check_range(day: dt.date) -> dt.date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ConversionError(
            f"date {day:%d/%m/%Y} is outside {EARLIEST_DATE:%Y}-{LATEST_DATE:%Y}; check the year"
        )
    return day


def to_date(value: Any) -> dt.date | None:
    """A calendar date from a date cell, an Excel serial number, ``dd/mm/yyyy`` or ISO text.

    Slash dates are read the UK way (day first): ``02/03/2025`` is 2 March.

    >>> to_date("02/03/2025"), to_date(45659.0), to_date("2025-03-02")
    (datetime.date(2025, 3, 2), datetime.date(2025, 1, 2), datetime.date(2025, 3, 2))
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _check_range(value.date())
    if isinstance(value, dt.date):
        return _check_range(value)
    if isinstance(value, bool):
        raise ConversionError("expected a date (dd/mm/yyyy), got a true/false value")
    if isinstance(value, int | float | Decimal):
        serial = float(value)
        if not 1 <= serial < 2958466:
            raise ConversionError("expected a date (dd/mm/yyyy); the number is not an Excel date")
        return _check_range(_EXCEL_EPOCH + dt.timedelta(days=int(serial)))
    if not isinstance(value, str):
        raise ConversionError(f"expected a date (dd/mm/yyyy), got a {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    try:
        if m := _UK_DATE.fullmatch(text):
            day, month, year = (int(g) for g in m.groups())
            if len(m.group(3)) == 2:
                year += 2000
            return _check_range(dt.date(year, month, day))
        if m := _TEXT_DATE.fullmatch(text):
            named_month = _MONTHS.get(m.group(2).lower())
            if named_month is not None:
                return _check_range(dt.date(int(m.group(3)), named_month, int(m.group(1))))
        if len(text) >= 10 and text[4] == "-":
            return _check_range(dt.date.fromisoformat(text[:10]))
    except ValueError as exc:
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"not a real date: {exc}") from None
    raise ConversionError("expected a date as dd/mm/yyyy or yyyy-mm-dd")


def to_datetime(value: Any) -> dt.datetime | None:
    """An instant: aware datetimes kept; naive ones and dates read as UK local time, stored UTC."""
    from zoneinfo import ZoneInfo

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            day = to_date(text)
            assert day is not None
            parsed = dt.datetime.combine(day, dt.time())
        value = parsed
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        serial = float(value)
        day = to_date(serial)
        assert day is not None
        value = dt.datetime.combine(day, dt.time()) + dt.timedelta(days=serial % 1)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        raise ConversionError("expected a date and time")
    instant: dt.datetime = value
    _check_range(instant.date())
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=ZoneInfo("Europe/London"))
    return instant.astimezone(dt.UTC)


def to_bool(value: Any) -> bool | None:
    """yes/no, y/n, true/false, 1/0 (and an Excel TRUE/FALSE cell)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ConversionError("expected yes or no")


def to_text(value: Any) -> str | None:
    """Text, with whole-number float cells shown without ``.0`` (codes typed as numbers)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# --- column kinds -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnKind:
    """Marks how a model field's cells convert: put one in ``Annotated[...]`` to override the type's default.

    Example: ``vat_rate: Annotated[Decimal, PERCENT]``.
    """

    name: str
    convert: Callable[[Any], Any]


TEXT = ColumnKind("text", to_text)
DECIMAL = ColumnKind("decimal", to_decimal)
PERCENT = ColumnKind("percent", to_percent)
INT = ColumnKind("int", to_int)
DATE = ColumnKind("date", to_date)
DATETIME = ColumnKind("datetime", to_datetime)
BOOL = ColumnKind("bool", to_bool)
RAW = ColumnKind("raw", lambda value: value)
"""Keeps the cell as read: a bot converts it itself, so a bad cell stays with its item."""


def _kind_for(annotation: Any, metadata: Sequence[Any]) -> ColumnKind:
    for item in metadata:
        if isinstance(item, ColumnKind):
            return item
    # Optional[X] / X | None / Annotated[X, ...]: look at X.
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = typing.get_args(annotation)
        return _kind_for(args[0], args[1:])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _kind_for(inner[0], ())
        return TEXT
    if annotation is bool:
        return BOOL
    if annotation is int:
        return INT
    if annotation is Decimal or annotation is float:
        return DECIMAL
    if annotation is dt.datetime:
        return DATETIME
    if annotation is dt.date:
        return DATE
    return TEXT


# --- headers ------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_header(text: Any) -> str:
    """Header text reduced for matching: ``" Unit_Price (£) "`` -> ``"unitprice"``."""
    if text is None:
        return ""
    return _NON_ALNUM.sub("", str(text).lower())


def _is_blank(cells: Sequence[Any]) -> bool:
    for cell in cells:
        if cell is None:
            continue
        if isinstance(cell, str):
            if cell.strip():
                return False
            continue
        return False
    return True


def _friendly(message: str) -> str:
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    if message.startswith("Input should"):
        return "should" + message[len("Input should") :]
    if message == "Field required":
        return "is required"
    return message


# --- batches: per-column cached conversion -------------------------------------------------
#
# Spreadsheet columns repeat a few values (VAT numbers, rates, prices, dates), so each
# column's cells are converted (to_decimal, to_date, ...) once per distinct value, a batch
# of rows at a time; each row's values are then validated by the model's public
# ``model_validate`` (pydantic-core: a few microseconds). A row with a cell that does not
# convert, or that the model rejects, goes through the one-row path, which reports every
# problem exactly as pydantic words it. Bulk inputs do not come through here at all: they
# are read column-wise (connectors.columns).

_MISSING: Any = object()
_BAD: Any = object()
_CACHE_LIMIT = 65_536
"""Distinct values remembered per column; beyond it new values are checked but not kept."""


def build_validated(model: type[T], values: Mapping[str, Any]) -> T:
    """``model`` from field values that have already passed checks at least as strict as its own.

    Validated again by pydantic (its public ``model_validate``: a few microseconds, and
    the model's cross-field rules run as always). Used where the same values have just
    been validated by a stricter model, e.g. an order row's fields becoming a
    purchase-order line.

    Raises:
        ValidationError: the model's rules reject the values.
    """
    return model.model_validate(values)


_ABSENT: Any = object()
"""A converted cell that is empty: the field keeps its default."""


class _ColumnConverter:
    """Converts and validates one column's cells a batch at a time, memoising distinct values.

    Each cell becomes the field value, :data:`_ABSENT` (empty) or :data:`_BAD` (the row
    needs the full path, which says what is wrong). A batch whose cells share one type
    is looked up with ``map(cache.get, ...)``, so a repeated value costs no Python call.
    """

    __slots__ = ("caches", "check", "convert", "text")

    def __init__(self, convert: Callable[[Any], Any], check: Callable[[Any], Any] | None) -> None:
        self.convert = convert
        self.check = check
        # to_text then an unconstrained str field: stripping is all there is to do.
        self.text = convert is to_text and check is None
        # Per cell type (1, 1.0 and True are equal keys but convert differently): good values,
        # and empty or bad ones.
        self.caches: dict[type, tuple[dict[Any, Any], dict[Any, Any]]] = {}

    def one(self, raw: Any) -> Any:
        """The field value of one cell, computed (no cache)."""
        if type(raw) is CellProblem:
            return _BAD
        try:
            value = self.convert(raw)
        except ConversionError:
            return _BAD
        if value is None:
            return _ABSENT
        if self.check is None:
            return value
        try:
            return self.check(value)
        except ValidationError:
            return _BAD

    def _cached(self, raw: Any, cache: dict[Any, Any], special: dict[Any, Any]) -> Any:
        value = special.get(raw, _MISSING)
        if value is not _MISSING:
            return value
        value = self.one(raw)
        if len(cache) + len(special) < _CACHE_LIMIT:
            with contextlib.suppress(TypeError):  # an unhashable cell value is not kept
                (special if value is _BAD or value is _ABSENT else cache)[raw] = value
        return value

    def many(self, cells: Sequence[Any]) -> tuple[list[Any], bool]:
        """The field values of a batch of cells, in order, and whether any is empty or bad."""
        kinds = set(map(type, cells))
        if self.text and kinds == {str}:
            values: list[Any] = list(map(str.strip, cells))
            if "" in values:  # str == str only: cheap
                return [v or _ABSENT for v in values], True
            return values, False
        if len(kinds) != 1:
            out: list[Any] = []
            for raw in cells:
                cache, special = self._caches(type(raw))
                try:
                    hit = cache.get(raw)
                except TypeError:
                    hit = self.one(raw)
                out.append(self._cached(raw, cache, special) if hit is None else hit)
            return out, any(map(_is, out, repeat(_BAD))) or any(map(_is, out, repeat(_ABSENT)))
        cache, special = self._caches(kinds.pop())
        try:
            # Good values only: a miss (None) may be new, empty or bad, and is settled below.
            values = [*map(cache.get, cells)]
        except TypeError:  # unhashable cell values
            values = [self.one(raw) for raw in cells]
            return values, any(map(_is, values, repeat(_BAD))) or any(map(_is, values, repeat(_ABSENT)))
        # Identity tests only: `None in values` would compare each Decimal with None (slow).
        if not any(map(_is, values, repeat(None))):
            return values, False
        found = False
        for i, value in enumerate(values):
            if value is None:
                value = values[i] = self._cached(cells[i], cache, special)
                found = found or value is _BAD or value is _ABSENT
        return values, found

    def _caches(self, kind: type) -> tuple[dict[Any, Any], dict[Any, Any]]:
        caches = self.caches.get(kind)
        if caches is None:
            caches = self.caches[kind] = ({}, {})
        return caches


class RowSchema(Generic[T]):
    """How raw rows of one kind of file become ``model`` instances.

    Args:
        model: the pydantic row model; its field names are the canonical headers.
        aliases: extra header spellings per field, e.g. ``{"unit_price": ["price"]}``.
        required: fields whose column must be present (default: fields without a default).
        header_search_rows: how many leading rows to search for the header row.

    Example:
        ``RowSchema(OrderRow, aliases={"po_number": ["order no"]}).validate(path, sheet, rows)``
    """

    def __init__(
        self,
        model: type[T],
        *,
        aliases: Mapping[str, Iterable[str]] | None = None,
        required: Iterable[str] | None = None,
        header_search_rows: int = HEADER_SEARCH_ROWS,
    ) -> None:
        self.model = model
        self.header_search_rows = header_search_rows
        fields = model.model_fields
        unknown = set(aliases or {}) - set(fields)
        if unknown:
            raise ValueError(f"aliases for unknown fields of {model.__name__}: {sorted(unknown)}")
        self.kinds: dict[str, ColumnKind] = {
            name: _kind_for(info.annotation, info.metadata) for name, info in fields.items()
        }
        self.required: tuple[str, ...] = (
            tuple(required)
            if required is not None
            else tuple(n for n, f in fields.items() if f.is_required())
        )
        self.batched = True
        """Convert cells a batch at a time, each distinct value once (tests compare it
        with the one-row-at-a-time path by setting this false)."""
        self.spellings: dict[str, str] = {}
        for name in fields:
            self.spellings[normalise_header(name)] = name
        for name, extra in (aliases or {}).items():
            for spelling in [extra] if isinstance(extra, str) else extra:
                self.spellings[normalise_header(spelling)] = name

    def match_header(self, cells: Sequence[Any]) -> dict[int, str]:
        """Column index -> field for one candidate header row (first spelling of a field wins)."""
        mapping: dict[int, str] = {}
        seen: set[str] = set()
        for index, cell in enumerate(cells):
            name = self.spellings.get(normalise_header(cell))
            if name is not None and name not in seen:
                mapping[index] = name
                seen.add(name)
        return mapping

    def find_header(
        self, file: str | Path, sheet: str | None, rows: Iterator[tuple[int, Sequence[Any]]]
    ) -> tuple[dict[int, str], Sequence[Any], int]:
        """Consume ``rows`` up to and including the header row; return its column index ->
        field mapping, its cells and its row number.

        Raises:
            HeaderError: no row among the first ``header_search_rows`` has the required headers.
        """
        best: tuple[int, int | None, dict[int, str]] = (-1, None, {})
        for seen, (number, cells) in enumerate(rows):
            if seen >= self.header_search_rows:
                break
            candidate = self.match_header(cells)
            if all(r in candidate.values() for r in self.required) and candidate:
                return candidate, cells, number
            if len(candidate) > best[0]:
                best = (len(candidate), number, candidate)
        missing = [r for r in self.required if r not in best[2].values()]
        where = (
            f"row {best[1]} has {best[0]} of them" if best[1] is not None and best[0] > 0 else "none found"
        )
        raise HeaderError(
            file,
            f"no header row with the required columns in the first {self.header_search_rows} rows "
            f"({where}); missing: {', '.join(missing)}",
            sheet=sheet,
        )

    def validate(
        self,
        file: str | Path,
        sheet: str | None,
        rows: Iterable[tuple[int, Sequence[Any]]],
        *,
        skip_rows: Mapping[int, str] | None = None,
    ) -> ReadResult[T]:
        """Find the header, then convert and validate every following non-blank row.

        ``rows`` yields ``(row_number, cells)``. ``skip_rows`` maps row numbers the reader
        wants left out (hidden rows) to the reason, reported as warnings.

        Raises:
            HeaderError: no row among the first ``header_search_rows`` has the required headers.
        """
        source = str(file)
        iterator = iter(rows)
        mapping, header_cells, header_row = self.find_header(file, sheet, iterator)
        columns = {name: str(header_cells[i]).strip() for i, name in mapping.items()}
        result: ReadResult[T] = ReadResult(
            rows=[], errors=[], source=source, sheet=sheet, header_row=header_row, columns=columns
        )
        plan = [(i, name, self.kinds[name].convert) for i, name in mapping.items()]
        width = max(mapping) + 1
        model_validate = self.model.model_validate
        skip = skip_rows or {}
        errors = result.errors
        good_rows, good_numbers = result.rows, result.row_numbers

        def full(number: int, cells: Sequence[Any]) -> None:
            # Convert and validate one row through model_validate, reporting every problem.
            data: dict[str, Any] = {}
            bad = False
            for index, name, convert in plan:
                raw = cells[index]
                if type(raw) is CellProblem:
                    errors.append(RowError(source, sheet, number, columns[name], raw.value, raw.message))
                    bad = True
                    continue
                try:
                    value = convert(raw)
                except ConversionError as exc:
                    errors.append(RowError(source, sheet, number, columns[name], raw, str(exc)))
                    bad = True
                    continue
                if value is not None:
                    data[name] = value
            if bad:
                result.rejected[number] = {name: cells[index] for index, name, _ in plan}
                return
            try:
                row = model_validate(data)
            except ValidationError as exc:
                for detail in exc.errors(include_url=False):
                    loc = detail.get("loc") or ()
                    field_name = str(loc[0]) if loc else None
                    column = columns.get(field_name, field_name) if field_name else None
                    at = next((i for i, n in mapping.items() if n == field_name), None)
                    raw = cells[at] if at is not None else None
                    errors.append(RowError(source, sheet, number, column, raw, _friendly(detail["msg"])))
                result.rejected[number] = {name: cells[index] for index, name, _ in plan}
                return
            good_rows.append(row)
            good_numbers.append(number)

        flush: Callable[[list[int], list[Sequence[Any]]], None]
        if self.batched:
            flush = _FastBatches(self.model, plan, full, good_rows, good_numbers)
        else:

            def flush(numbers: list[int], batch: list[Sequence[Any]]) -> None:
                for number, cells in zip(numbers, batch, strict=True):
                    full(number, cells)

        numbers: list[int] = []
        batch: list[Sequence[Any]] = []
        for number, cells in iterator:
            if len(cells) < width:
                cells = [*cells, *([None] * (width - len(cells)))]
            if _is_blank(cells):
                continue
            if number in skip:
                result.warnings.append(RowError(source, sheet, number, None, None, skip[number]))
                continue
            numbers.append(number)
            batch.append(cells)
            if len(batch) >= _BATCH_ROWS:
                flush(numbers, batch)
                numbers, batch = [], []
        if batch:
            flush(numbers, batch)
        return result


_BATCH_ROWS = 2048


class _FastBatches(Generic[T]):
    """Converts batches of rows column by column (each distinct cell value once, see
    :class:`_ColumnConverter`) and validates each row's values with the model's public
    ``model_validate``; a row with a cell that does not convert, or that the model
    rejects, goes to ``full``, which reports every problem in pydantic's words."""

    def __init__(
        self,
        model: type[T],
        plan: Sequence[tuple[int, str, Callable[[Any], Any]]],
        full: Callable[[int, Sequence[Any]], None],
        rows: list[T],
        numbers: list[int],
    ) -> None:
        self.validate = model.model_validate
        self.indexes = [index for index, _, _ in plan]
        self.names = [name for _, name, _ in plan]
        self.converters = [_ColumnConverter(convert, None) for _, _, convert in plan]
        self.full = full
        self.rows = rows
        self.numbers = numbers

    def __call__(self, numbers: list[int], batch: list[Sequence[Any]]) -> None:
        columns = list(zip(*batch, strict=False))
        values_by_field: list[list[Any]] = []
        flagged = False
        for index, converter in zip(self.indexes, self.converters, strict=True):
            values, special = converter.many(columns[index])
            values_by_field.append(values)
            flagged = flagged or special
        names, validate, full = self.names, self.validate, self.full
        good_rows, good_numbers = self.rows, self.numbers
        for i, row in enumerate(zip(*values_by_field, strict=True)):
            if flagged:
                if any(value is _BAD for value in row):
                    full(numbers[i], batch[i])
                    continue
                data = {n: v for n, v in zip(names, row, strict=True) if v is not _ABSENT}
            else:
                data = dict(zip(names, row, strict=True))
            try:
                instance = validate(data)
            except ValidationError:
                full(numbers[i], batch[i])
                continue
            good_rows.append(instance)
            good_numbers.append(numbers[i])
