"""One result type for every bot run: a row per item built from its ledger state, and the workbook.

The ledger is the truth about each item, so a run's report is read back from it
(never kept on the side): an item ``done`` gets the bot's own "done" status
(``Raised``, ``Uploaded`` ...), every other state a generic one; the reason,
attempts and last evidence come from the item; a bot adds its own columns.

Example:
    >>> run = BotRun(run_id="r1", bot="purchase_orders", title="Purchase orders", results=[
    ...     ResultRow(key="REQ-1", status=STATUS_BUSINESS, reason_code="INVALID_GTIN")])
    >>> run.counts, run.exit_code
    ({'Business exception': 1}, 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from bots.runtime.ledger import WorkItem
from connectors.excel import ColumnFormat

__all__ = [
    "EXCEPTION_STATUSES",
    "STANDARD_COLUMNS",
    "STATUS_BUSINESS",
    "STATUS_FAILED",
    "STATUS_NEEDS_REVIEW",
    "STATUS_PENDING",
    "BotRun",
    "ResultColumn",
    "ResultRow",
    "item_fields",
    "write_results_workbook",
]

STATUS_BUSINESS = "Business exception"
STATUS_FAILED = "Failed (system error)"
STATUS_NEEDS_REVIEW = "Needs review"
STATUS_PENDING = "Not processed"
EXCEPTION_STATUSES = frozenset({STATUS_BUSINESS, STATUS_FAILED, STATUS_NEEDS_REVIEW, STATUS_PENDING})
_BY_STATE = {
    "business_exception": STATUS_BUSINESS,
    "failed": STATUS_FAILED,
    "needs_review": STATUS_NEEDS_REVIEW,
}


@dataclass(frozen=True)
class ResultColumn:
    """A column of the results sheet: the row field it shows, its header, its format."""

    key: str
    header: str
    kind: ColumnFormat = "text"


STANDARD_COLUMNS = {
    "status": ResultColumn("status", "Status"),
    "reason_code": ResultColumn("reason_code", "Reason code"),
    "reason": ResultColumn("reason", "Reason"),
    "attempts": ResultColumn("attempts", "Attempts", "int"),
    "evidence": ResultColumn("evidence", "Evidence", "link"),
}
"""The generic columns every bot's sheet can place among its own."""


class ResultRow(BaseModel):
    """What happened to one item; bots subclass it to add their own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: str
    reason_code: str | None = None
    reason: str | None = None
    attempts: int = 0
    item_id: int | None = None
    evidence: str | None = None


def item_fields(item: WorkItem | None, done_status: str) -> dict[str, Any]:
    """The generic fields of a row, from the item's ledger state.

    ``done_status`` is the bot's status for a ``done`` item; an item the ledger
    does not hold, or one still pending or leased, is ``Not processed``.
    """
    if item is None:
        return {"status": STATUS_PENDING, "reason": "not added to the ledger"}
    common: dict[str, Any] = {
        "attempts": item.attempts,
        "item_id": item.id,
        "evidence": item.evidence[-1].path if item.evidence else None,
    }
    state = str(item.state)
    if state == "done":
        return {**common, "status": done_status}
    status = _BY_STATE.get(state, STATUS_PENDING)
    return {
        **common,
        "status": status,
        "reason_code": item.reason_code,
        "reason": item.reason_message or None,
    }


R = TypeVar("R", bound=ResultRow)


@dataclass
class BotRun(Generic[R]):
    """The outcome of one run of a bot: a row per item, and why it stopped early, if it did."""

    run_id: str
    results: list[R]
    bot: str = ""
    title: str = ""
    source: Path | None = None
    workbook: Path | None = None
    dry_run: bool = False
    retries: int = 0
    stopped: str | None = None
    """``PORTAL_UNAVAILABLE`` or ``LOGIN_REJECTED`` when the breaker stopped the run."""
    stopped_message: str = ""
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def source_name(self) -> str:
        """The input file's name ("" without one)."""
        return self.source.name if self.source is not None else ""

    @property
    def counts(self) -> dict[str, int]:
        """How many items ended in each status."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    @property
    def exceptions(self) -> list[R]:
        """The items people must act on (or that a later run must finish)."""
        return [r for r in self.results if r.status in EXCEPTION_STATUSES]

    @property
    def exit_code(self) -> int:
        """0 when every item is done, 1 otherwise (exceptions, or the run stopped early)."""
        return 1 if (self.exceptions or self.stopped) else 0


def write_results_workbook(
    run: BotRun[Any], path: Path, *, sheet: str, columns: Sequence[ResultColumn]
) -> Path:
    """The results workbook: a summary with a chart, then one row per item in ``columns``."""
    from connectors.excel import ChartSpec, Column, Sheet, Summary, write_report

    counts = run.counts
    figures: list[tuple[str, Any]] = []
    if run.source is not None:
        figures.append(("Input file", str(run.source)))
    figures += [("Run", run.run_id), ("Started", run.started_at), (sheet, len(run.results))]
    if run.stopped:
        figures.append(("Run stopped early", f"{run.stopped}: {run.stopped_message}"))
    figures += list(counts.items())
    summary = Summary(
        title=run.title + (" (dry run)" if run.dry_run else ""),
        figures=figures,
        charts=[ChartSpec(f"{sheet} by outcome", list(counts), {sheet: list(counts.values())})]
        if counts
        else [],
    )
    data = Sheet(
        sheet,
        [Column(c.key, c.header, c.kind) for c in columns],
        [r.model_dump() for r in run.results],
        highlight=("status", set(EXCEPTION_STATUSES)),
    )
    return write_report(path, [data], summary=summary)
