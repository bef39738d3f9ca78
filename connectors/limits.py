"""How many data rows an input file may hold, checked before the file is loaded.

A bot's work-item input (a requisition sheet, a contract metadata workbook, a scan file)
is bounded by the setting ``limits.work_item_rows`` (100,000 data rows by default); the
bulk matching inputs (order books, receipts, invoice rows) by ``limits.bulk_rows``, much
larger. The readers of :mod:`connectors.excel` and :mod:`connectors.csvfiles` apply the
work-item limit unless given another, so every bot gets it without asking: a sheet is
measured by its declared dimension (or by counting its ``<row>`` elements when it
declares none) and a CSV file by counting its lines, before any row is converted, and a
file over the limit is one :class:`TooManyRowsError` naming the file, its row count and
the setting. Without it, a 1,048,575-row requisition sheet took 9.7 GB to load.

Example:
    >>> RowLimit(100_000, "limits.work_item_rows").check("requisitions.csv", 250_000)
    Traceback (most recent call last):
    ...
    connectors.limits.TooManyRowsError: requisitions.csv: has 250,000 data rows, over the limit of \
100,000 (setting limits.work_item_rows); split the file, or raise the setting
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors.rows import SpreadsheetError

__all__ = ["RowLimit", "TooManyRowsError", "text_lines"]


def text_lines(data: bytes) -> int:
    """The lines of a text file's bytes, counted at memchr speed: an upper bound of its CSV
    records (a quoted field may span lines). Lines may end in LF, CRLF or, in old Mac
    files, CR alone, which the csv module also reads as a line end.

    Example:
        >>> text_lines(b"a,b\\r\\n1,2\\r\\n"), text_lines(b"a,b\\r1,2"), text_lines(b"")
        (2, 2, 0)
    """
    if not data:
        return 0
    return max(data.count(b"\n"), data.count(b"\r")) + (0 if data.endswith((b"\n", b"\r")) else 1)


class TooManyRowsError(SpreadsheetError):
    """A file with more data rows than its limit allows, refused before it is loaded."""


@dataclass(frozen=True, slots=True)
class RowLimit:
    """The most data rows (rows below the header) a file may hold, and the setting that says so."""

    rows: int
    setting: str

    @classmethod
    def work_items(cls) -> RowLimit:
        """The configured limit of a bot's work-item input (``limits.work_item_rows``)."""
        from config.settings import get_settings

        return cls(get_settings().limits.work_item_rows, "limits.work_item_rows")

    @classmethod
    def bulk(cls) -> RowLimit:
        """The configured limit of a bulk matching input (``limits.bulk_rows``)."""
        from config.settings import get_settings

        return cls(get_settings().limits.bulk_rows, "limits.bulk_rows")

    def check(self, file: str | Path, rows: int, *, sheet: str | None = None, counted: str = "") -> None:
        """Refuse ``rows`` data rows when they are over the limit.

        Args:
            file: the file, as the error names it.
            rows: its data rows (or an upper bound of them, cheaply counted).
            sheet: the sheet, for a workbook.
            counted: how ``rows`` was counted, added to the message (``"by its declared
                dimension A1:L1048576"``).

        Raises:
            TooManyRowsError: ``rows`` is over the limit.
        """
        if rows > self.rows:
            how = f" ({counted})" if counted else ""
            raise TooManyRowsError(
                file,
                f"has {rows:,} data rows{how}, over the limit of {self.rows:,} "
                f"(setting {self.setting}); split the file, or raise the setting",
                sheet=sheet,
            )
