"""``invoice-matching``: match supplier invoices to orders and receipts, and act on them.

Two modes, one parameter model (:class:`InvoiceMatchingParameters`):

* **portal mode** (default): the inbox bot (:mod:`bots.invoices`) reads the portal's
  open invoices, its order and goods-receipt exports, matches them and Approves,
  Holds or Rejects each open invoice in the portal, exactly once (work items).
* **file mode** (``orders`` + ``invoices``, optionally ``receipts``): no portal; the
  files are matched offline, as ``procbots match`` does, and the report written.

Either way the run publishes a markdown summary (counts by decision, the top hold
reasons, a link to the report), a table of the documents held or rejected and a
table of hold reasons; the bot's log lines reach the run's logs. Deployed hourly,
08:00-18:00 on weekdays (``prefect.yaml``).

Example:
    >>> invoice_matching_flow(InvoiceMatchingParameters(  # doctest: +SKIP
    ...     orders="inbox/orders.csv", receipts="inbox/receipts.csv", invoices=["inbox/invoices"]))
    >>> invoice_matching_flow(InvoiceMatchingParameters(portal_url="http://127.0.0.1:8765"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, task
from prefect.client.schemas.objects import State
from pydantic import Field, model_validator

from flows.alerts import alert_on_crashed, alert_on_failure
from flows.common import (
    FlowParameters,
    RunSummary,
    artifact_key,
    browser_session_slots,
    capped_task_runner,
    current_flow_run_id,
    finish,
    flow_logging,
    publish_summary,
)

if TYPE_CHECKING:
    from bots.domain.matching import Decision

__all__ = [
    "InvoiceMatchingParameters",
    "MatchingOutcome",
    "invoice_matching_flow",
    "run_invoice_matching",
]

BOT = "invoice_matching"
TITLE = "Invoice matching"


class InvoiceMatchingParameters(FlowParameters):
    """What to match: the portal's inbox (default) or files (``orders`` + ``invoices``)."""

    portal_url: str | None = Field(
        None, description="Portal mode: the portal's base URL; empty = settings portal.url"
    )
    orders: str | None = Field(None, description="File mode: orders CSV/XLSX (po_number, line_no, ...)")
    receipts: str | None = Field(None, description="File mode: goods receipts CSV/XLSX (3-way lines)")
    invoices: list[str] = Field(
        default_factory=list, description="File mode: invoice files or folders (UBL XML, CSV, XLSX)"
    )
    policy: str | None = Field(
        None, description='TOML of matching tolerances over the settings, with [suppliers."GB..."]'
    )
    out: str | None = Field(
        None, description="Report workbook path; empty = outbox/invoice-matching-<run>.xlsx"
    )
    workers: int | None = Field(
        None, ge=1, le=32, description="Portal mode: browser contexts at once; empty = settings"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> InvoiceMatchingParameters:
        files = bool(self.orders or self.receipts or self.invoices)
        if files and self.portal_url:
            raise ValueError("give either portal_url (portal mode) or orders/invoices files (file mode)")
        if files and not (self.orders and self.invoices):
            raise ValueError("file mode needs both orders and invoices (receipts for 3-way lines)")
        return self

    @property
    def mode(self) -> Literal["portal", "files"]:
        """``files`` when input files are given, else ``portal``."""
        return "files" if self.orders else "portal"


@dataclass
class MatchingOutcome:
    """What a run decided, in plain data (the task's return value, the CLI's output)."""

    mode: str
    counts: dict[str, int]
    rows: list[dict[str, Any]]
    hold_reasons: list[dict[str, Any]]
    report: Path | None
    links: dict[str, Path | str] = field(default_factory=dict)
    exit_code: int = 0

    def message(self) -> str:
        """One line: the counts and the top hold reasons."""
        parts = [f"{n} {name.replace('_', ' ')}" for name, n in self.counts.items() if n]
        text = f"{TITLE} ({self.mode}): " + (", ".join(parts) if parts else "nothing to match")
        if self.hold_reasons:
            top = ", ".join(f"{r['code']} x{r['count']}" for r in self.hold_reasons[:3])
            text += f"; top hold reasons: {top}"
        return text


def _run_stamp() -> str:
    """``20260123T101500Z-<flow run id prefix>`` (a random suffix outside a flow run)."""
    import uuid

    run_id = current_flow_run_id()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{str(run_id)[:8] if run_id else uuid.uuid4().hex[:6]}"


def _decision_rows(decisions: list[Decision]) -> list[dict[str, Any]]:
    """The held and rejected documents, one row each, for the table artifact."""
    rows = []
    for d in decisions:
        if d.decision == "approve":
            continue
        rows.append(
            {
                "invoice_number": d.invoice_number,
                "document_type": d.document_type,
                "supplier_vat": d.supplier_vat or "",
                "po_number": d.po_number or "",
                "gross_amount": str(d.gross_amount),
                "decision": d.decision,
                "reason_codes": ", ".join(dict.fromkeys(d.codes)),
                "what_to_check": d.reasons[0].message if d.reasons else "",
            }
        )
    return rows


def _hold_reasons(decisions: list[Decision]) -> list[dict[str, Any]]:
    """Reason codes of held documents, most frequent first (documents, not lines)."""
    counter: Counter[str] = Counter()
    for d in decisions:
        if d.decision == "hold":
            counter.update(dict.fromkeys(d.codes, 1))
    return [{"code": code, "count": n} for code, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _match_files(params: InvoiceMatchingParameters) -> MatchingOutcome:
    """File mode: the columnar inputs of ``procbots match`` (:mod:`connectors.match_columns`),
    the engine, and the report workbook."""
    from bots.domain.match_tables import match_tables
    from bots.match_report import write_match_report
    from config.settings import get_settings
    from connectors.match_columns import load_bulk
    from connectors.match_inputs import load_policy

    assert params.orders is not None
    policy = load_policy(Path(params.policy) if params.policy else None)
    # An invoice file that cannot be read at all is named; the rest of the batch is decided.
    files = load_bulk(
        Path(params.orders),
        Path(params.receipts) if params.receipts else None,
        [Path(p) for p in params.invoices],
    )
    decisions = [*match_tables(files.tables, policy).decisions(), *files.conflicts]
    out = Path(params.out) if params.out else None
    if out is None:
        out = get_settings().paths.resolve("outbox") / f"invoice-matching-{_run_stamp()}.xlsx"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = write_match_report(out, decisions)
    counts: dict[str, int] = Counter(d.decision for d in decisions)
    unreadable = [
        {"invoice_number": "", "decision": "unreadable", "reason_codes": "", "what_to_check": problem}
        for problem in files.unreadable
    ]
    return MatchingOutcome(
        mode="files",
        counts={kind: counts.get(kind, 0) for kind in ("approve", "hold", "reject")}
        | ({"unreadable": len(unreadable)} if unreadable else {}),
        rows=unreadable + _decision_rows(decisions),
        hold_reasons=_hold_reasons(decisions),
        report=report,
        links={"report": report},
        exit_code=1 if unreadable or any(d.decision != "approve" for d in decisions) else 0,
    )


def _decide_in_portal(params: InvoiceMatchingParameters) -> MatchingOutcome:
    """Portal mode: the inbox bot, then its report."""
    from bots.invoices import run_inbox
    from config.settings import get_settings

    settings = get_settings()
    policy = None
    if params.policy:
        from connectors.match_inputs import load_policy

        policy = load_policy(Path(params.policy))
    result = run_inbox(
        params.portal_url or settings.portal.url,
        workers=params.workers,
        policy=policy,
        run_id=_run_stamp(),  # evidence and work folders named after the flow run
    )
    rows = _decision_rows(result.decisions)
    for outcome in result.outcomes:
        if outcome.get("state") != "done":
            rows.append(
                {
                    "invoice_number": outcome.get("idempotency_key", ""),
                    "decision": outcome.get("state", ""),
                    "reason_codes": outcome.get("reason_code") or "",
                    "what_to_check": outcome.get("reason") or "",
                }
            )
    report = result.report
    if report is not None and params.out:
        target = Path(params.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        report = Path(report.replace(target))
    links: dict[str, Path | str] = {"work folder": result.folder}
    if report is not None:
        links = {"report": report, **links}
    return MatchingOutcome(
        mode="portal",
        counts=result.counts,
        rows=rows,
        hold_reasons=_hold_reasons(result.decisions),
        report=report,
        links=links,
        exit_code=result.exit_code,
    )


def run_invoice_matching(params: InvoiceMatchingParameters) -> MatchingOutcome:
    """One run in either mode, without Prefect (the CLI; the flow's tasks call the same).

    Raises:
        connectors.match_inputs.MatchInputError: a file mode input (or the policy file) is
            missing or unreadable; the message names the file, row and field.
        connectors.portal.pages.base.LoginRejected: the portal refused the credentials.
    """
    if params.mode == "files":
        return _match_files(params)
    return _decide_in_portal(params)


@task(name="match-invoice-files")
def match_files_task(params: InvoiceMatchingParameters) -> MatchingOutcome:
    """File mode as one Prefect task."""
    return _match_files(params)


@task(name="decide-invoices-in-portal")
def decide_in_portal_task(params: InvoiceMatchingParameters) -> MatchingOutcome:
    """Portal mode as one Prefect task (per-invoice state lives in the ledger, not in Prefect)."""
    return _decide_in_portal(params)


def _publish(outcome: MatchingOutcome, summary: RunSummary) -> None:
    from prefect.artifacts import create_table_artifact

    publish_summary(
        BOT, summary.title, summary.counts, outcome.rows, outcome.links, message=outcome.message(),
        table_name="exceptions",
    )  # fmt: skip
    create_table_artifact(
        outcome.hold_reasons or [{"code": "(none)", "count": 0}],
        key=artifact_key(BOT, "hold-reasons"),
        description=f"{TITLE}: documents held or rejected by reason code",
    )


@flow(
    name="invoice-matching",
    description="Matches supplier invoices to orders and goods receipts (2/3-way) and approves, "
    "holds or rejects them in the portal (or matches files offline).",
    task_runner=capped_task_runner(2),
    on_failure=[alert_on_failure],
    on_crashed=[alert_on_crashed],
)
def invoice_matching_flow(
    params: InvoiceMatchingParameters = InvoiceMatchingParameters(),  # noqa: B008
) -> State:
    """Runs one mode, publishes the summary artifacts, and ends Completed unless items failed."""
    from config.settings import get_settings

    log = flow_logging(BOT)
    started = datetime.now(UTC)
    log.info("invoice matching started", mode=params.mode)
    if params.mode == "files":
        outcome = match_files_task(params)
    else:
        workers = params.workers or get_settings().browser.contexts
        with browser_session_slots(workers):
            outcome = decide_in_portal_task(params)
    for reason in outcome.hold_reasons:
        log.info("hold reason", code=reason["code"], documents=reason["count"])
    log.info("invoice matching finished", mode=outcome.mode, **outcome.counts)
    summary = RunSummary(
        bot=BOT, title=TITLE, counts=dict(outcome.counts), rows=outcome.rows, links=outcome.links,
        started_at=started,
    )  # fmt: skip
    _publish(outcome, summary)
    # Holds and rejections are the run's work, not its failure: only failed items fail it,
    # and only items the bot could not handle (business exceptions) alert.
    return finish(summary, publish=False)
