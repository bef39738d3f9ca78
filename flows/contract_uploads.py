"""``contract-uploads``: signed contracts from the drop folder into the portal's contract register.

The flow is thin: one Prefect task runs the contract upload bot
(:func:`bots.contracts.run_contract_uploads`) over everything waiting in the drop folder;
the bot's work-item runner does the per-contract loop, retries and checkpoints. The flow
then publishes:

* a markdown summary (counts by outcome, a link to the contracts report workbook),
* a table artifact with one row per contract (outcome, reason code and reason, where the
  file went),
* the bot's structured log lines in the run's logs.

Its deployment runs it every 15 minutes (``prefect.yaml``). Rejected contracts (bad
details, encrypted or fake PDFs) leave the run ``Completed`` with an alert: people must
fix the data; contracts that failed on system errors after every retry make it ``Failed``.
Browser sessions hold slots of the global concurrency limit ``portal-browser-sessions``.

Example:
    >>> contract_uploads_flow(ContractUploadsParameters(folder="var/contracts"))  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

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
    from bots.contracts import ContractRunResult

__all__ = ["ContractUploadsParameters", "contract_uploads_flow", "flow_counts", "upload_contracts_task"]

BOT = "contract_uploads"
TITLE = "Contract uploads"


class ContractUploadsParameters(FlowParameters):
    """Where the contracts are and where they go (the run form in the Prefect UI)."""

    folder: str = Field(
        "contracts",
        description="Drop folder (under the data root unless absolute): contracts arrive in its inbox/ "
        "(or straight in it) as PDFs with a metadata workbook or a JSON sidecar each",
    )
    portal_url: str | None = Field(None, description="Portal base URL; empty = settings portal.url")
    dry_run: bool = Field(False, description="Validate and report only: claim, upload and move nothing")
    workers: int | None = Field(
        None, ge=1, le=32, description="Browser contexts working at once; empty = settings browser.contexts"
    )
    stable_for_s: float = Field(
        2.0,
        ge=0,
        le=600,
        description="Seconds a file must stay unchanged before it is taken (copies in progress)",
    )


def flow_counts(result: ContractRunResult) -> dict[str, int]:
    """Contracts per outcome, with rejections as ``business_exception`` (what ``finish`` reads)."""
    counts = dict(result.counts)
    counts["business_exception"] = counts.pop("rejected", 0) + len(result.quarantined_metadata)
    return {k: v for k, v in counts.items() if v or k in ("uploaded", "business_exception", "failed")}


def _folder(params: ContractUploadsParameters) -> Path:
    from config.settings import get_settings

    folder = Path(params.folder)
    return folder if folder.is_absolute() else get_settings().paths.root / folder


@task(name="upload-contracts")
def upload_contracts_task(folder: str, params: ContractUploadsParameters) -> ContractRunResult:
    """Every contract waiting in ``folder`` through the bot (its runner loops over the contracts)."""
    from bots.contracts import run_contract_uploads

    run_id = current_flow_run_id()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_contract_uploads(
        folder,
        portal_url=params.portal_url,
        dry_run=params.dry_run,
        workers=params.workers,
        stable_for_s=params.stable_for_s,
        run_id=f"{stamp}-{str(run_id)[:8]}" if run_id else None,
    )


@flow(
    name="contract-uploads",
    description="Uploads signed contracts from the drop folder to the contract register, exactly once "
    "each, verifies document and details, and quarantines the rest with reasons.",
    task_runner=capped_task_runner(1),
    on_failure=[alert_on_failure],
    on_crashed=[alert_on_crashed],
)
def contract_uploads_flow(
    params: ContractUploadsParameters = ContractUploadsParameters(),  # noqa: B008
) -> State:
    """Uploads what is in the drop folder; publishes the outcome per contract and the report."""
    from config.settings import get_settings

    log = flow_logging(BOT)
    started = datetime.now(UTC)
    folder = _folder(params)
    log.info("contract uploads started", folder=str(folder), dry_run=params.dry_run)
    if params.dry_run:
        result = upload_contracts_task(str(folder), params)
    else:
        with browser_session_slots(params.workers or get_settings().browser.contexts):
            result = upload_contracts_task(str(folder), params)
    rows = [o.as_row() for o in result.outcomes]
    rows += [
        {"contract_id": "", "outcome": "rejected", "reason_code": "METADATA_UNREADABLE", "reason": line}
        for line in result.quarantined_metadata
    ]
    for row in rows:
        if row["outcome"] in ("rejected", "failed", "pending"):
            log.warning(
                "contract not uploaded",
                **{k: row.get(k, "") for k in ("contract_id", "reason_code", "reason")},
            )
    counts = flow_counts(result)
    log.info("contract uploads finished", **counts)
    links: dict[str, Path | str] = {"contracts report": result.report} if result.report else {}
    summary = RunSummary(
        bot=BOT,
        title=TITLE + (" (dry run)" if params.dry_run else ""),
        counts=counts,
        rows=rows,
        links=links,
        started_at=started,
    )
    return finish(summary)
