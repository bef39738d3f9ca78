"""What every bot's input reading shares: problems found at a row and field, London's today,
and grouping rows into items.

Pure: no I/O. A bot reads its file with the connectors (cells kept raw with
``connectors.rows.RAW``), converts the cells itself so a bad cell becomes a
:class:`Problem` of its item (never a dropped row), and groups rows into items
by their key in file order with :func:`group_rows`.

Example:
    >>> str(Problem(code="INVALID_QUANTITY", field="quantity", row=4, value="0", message="must be > 0"))
    "row 4, quantity ('0'): must be > 0"
    >>> group_rows(["A", "B", "A"], key=lambda ref: ref)
    {'A': ['A', 'A'], 'B': ['B']}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

__all__ = ["LONDON", "Problem", "group_rows", "london_today"]

LONDON = ZoneInfo("Europe/London")

T = TypeVar("T")


def london_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Europe/London (UK calendar dates: need-by, delivery, receipt)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(LONDON).date()


class Problem(BaseModel):
    """One thing wrong with an item, at one row and field of the input file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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


def group_rows(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """Rows grouped by ``key``, groups in order of first appearance, rows in file order."""
    groups: dict[str, list[T]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups
