"""CSV files in and out, with the same row-error model as the Excel reader.

Reading (:func:`read_rows`):

* Encoding: UTF-8 (with or without the BOM Excel writes), else Windows-1252 (what Excel
  on a UK Windows PC saves as "CSV"). UTF-16 ("Unicode text") is refused with a message
  saying how to save the file, because the documented formats are UTF-8 or Windows-1252
  and a half-decoded UTF-16 file would give plausible-looking nonsense.
* Delimiter: sniffed among ``,`` ``;`` tab and ``|`` from the first lines, by which gives
  the most consistent number of fields.
* Rows: a row number is the line where the record starts (the header is line 1 if it is
  the first line), so a quoted field spanning lines does not shift later numbers.

Writing (:func:`write_csv`): UTF-8 with BOM (so Excel shows £ correctly), ISO dates, and
text that a spreadsheet would run as a formula (``= + - @``, tab, CR) prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from connectors.limits import RowLimit, text_lines
from connectors.rows import ReadResult, RowSchema, SpreadsheetError, neutralise_formula

__all__ = [
    "DELIMITERS",
    "MAX_CSV_BYTES",
    "decode_csv",
    "read_bytes",
    "read_rows",
    "sniff_delimiter",
    "write_csv",
]

T = TypeVar("T", bound=BaseModel)

DELIMITERS = (",", ";", "\t", "|")
MAX_CSV_BYTES = 200 * 1024 * 1024


def decode_csv(path: str | Path, data: bytes) -> tuple[str, str]:
    """Decode CSV bytes; return ``(text, encoding)``.

    Raises:
        SpreadsheetError: empty, binary, UTF-16 or undecodable input (the message says which line).
    """
    if not data.strip():
        raise SpreadsheetError(path, "is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise SpreadsheetError(
            path, "is UTF-16 text (Excel 'Unicode Text'); save it as 'CSV UTF-8 (Comma delimited)'"
        )
    if data[:4] == b"PK\x03\x04":
        raise SpreadsheetError(path, "is an Excel workbook or other zip file, not CSV; give it an .xlsx name")
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise SpreadsheetError(path, "is an old Excel .xls workbook, not CSV; save it as CSV UTF-8")
    if b"\x00" in data[:4096]:
        raise SpreadsheetError(path, "contains NUL bytes: it is binary or UTF-16 without a BOM, not CSV text")
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise SpreadsheetError(
                path,
                f"is neither UTF-8 nor Windows-1252 text (byte 0x{data[exc.start]:02x} at line {line}; "
                f"UTF-8 failed at byte {utf8_error.start})",
                row=line,
            ) from None


def sniff_delimiter(text: str, candidates: Sequence[str] = DELIMITERS) -> str:
    """The delimiter that splits the first lines into the most consistent number of fields (> 1)."""
    sample = [line for line in text[: 64 * 1024].splitlines()[:30] if line.strip()]
    if len(sample) > 1 and len(text) > 64 * 1024:
        sample = sample[:-1]  # the last line of a cut sample may be partial
    best, best_score = ",", (0, 0)
    for delimiter in candidates:
        try:
            counts = [len(row) for row in csv.reader(sample, delimiter=delimiter)]
        except csv.Error:
            continue
        counts = [c for c in counts if c > 1]
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        score = (counts.count(mode), mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, list[Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SpreadsheetError(path, f"is not valid CSV: {exc}", row=reader.line_num) from None
        yield start, [cell if cell.strip() else None for cell in row]
        start = reader.line_num + 1


def read_rows(
    path: str | Path,
    model: type[T],
    *,
    aliases: Mapping[str, Iterable[str]] | None = None,
    required: Iterable[str] | None = None,
    delimiter: str | None = None,
    max_bytes: int = MAX_CSV_BYTES,
    row_limit: RowLimit | None = None,
) -> ReadResult[T]:
    """Read a CSV file into ``model`` rows, collecting every row error.

    ``row_limit`` bounds the data rows (default: the configured work-item limit,
    :meth:`RowLimit.work_items <connectors.limits.RowLimit.work_items>`), counted before
    any row is converted.

    Raises:
        SpreadsheetError: the file is not readable CSV (the message names it and why).
        TooManyRowsError: more data rows than ``row_limit``.
        HeaderError: no header row with the required columns.

    Example:
        >>> result = read_rows("receipts.csv", ReceiptRow)  # doctest: +SKIP
        >>> result.rows, [str(e) for e in result.errors]  # doctest: +SKIP
    """
    path = Path(path)
    data = read_bytes(path, max_bytes)
    limit = row_limit or RowLimit.work_items()
    # Lines are an upper bound of records, counted at memchr speed; only a file over the
    # limit by lines has its records counted (a quoted field may span lines).
    lines = text_lines(data)
    text, _encoding = decode_csv(path, data)
    delimiter = delimiter or sniff_delimiter(text)
    if lines - 1 > limit.rows:
        records = sum(1 for _ in _records(path, text, delimiter))
        limit.check(path, records - 1)
    schema = RowSchema(model, aliases=aliases, required=required)
    return schema.validate(path, None, _records(path, text, delimiter))


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a CSV file of at most ``max_bytes``.

    Raises:
        SpreadsheetError: too big, or cannot be opened (the message names the file).
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SpreadsheetError(path, f"is {size:,} bytes, over the limit of {max_bytes:,}")
        return path.read_bytes()
    except OSError as exc:
        raise SpreadsheetError(path, f"cannot be opened: {exc.strerror or exc}") from None


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal | int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise_formula(str(value))


def write_csv(
    path: str | Path,
    header: Sequence[str],
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> Path:
    """Write rows (sequences, or mappings keyed by header) safely; return the path.

    Numbers stay numbers; formula-like text gets a leading ``'`` so Excel shows it as text.

    Example:
        >>> rows = [["=HYPERLINK(...)", Decimal("1.50")]]
        >>> write_csv(tmp / "out.csv", ["supplier", "amount"], rows)  # doctest: +SKIP
    """
    path = Path(path)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow([neutralise_formula(str(h)) for h in header])
        for row in rows:
            cells = [row.get(h) for h in header] if isinstance(row, Mapping) else list(row)
            writer.writerow([_csv_value(v) for v in cells])
    return path
