"""Excel workbooks in and out: a guarded, fast reader of .xlsx/.xlsm and a styled report writer.

Reading (:func:`read_rows`) happens in three steps, so a hostile or broken file costs
bounded time and memory and fails with a message that names it:

1. :func:`inspect_workbook` looks at the bytes and the zip directory only. It rejects
   old binary ``.xls`` and password-protected workbooks (both OLE2 compound files,
   magic ``D0 CF 11 E0``), ``.xlsb``, files that are not zips or are truncated, zip bombs
   (declared uncompressed size or compression ratio over :class:`ReadLimits`) and, by
   default, workbooks with external links (their cached values may be stale copies of
   another workbook; pass ``allow_external_links=True`` to read them with a warning).
2. A streaming scan of the chosen sheet's XML (never more bytes than the limit) finds the
   declared dimension (a huge one is rejected), hidden rows, merged ranges and formula
   cells that have no cached value.
3. python-calamine reads the cell values. It is about ten times faster than openpyxl's
   read-only mode on a 100,000-row sheet (see ``benchmarks/bench_excel.py``), so the
   reader uses it and relies on the scan for what calamine does not report.

Decisions: hidden rows are skipped and each is reported as a warning (someone hid them
for a reason, usually "do not process"); a merged range reads as its top-left value in
every cell; a formula without a cached value is an error in that cell (the workbook was
written by a program that does not calculate: open and save it in Excel); the sheet is
the one named, else the first visible sheet whose header row matches.

Writing (:func:`write_report`, in :mod:`connectors.excel_report`) produces report
workbooks with styled headers, frozen panes, filters, £ and date formats, highlighted
exception rows and a summary sheet with native charts; text from outside that looks
like a formula is written as text.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from defusedxml import ElementTree as SafeET
from pydantic import BaseModel

from connectors.excel_report import ChartSpec, Column, ColumnFormat, Sheet, Summary, write_report
from connectors.limits import RowLimit
from connectors.rows import (
    CellProblem,
    HeaderError,
    ReadResult,
    RowError,
    RowSchema,
    SpreadsheetError,
)

__all__ = [
    "ChartSpec",
    "Column",
    "ColumnFormat",
    "ReadLimits",
    "Sheet",
    "SheetScan",
    "Summary",
    "WorkbookInfo",
    "column_number",
    "inspect_workbook",
    "iter_sheet_rows",
    "precheck_sheet",
    "read_rows",
    "scan_sheet",
    "write_report",
]

T = TypeVar("T", bound=BaseModel)

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds on what the reader accepts, so every file costs bounded time and memory."""

    max_file_bytes: int = 200 * 1024 * 1024
    max_uncompressed_bytes: int = 1024 * 1024 * 1024
    """Total of all zip members, as declared and as actually streamed."""
    max_ratio: int = 200
    """Compression ratio above which a member over ``ratio_floor_bytes`` counts as a zip bomb."""
    ratio_floor_bytes: int = 16 * 1024 * 1024
    max_cells: int = 50_000_000
    """Declared sheet dimension (rows x columns) above which the sheet is refused."""
    max_xml_part_bytes: int = 16 * 1024 * 1024
    """Workbook-level parts parsed as XML (workbook.xml and its relationships)."""
    max_rows: RowLimit | None = None
    """Most data rows of the sheet read, checked before calamine loads it; :func:`read_rows`
    applies the configured work-item limit (``limits.work_item_rows``) when this is unset."""


@dataclass(frozen=True, slots=True)
class WorkbookInfo:
    """What :func:`inspect_workbook` learnt from the zip directory and workbook part."""

    path: Path
    sheets: dict[str, str]
    """Sheet name -> zip member of its XML, in workbook order."""
    hidden_sheets: frozenset[str]
    external_links: tuple[str, ...]
    macros: bool


@dataclass(slots=True)
class SheetScan:
    """What the streaming scan of one sheet's XML found (rows and columns 1-based)."""

    dimension: str | None = None
    hidden_rows: set[int] = field(default_factory=set)
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(first_row, first_col, last_row, last_col) of each merged range."""
    uncached_formulas: dict[tuple[int, int], str] = field(default_factory=dict)
    """(row, col) -> formula text of formula cells without a cached value."""
    past_header: bool = False


# --- inspection -----------------------------------------------------------------------------


def _reject(path: Path, message: str) -> SpreadsheetError:
    return SpreadsheetError(path, message)


def inspect_workbook(
    path: str | Path, *, limits: ReadLimits = ReadLimits(), allow_external_links: bool = False
) -> WorkbookInfo:
    """Check that ``path`` is a readable .xlsx/.xlsm without parsing any sheet.

    Raises:
        SpreadsheetError: with a message naming the file and what is wrong with it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise _reject(path, f"cannot be opened: {exc.strerror or exc}") from None
    if size == 0:
        raise _reject(path, "is empty (0 bytes)")
    if size > limits.max_file_bytes:
        raise _reject(path, f"is {size:,} bytes, over the limit of {limits.max_file_bytes:,}")
    if head == _OLE2_MAGIC:
        raise _reject(path, _ole2_message(path, suffix))
    if head[:4] != _ZIP_MAGIC:
        raise _reject(
            path,
            f"is not an Excel workbook (.xlsx is a zip file; this one starts with {head[:4]!r}); "
            "if it is CSV, give it a .csv name",
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise _reject(path, f"is damaged or truncated (not a complete zip file: {exc})") from None
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        if "xl/workbook.bin" in names or suffix == ".xlsb":
            raise _reject(path, "is a binary workbook (.xlsb), which is not supported; save it as .xlsx")
        if "xl/workbook.xml" not in names:
            raise _reject(path, "is a zip file but not an Excel workbook (no xl/workbook.xml)")
        total = 0
        for info in infos:
            total += info.file_size
            if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise _reject(
                    path,
                    f"looks like a zip bomb: {info.filename} expands {info.compress_size:,} bytes to "
                    f"{info.file_size:,} (ratio over {limits.max_ratio})",
                )
        if total > limits.max_uncompressed_bytes:
            raise _reject(
                path,
                f"would expand to {total:,} bytes, over the limit of {limits.max_uncompressed_bytes:,}",
            )
        external = tuple(sorted(n for n in names if n.startswith("xl/externalLinks/") and n.endswith(".xml")))
        if external and not allow_external_links:
            targets = _external_targets(archive, external, path, limits)
            raise _reject(
                path,
                f"links to other workbooks ({', '.join(targets) or len(external)}); its values may be stale "
                "copies. Paste the values in (Data > Edit Links > Break Link) and save again",
            )
        sheets, hidden = _sheet_members(archive, path, limits)
    return WorkbookInfo(
        path=path,
        sheets=sheets,
        hidden_sheets=frozenset(hidden),
        external_links=external,
        macros="xl/vbaProject.bin" in names,
    )


def _ole2_message(path: Path, suffix: str) -> str:
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if "EncryptedPackage".encode("utf-16-le") in head or suffix in (".xlsx", ".xlsm"):
        return "is password-protected (encrypted); remove the password in Excel and save it again"
    return "is an old Excel 97-2003 workbook (.xls), which is not supported; save it as .xlsx"


def _read_part(archive: zipfile.ZipFile, name: str, path: Path, limits: ReadLimits) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limits.max_xml_part_bytes:
        raise _reject(path, f"has an oversized part {name} ({info.file_size:,} bytes)")
    with archive.open(info) as handle:
        data = handle.read(limits.max_xml_part_bytes + 1)
    if len(data) > limits.max_xml_part_bytes:
        raise _reject(path, f"has an oversized part {name}")
    return data


def _parse_xml(data: bytes, name: str, path: Path) -> Any:
    try:
        return SafeET.fromstring(data)
    except Exception as exc:  # defusedxml raises several types: all mean "refuse this part"
        raise _reject(path, f"has a malformed part {name}: {exc}") from None


def _external_targets(
    archive: zipfile.ZipFile, members: Sequence[str], path: Path, limits: ReadLimits
) -> list[str]:
    targets: list[str] = []
    for member in members:
        rels = member.replace("externalLinks/", "externalLinks/_rels/") + ".rels"
        if rels in archive.namelist():
            root = _parse_xml(_read_part(archive, rels, path, limits), rels, path)
            targets += [str(r.get("Target", "")) for r in root.iter(f"{_PKG_REL_NS}Relationship")]
    return [t for t in targets if t]


def _sheet_members(
    archive: zipfile.ZipFile, path: Path, limits: ReadLimits
) -> tuple[dict[str, str], set[str]]:
    workbook = _parse_xml(_read_part(archive, "xl/workbook.xml", path, limits), "xl/workbook.xml", path)
    targets: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in archive.namelist():
        rels = _parse_xml(
            _read_part(archive, "xl/_rels/workbook.xml.rels", path, limits),
            "xl/_rels/workbook.xml.rels",
            path,
        )
        for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
            target = str(rel.get("Target", ""))
            target = target.lstrip("/") if target.startswith("/") else "xl/" + target
            targets[str(rel.get("Id"))] = target
    sheets: dict[str, str] = {}
    hidden: set[str] = set()
    for sheet in workbook.iter(f"{_MAIN_NS}sheet"):
        name = str(sheet.get("name", ""))
        member = targets.get(str(sheet.get(f"{_REL_NS}id")), "")
        sheets[name] = member
        if sheet.get("state") in ("hidden", "veryHidden"):
            hidden.add(name)
    return sheets, hidden


# --- streaming sheet scan --------------------------------------------------------------------

_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]*\bref="([A-Z]+\d+(?::[A-Z]+\d+)?)"')
_HIDDEN_ROW = re.compile(rb'<(?:\w+:)?row\b([^>]*\bhidden="(?:1|true)"[^>]*)>')
_ROW_NUMBER = re.compile(rb'\br="(\d+)"')
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*\bref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
# A formula cell: <c ...><f ...>text</f> or <f .../>, then its cached <v> (maybe empty), then </c>.
_FORMULA_CELL = re.compile(
    rb"<(?:\w+:)?c\b([^>]*)>\s*<(?:\w+:)?f\b[^>]*?(?:/>|>([^<]*)</(?:\w+:)?f>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
_CELL_REF = re.compile(rb'\br="([A-Z]+)(\d+)"')
_TYPE_STR = re.compile(rb'\bt="str"')
_CHUNK = 1024 * 1024


def column_number(letters: str | bytes) -> int:
    """``"A"`` -> 1, ``"AB"`` -> 28."""
    text = letters.decode() if isinstance(letters, bytes) else letters
    number = 0
    for char in text:
        number = number * 26 + ord(char) - 64
    return number


def _dimension_cells(ref: str) -> tuple[int, int]:
    parts = ref.split(":")
    last = parts[-1]
    m = re.fullmatch(r"([A-Z]+)(\d+)", last)
    first = re.fullmatch(r"([A-Z]+)(\d+)", parts[0])
    if not m or not first:
        return 0, 0
    rows = int(m.group(2)) - int(first.group(2)) + 1
    cols = column_number(m.group(1)) - column_number(first.group(1)) + 1
    return rows, cols


def scan_sheet(
    archive: zipfile.ZipFile, member: str, path: Path, sheet: str, limits: ReadLimits = ReadLimits()
) -> SheetScan:
    """Stream one sheet's XML once, in 1 MiB chunks, never past ``limits.max_uncompressed_bytes``."""
    scan = SheetScan()
    carry = b""
    total = 0
    try:
        handle = archive.open(member)
    except KeyError:
        raise SpreadsheetError(path, f"sheet part {member} is missing", sheet=sheet) from None
    with handle:
        while True:
            try:
                chunk = handle.read(_CHUNK)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise SpreadsheetError(path, f"is damaged: {exc}", sheet=sheet) from None
            total += len(chunk)
            if total > limits.max_uncompressed_bytes:
                raise SpreadsheetError(
                    path,
                    f"sheet expands past {limits.max_uncompressed_bytes:,} bytes (zip bomb?)",
                    sheet=sheet,
                )
            buffer = carry + chunk
            if not chunk:
                _scan_buffer(scan, buffer, path, sheet, limits)
                break
            # Keep the tail after the last complete cell or row so no element is cut in two.
            cut = max(buffer.rfind(b"</c>"), buffer.rfind(b"</row>"), buffer.rfind(b"/>"))
            if cut < 0:
                carry = buffer
                if len(carry) > 4 * _CHUNK:
                    carry = carry[-_CHUNK:]
                continue
            cut = buffer.index(b">", cut) + 1
            _scan_buffer(scan, buffer[:cut], path, sheet, limits)
            carry = buffer[cut:]
    return scan


def _check_dimension(ref: str, path: Path, sheet: str, limits: ReadLimits) -> None:
    rows, cols = _dimension_cells(ref)
    if rows * cols > limits.max_cells:
        raise SpreadsheetError(
            path,
            f"declares a sheet of {rows:,} rows x {cols:,} columns ({ref}), over the limit "
            f"of {limits.max_cells:,} cells; delete the unused rows and columns and save again",
            sheet=sheet,
        )
    if limits.max_rows is not None:
        limits.max_rows.check(path, rows - 1, sheet=sheet, counted=f"by its declared dimension {ref}")


def precheck_sheet(
    archive: zipfile.ZipFile, member: str, path: Path, sheet: str, limits: ReadLimits = ReadLimits()
) -> None:
    """Refuse a sheet whose declared dimension is over the limit, from its first 64 KiB only.

    Lets the full :func:`scan_sheet` run alongside calamine's read: the one thing that
    must be known before calamine starts is that the sheet is not absurdly large.
    Problems reading the part are left for :func:`scan_sheet` to report.
    """
    try:
        with archive.open(member) as handle:
            head = handle.read(64 * 1024)
    except (KeyError, zipfile.BadZipFile, EOFError, OSError, zlib.error):
        return
    at = head.find(b"sheetData")
    m = _DIMENSION.search(head if at < 0 else head[:at])
    if m:
        _check_dimension(m.group(1).decode(), path, sheet, limits)
    if limits.max_rows is not None and (m is None or b":" not in m.group(1)):
        # No dimension, or a single cell (some writers always say A1): count the rows.
        rows = _count_rows(archive, member, limits.max_rows.rows + 1)
        limits.max_rows.check(path, rows - 1, sheet=sheet, counted="counting its rows")


_ROW_START = re.compile(rb"<(?:\w+:)?row[\s>/]")


def _count_rows(archive: zipfile.ZipFile, member: str, stop_after: int) -> int:
    """The ``<row>`` elements of a sheet part, streamed, counting no further than past ``stop_after``."""
    count = 0
    carry = b""
    try:
        with archive.open(member) as handle:
            while chunk := handle.read(_CHUNK):
                buffer = carry + chunk
                # A row tag is never cut in two: count up to the last "<", carry the rest.
                cut = buffer.rfind(b"<")
                cut = len(buffer) if cut < 0 else cut
                count += len(_ROW_START.findall(buffer, 0, cut))
                carry = buffer[cut:]
                if count > stop_after:
                    return count
    except (KeyError, zipfile.BadZipFile, EOFError, OSError, zlib.error):
        pass  # the full scan reports a damaged part
    return count + len(_ROW_START.findall(carry))


def _scan_buffer(scan: SheetScan, data: bytes, path: Path, sheet: str, limits: ReadLimits) -> None:
    if not scan.past_header:
        # <dimension> comes before <sheetData>; stop looking once the cell data starts.
        at = data.find(b"sheetData")
        head = data if at < 0 else data[:at]
        scan.past_header = at >= 0
    else:
        head = b""
    if scan.dimension is None and head and (m := _DIMENSION.search(head)):
        scan.dimension = m.group(1).decode()
        _check_dimension(scan.dimension, path, sheet, limits)
    if b"h" in data and b"hidden" in data:  # memchr first, as for formulas below
        for m in _HIDDEN_ROW.finditer(data):
            if number := _ROW_NUMBER.search(m.group(1)):
                scan.hidden_rows.add(int(number.group(1)))
    # A lone byte is found by memchr, while "<f" means a slow test at every tag's "<": a
    # chunk without any "f" (cell data with shared strings, no formulas) skips both.
    if b"f" in data and (b"<f" in data or b":f" in data):
        for m in _FORMULA_CELL.finditer(data):
            attrs, formula, cached = m.group(1), m.group(2), m.group(3)
            if cached is None or (not cached.strip() and not _TYPE_STR.search(attrs)):
                ref = _CELL_REF.search(attrs)
                if ref:
                    key = (int(ref.group(2)), column_number(ref.group(1)))
                    scan.uncached_formulas[key] = (formula or b"").decode("utf-8", "replace")
    if b"mergeCell" in data:
        for m in _MERGE.finditer(data):
            c0, r0, c1, r1 = m.groups()
            scan.merged.append((int(r0), column_number(c0), int(r1), column_number(c1)))


# --- reading ---------------------------------------------------------------------------------


def _open_calamine(path: Path) -> Any:
    from python_calamine import CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types and ValueError; all mean unreadable
        raise SpreadsheetError(path, f"cannot be read as a workbook: {exc}") from None


def iter_sheet_rows(
    workbook: Any, sheet: str, scan: SheetScan, *, data: Any = None
) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(excel_row_number, cells)`` of one sheet, merged ranges filled, empty cells as None.

    Formula cells without a cached value hold a :class:`~connectors.rows.CellProblem`.
    ``data`` is the sheet as calamine already loaded it, if it has.
    """
    if data is None:
        data = workbook.get_sheet_by_name(sheet)
    col_offset = data.start[1] if data.start else 0
    merged_by_row: dict[int, list[tuple[int, int, int, int]]] = {}
    for rng in scan.merged:
        for row in range(rng[0], min(rng[2], rng[0] + 10_000) + 1):
            merged_by_row.setdefault(row, []).append(rng)
    merged_values: dict[tuple[int, int], Any] = {}
    problems: dict[int, list[tuple[int, str]]] = {}
    for (row, col), formula in scan.uncached_formulas.items():
        problems.setdefault(row, []).append((col, formula))
    for index, raw in enumerate(data.iter_rows()):
        number = index + 1
        # calamine gives "" for an empty cell; most rows of a data sheet have none to replace.
        # Each row is a new list of calamine's, so it is ours to change without a copy.
        cells: list[Any] = [None if v == "" else v for v in raw] if "" in raw else raw
        if number in problems:
            for col, formula in problems[number]:
                i = col - 1 - col_offset
                if 0 <= i < len(cells):
                    cells[i] = CellProblem(
                        f"formula ={formula} has no calculated value; open and save the file in Excel", None
                    )
        if number in merged_by_row:
            for r0, c0, _r1, c1 in merged_by_row[number]:
                if number == r0:
                    i0 = c0 - 1 - col_offset
                    merged_values[(r0, c0)] = cells[i0] if 0 <= i0 < len(cells) else None
                value = merged_values.get((r0, c0))
                for col in range(c0, c1 + 1):
                    i = col - 1 - col_offset
                    if 0 <= i < len(cells):
                        cells[i] = value
        yield number, cells


def _scan_and_load(
    archive: zipfile.ZipFile, workbook: Any, member: str, path: Path, sheet: str, limits: ReadLimits
) -> tuple[SheetScan, Any]:
    """Scan the sheet's XML in a thread while calamine loads it (calamine releases the GIL).

    The scan took a quarter of a 100,000-row read when run first; side by side it is
    mostly free on a second core. Its errors (damaged part, sheet too big) still win over
    calamine's, as when it ran first.
    """
    precheck_sheet(archive, member, path, sheet, limits)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sheet-scan") as pool:
        pending = pool.submit(scan_sheet, archive, member, path, sheet, limits)
        try:
            data = workbook.get_sheet_by_name(sheet)
        except Exception as exc:  # calamine's own error types; reported after the scan's
            scan = pending.result()
            raise SpreadsheetError(path, f"cannot be read: {exc}", sheet=sheet) from None
        scan = pending.result()
    return scan, data


def read_rows(
    path: str | Path,
    model: type[T],
    *,
    sheet: str | None = None,
    aliases: Mapping[str, Iterable[str]] | None = None,
    required: Iterable[str] | None = None,
    limits: ReadLimits = ReadLimits(),
    allow_external_links: bool = False,
    row_limit: RowLimit | None = None,
) -> ReadResult[T]:
    """Read one sheet of an .xlsx/.xlsm into ``model`` rows, collecting every row error.

    Args:
        path: the workbook.
        model: pydantic row model; field names are the headers (see :class:`~connectors.rows.RowSchema`).
        sheet: sheet name; by default the first visible sheet whose header row matches.
        aliases: extra header spellings per field.
        required: fields whose column must be present (default: fields without a default).
        row_limit: most data rows (default: ``limits.max_rows``, else the configured
            work-item limit, :meth:`RowLimit.work_items <connectors.limits.RowLimit.work_items>`).

    Raises:
        SpreadsheetError: the file cannot be read at all (the message names it and why).
        TooManyRowsError: the sheet has more data rows than ``row_limit``, found before
            it is loaded.
        HeaderError: no sheet has the required headers.

    Example:
        >>> result = read_rows("orders.xlsx", OrderRow)  # doctest: +SKIP
        >>> for error in result.errors:  # doctest: +SKIP
        ...     print(error)  # orders.xlsx!Orders row 14, column 'unit_price' ('abc'): expected a number
    """
    limits = replace(limits, max_rows=row_limit or limits.max_rows or RowLimit.work_items())
    schema = RowSchema(model, aliases=aliases, required=required)
    sheet_read = read_records(
        path, schema, sheet=sheet, limits=limits, allow_external_links=allow_external_links
    )
    result = schema.validate(path, sheet_read.sheet, sheet_read.records, skip_rows=sheet_read.skip_rows)
    result.warnings[:0] = sheet_read.warnings
    return result


def _candidate_sheets(info: WorkbookInfo, sheet: str | None) -> list[str]:
    """The sheets to look for the table in: ``sheet``, else every visible one in order.

    Raises:
        SpreadsheetError: ``sheet`` is not in the workbook.
    """
    if sheet is None:
        return [name for name in info.sheets if name not in info.hidden_sheets]
    if sheet not in info.sheets:
        raise SpreadsheetError(info.path, f"has no sheet {sheet!r} (sheets: {', '.join(info.sheets)})")
    return [sheet]


def _no_table(path: Path, candidates: list[str], first_error: HeaderError | None) -> SpreadsheetError:
    """The error when no candidate sheet has the header row."""
    if first_error is None:
        return SpreadsheetError(path, "has no visible sheets")
    if len(candidates) > 1:
        return HeaderError(
            path, f"no sheet of {', '.join(candidates)} has the expected header row; {first_error}"
        )
    return first_error


@dataclass(slots=True)
class SheetRecords:
    """The rows of the sheet that holds the table: ``records`` from its header row on."""

    sheet: str
    records: list[tuple[int, list[Any]]]
    skip_rows: dict[int, str]
    warnings: list[RowError]


def read_records(
    path: str | Path,
    schema: RowSchema[Any],
    *,
    sheet: str | None = None,
    limits: ReadLimits = ReadLimits(),
    allow_external_links: bool = False,
) -> SheetRecords:
    """The raw rows of the first visible sheet (or ``sheet``) whose header row ``schema``
    recognises, after the guarded inspection and the sheet scan (hidden rows in
    ``skip_rows``, formulas without values as :class:`~connectors.rows.CellProblem`).
    What :func:`read_rows` validates row by row, and the columnar readers column by column.

    Raises:
        SpreadsheetError: the file cannot be read at all.
        HeaderError: no sheet has the required headers.
    """
    path = Path(path)
    info = inspect_workbook(path, limits=limits, allow_external_links=allow_external_links)
    candidates = _candidate_sheets(info, sheet)
    if candidates:
        # The first sheet tried is checked before calamine opens the workbook, which reads
        # the whole shared strings table (1.4 million strings on a full-size sheet).
        with zipfile.ZipFile(path) as archive:
            precheck_sheet(archive, info.sheets[candidates[0]], path, candidates[0], limits)
    workbook = _open_calamine(path)
    first_error: HeaderError | None = None
    try:
        with zipfile.ZipFile(path) as archive:
            for name in candidates:
                scan, data = _scan_and_load(archive, workbook, info.sheets[name], path, name, limits)
                records = list(iter_sheet_rows(workbook, name, scan, data=data))
                try:
                    schema.find_header(path, name, iter(records))
                except HeaderError as exc:
                    first_error = first_error or exc
                    continue
                warnings = (
                    [RowError(str(path), None, None, None, None, "workbook links to other workbooks")]
                    if info.external_links
                    else []
                )
                return SheetRecords(
                    name, records, dict.fromkeys(scan.hidden_rows, "hidden row skipped"), warnings
                )
    finally:
        workbook.close()
    raise _no_table(path, candidates, first_error)


@dataclass(slots=True)
class SheetFrame:
    """A sheet's table as string columns (:func:`read_frame`): ``frame`` holds the mapped
    columns by field name and ``__row`` (the row number as Excel shows it)."""

    sheet: str
    frame: Any
    columns: dict[str, str]


def read_frame(
    path: str | Path,
    schema: RowSchema[Any],
    *,
    sheet: str | None = None,
    limits: ReadLimits = ReadLimits(),
) -> SheetFrame | None:
    """The table of the first visible sheet (or ``sheet``) whose header ``schema``
    recognises, read by fastexcel (calamine in Rust, straight into Arrow) as string
    columns: cells as their plain spelling (``10``, ``0.25``, ``true``,
    ``2025-05-01 00:00:00``), empty cells null.

    After the same guarded inspection and sheet scan as :func:`read_records`; ``None`` when
    the sheet has what only the row-by-row reader handles (hidden rows, merged cells,
    formulas without a cached value), so the caller uses :func:`read_records` instead.

    Raises:
        SpreadsheetError: the file cannot be read at all.
        HeaderError: no sheet has the required headers.
    """
    import fastexcel
    import polars as pl

    path = Path(path)
    info = inspect_workbook(path, limits=limits)
    candidates = _candidate_sheets(info, sheet)
    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # fastexcel's own error types: unreadable
        raise SpreadsheetError(path, f"cannot be read: {exc}") from None
    first_error: HeaderError | None = None
    for name in candidates:
        with zipfile.ZipFile(path) as archive:
            precheck_sheet(archive, info.sheets[name], path, name, limits)
            # The sheet scan (hidden rows, merges, formulas) runs beside fastexcel's load.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sheet-scan") as pool:
                pending = pool.submit(scan_sheet, archive, info.sheets[name], path, name, limits)
                try:
                    data = reader.load_sheet(name, header_row=None, dtypes="string").to_polars()
                except Exception as exc:  # fastexcel's own error types; the scan's errors first
                    pending.result()
                    raise SpreadsheetError(path, f"cannot be read: {exc}", sheet=name) from None
                scan = pending.result()
        if scan.hidden_rows or scan.merged or scan.uncached_formulas:
            return None
        head = data.head(schema.header_search_rows)
        rows = [(index + 1, list(row)) for index, row in enumerate(head.iter_rows())]
        try:
            mapping, header_cells, header_row = schema.find_header(path, name, iter(rows))
        except HeaderError as exc:
            first_error = first_error or exc
            continue
        names = data.columns
        frame = data.slice(header_row).select(
            [pl.col(names[i]).alias(mapping[i]) for i in sorted(mapping) if i < len(names)]
        )
        if frame.width != len(mapping):
            return None  # columns fastexcel could not place: the row-by-row reader decides
        frame = frame.with_columns(
            __row=pl.int_range(header_row + 1, header_row + 1 + frame.height, dtype=pl.Int64)
        )
        columns = {field: str(header_cells[i]).strip() for i, field in mapping.items()}
        return SheetFrame(name, frame, columns)
    raise _no_table(path, candidates, first_error)
