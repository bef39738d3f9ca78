"""``purchase-orders``: approved requisitions in, purchase orders raised in the portal, results out.

The flow is thin: it picks the input (one file, or every file waiting in the
requisitions drop folder), runs the purchase-order bot (:mod:`bots.purchase_orders`)
on each file inside **one Prefect task per file** (the bot's work-item runner does
the per-requisition loop, retries and checkpoints; Prefect sees counts, artifacts
and logs), and publishes:

* a markdown summary (counts by outcome, links to the results workbook and PEPPOL orders),
* a table artifact with one row per requisition (status, PO number, reason),
* the bot's structured log lines in the run's logs.

Business exceptions (bad requisitions) leave the run ``Completed`` with an alert;
requisitions that failed on system errors after every retry make it ``Failed``.
Browser sessions hold slots of the global concurrency limit ``portal-browser-sessions``
(when it exists) for as long as the bot runs.

Example:
    >>> purchase_orders_flow(PurchaseOrdersParameters(input="inbox/requisitions.xlsx"))  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.client.schemas.objects import State
from pydantic import Field

from flows.alerts import alert_on_crashed, alert_on_failure
from flows.common import (
    FlowParameters,
    RunSummary,
    browser_session_slots,
    capped_task_runner,
    current_flow_run_id,
    finish,
    flow_logging,
)

if TYPE_CHECKING:
    from bots.purchase_orders import PurchaseOrderRun

__all__ = [
    "PurchaseOrdersParameters",
    "purchase_orders_flow",
    "raise_purchase_orders_task",
    "result_rows",
    "status_counts",
]

BOT = "purchase_orders"
TITLE = "Purchase orders"

# Result statuses as the keys Prefect summaries and `finish` count by.
_COUNT_KEYS = {
    "Raised": "raised",
    "Already in portal": "already_in_portal",
    "Raised in an earlier run": "raised_earlier",
    "Would raise (dry run)": "would_raise",
    "Business exception": "business_exception",
    "Failed (system error)": "failed",
    "Needs review": "needs_review",
    "Not processed": "not_processed",
}


class PurchaseOrdersParameters(FlowParameters):
    """What to raise, where, and how (rendered as the run form in the Prefect UI)."""

    input: str | None = Field(
        None,
        description="Requisition workbook (.xlsx) or CSV, one row per line; empty = every file in the "
        "drop folder's inbox",
    )
    drop_folder: str = Field(
        "requisitions",
        description="Drop folder read when no input is given (under the data root unless absolute); "
        "files move to done/, failed/ or quarantine/",
    )
    portal_url: str | None = Field(None, description="Portal base URL; empty = settings portal.url")
    dry_run: bool = Field(False, description="Check and search only: create no purchase order")
    contexts: int | None = Field(
        None, ge=1, le=32, description="Browser contexts working at once; empty = settings browser.contexts"
    )
    peppol: bool = Field(False, description="Also write a PEPPOL BIS Order 3 XML per purchase order")
    buyer_name: str = Field("", description="Buying organisation named in PEPPOL orders")


def status_counts(runs: list[PurchaseOrderRun]) -> dict[str, int]:
    """Requisitions per outcome over every file of the run (keys like ``raised``, ``failed``)."""
    counts: dict[str, int] = {}
    for run in runs:
        for status, count in run.counts.items():
            key = _COUNT_KEYS.get(status, status.lower().replace(" ", "_"))
            counts[key] = counts.get(key, 0) + count
    return counts


def result_rows(runs: list[PurchaseOrderRun]) -> list[dict[str, Any]]:
    """One table row per requisition: what happened and what to do about it."""
    rows = []
    for run in runs:
        for result in run.results:
            rows.append(
                {
                    "file": run.source_name,
                    "requisition_ref": result.requisition_ref,
                    "status": result.status,
                    "po_number": result.po_number or "",
                    "gross_total": str(result.gross_total) if result.gross_total is not None else "",
                    "reason_code": result.reason_code or "",
                    "reason": result.reason or "",
                    "link": result.link or "",
                }
            )
    return rows


@task(name="raise-purchase-orders")
def raise_purchase_orders_task(source: str, params: PurchaseOrdersParameters) -> PurchaseOrderRun:
    """One requisition file through the bot (its runner loops over the requisitions)."""
    from bots.domain.models import Party
    from bots.purchase_orders import run_purchase_orders

    run_id = current_flow_run_id()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_purchase_orders(
        source,
        portal_url=params.portal_url,
        dry_run=params.dry_run,
        contexts=params.contexts,
        peppol=params.peppol,
        buyer=Party(name=params.buyer_name) if params.buyer_name else None,
        run_id=f"{stamp}-{str(run_id)[:8]}" if run_id else None,
    )


def _drop_folder(params: PurchaseOrdersParameters) -> Path:
    from config.settings import get_settings

    folder = Path(params.drop_folder)
    return folder if folder.is_absolute() else get_settings().paths.root / folder


@flow(
    name="purchase-orders",
    description="Raises purchase orders in the portal from a requisition spreadsheet, exactly once "
    "each, and returns a results workbook.",
    task_runner=capped_task_runner(2),
    on_failure=[alert_on_failure],
    on_crashed=[alert_on_crashed],
)
def purchase_orders_flow(
    params: PurchaseOrdersParameters = PurchaseOrdersParameters(),  # noqa: B008
) -> State:
    """Raises the requisitions of one file or of the drop folder; publishes the results."""
    from config.settings import get_settings
    from connectors.dropfolder import DropFolder
    from connectors.rows import SpreadsheetError

    log = flow_logging(BOT)
    started = datetime.now(UTC)
    contexts = params.contexts or get_settings().browser.contexts
    runs: list[PurchaseOrderRun] = []
    if params.input:
        log.info("purchase orders started", input=params.input, dry_run=params.dry_run)
        with browser_session_slots(contexts):
            runs.append(raise_purchase_orders_task(params.input, params))
    else:
        folder = DropFolder(_drop_folder(params))
        log.info("purchase orders started", drop_folder=str(folder.root), dry_run=params.dry_run)
        for claimed in folder:
            try:
                with browser_session_slots(contexts):
                    runs.append(raise_purchase_orders_task(str(claimed.path), params))
            except SpreadsheetError as exc:
                log.warning("requisition file refused", file=claimed.name, reason=str(exc))
                claimed.quarantine("UNREADABLE_REQUISITIONS", str(exc))
                continue
            except Exception as exc:
                claimed.fail("PROCESSING_ERROR", f"{type(exc).__name__}: {exc}")
                raise
            claimed.done()
    counts = status_counts(runs)
    rows = result_rows(runs)
    links: dict[str, Path | str] = {}
    for run in runs:
        if run.workbook is not None:
            links[f"results {run.source_name}"] = run.workbook
        if run.orders_xml:
            links[f"PEPPOL orders {run.source_name}"] = run.orders_xml[0].parent
    for row in rows:
        if row["status"] not in (
            "Raised",
            "Already in portal",
            "Raised in an earlier run",
            "Would raise (dry run)",
        ):
            log.warning(
                "requisition not raised", **{k: row[k] for k in ("requisition_ref", "status", "reason")}
            )
    log.info("purchase orders finished", **counts)
    summary = RunSummary(
        bot=BOT,
        title=TITLE + (" (dry run)" if params.dry_run else ""),
        counts=counts,
        rows=rows,
        links=links,
        started_at=started,
    )
    return finish(summary)
