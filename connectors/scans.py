"""Point-of-use scan exports (Scan4Safety): CSV or XLSX rows of GS1 barcode scans.

Columns (headers matched case-, space- and punctuation-insensitively; aliases in
brackets): ``gtin`` (``barcode``), ``po_number`` (``po``, ``purchase_order``),
``po_line`` (``line_no``, ``line``; may be empty), ``quantity`` (``qty``),
``scanned_at`` (``scan_time``, ``timestamp``; a time without a zone is London time),
``location`` (``ward``, ``store``; optional).

A row with a bad cell (a GTIN whose check digit is wrong, a quantity that is not a
positive number, a scan time that is no time) is one error naming the file, row and
column; the other rows are read.

Example:
    >>> scans, errors = load_scans("ward-7-scans.csv")  # doctest: +SKIP
    >>> [str(e) for e in errors]  # doctest: +SKIP
    ["ward-7-scans.csv row 4, column 'gtin' ('5012345678901'): GTIN ...: check digit does not match"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bots.domain.identifiers import check_gtin
from bots.domain.receipts import Scan
from connectors.formats import read_table
from connectors.rows import RowError

__all__ = ["SCAN_ALIASES", "ScanRow", "load_scans"]

SCAN_ALIASES: dict[str, tuple[str, ...]] = {
    "gtin": ("barcode", "gtin14", "gtin13"),
    "po_number": ("po", "purchase_order", "order_number"),
    "po_line": ("line_no", "line", "po_line_no"),
    "quantity": ("qty", "units"),
    "scanned_at": ("scan_time", "timestamp", "scanned"),
    "location": ("ward", "store", "department"),
}


class ScanRow(BaseModel):
    """One row of a scan export."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    gtin: str
    po_number: str = Field(min_length=1)
    po_line: int | None = Field(default=None, ge=1)
    quantity: Decimal = Field(gt=0)
    scanned_at: dt.datetime
    location: str = ""

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str) -> str:
        check = check_gtin(value)
        if not check.valid:
            raise ValueError(check.message)
        return check.normalised


def load_scans(
    path: str | Path, *, aliases: Mapping[str, Iterable[str]] | None = None
) -> tuple[list[Scan], list[RowError]]:
    """The scans of one export, and an error for each row that could not be read.

    Raises:
        connectors.rows.SpreadsheetError: the file cannot be read at all.
    """
    result = read_table(path, ScanRow, aliases={**SCAN_ALIASES, **(aliases or {})})
    scans = [
        Scan(
            gtin=row.gtin,
            po_number=row.po_number,
            po_line=row.po_line,
            quantity=row.quantity,
            scanned_at=row.scanned_at,
            location=row.location,
            row=number,
        )
        for number, row in zip(result.row_numbers, result.rows, strict=True)
    ]
    return scans, list(result.errors)
