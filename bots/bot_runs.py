"""The registry's run callables of the purchase-order, invoice-matching and contract-upload bots.

Each is ``run(params, context) -> BotRun``: it calls the bot module's own run
function and puts what came back into the registry's one outcome shape (counts,
exit code, reports, exception rows, the CLI's lines and JSON). Heavy imports stay
inside the functions, so the registry lists bots without starting a browser.

Transitional: once every bot module returns the runtime's one result type with
the :class:`bots.registry.RunOutcome` fields, these wrappers shrink to the parts
that are the bot's own (drop-folder loop, file mode of matching) and move into
their bot modules.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bots.registry import BotInputError, BotRun, RunContext

if TYPE_CHECKING:
    from bots.bot_parameters import (
        ContractUploadsParameters,
        GoodsReceiptsParameters,
        InvoiceMatchingParameters,
        PurchaseOrdersParameters,
    )
    from bots.domain.matching import Decision
    from bots.purchase_orders import PurchaseOrderRun

__all__ = [
    "hold_reasons",
    "run_contract_uploads_bot",
    "run_goods_receipts_bot",
    "run_invoice_matching_bot",
    "run_purchase_orders_bot",
]


# -- purchase orders ------------------------------------------------------------------------------

# Result statuses as the count keys the run page and the final state read.
_PO_COUNT_KEYS = {
    "Raised": "raised",
    "Already in portal": "already_in_portal",
    "Raised in an earlier run": "raised_earlier",
    "Would raise (dry run)": "would_raise",
    "Business exception": "business_exception",
    "Failed (system error)": "failed",
    "Needs review": "needs_review",
    "Not processed": "not_processed",
}
_PO_FINE = ("Raised", "Already in portal", "Raised in an earlier run", "Would raise (dry run)")


def _po_rows(runs: list[PurchaseOrderRun]) -> list[dict[str, Any]]:
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


def _po_outcome(runs: list[PurchaseOrderRun], params: PurchaseOrdersParameters) -> BotRun:
    counts: dict[str, int] = {}
    for run in runs:
        for status, count in run.counts.items():
            key = _PO_COUNT_KEYS.get(status, status.lower().replace(" ", "_"))
            counts[key] = counts.get(key, 0) + count
    rows = _po_rows(runs)
    reports: dict[str, Path | str] = {}
    for run in runs:
        if run.workbook is not None:
            reports[f"results {run.source_name}"] = run.workbook
        if run.orders_xml:
            reports[f"PEPPOL orders {run.source_name}"] = run.orders_xml[0].parent
    title = "Purchase orders" + (" (dry run)" if params.dry_run else "")
    shown: dict[str, int] = {}
    for run in runs:
        for status, n in run.counts.items():
            shown[status] = shown.get(status, 0) + n
    lines = [
        f"{title}: "
        + (", ".join(f"{n} {status.lower()}" for status, n in shown.items()) or "no requisitions")
    ]
    lines += [
        f"  {r['requisition_ref']}: {r['status']}: {r['reason']}" for r in rows if r["status"] not in _PO_FINE
    ]
    lines += [f"Results: {run.workbook}" for run in runs if run.workbook]
    data: dict[str, Any] = {
        "run_id": runs[0].run_id if len(runs) == 1 else [run.run_id for run in runs],
        "counts": shown,
        "results": [r.model_dump(mode="json") for run in runs for r in run.results],
        "workbook": str(runs[0].workbook) if len(runs) == 1 and runs[0].workbook else None,
        "peppol_orders": [str(p) for run in runs for p in run.orders_xml],
    }
    stopped = next((run for run in runs if run.stopped), None)
    data["stopped"] = stopped.stopped if stopped is not None else None
    if stopped is not None:
        lines.append(f"Run stopped early: {stopped.stopped}: {stopped.stopped_message}")
    return BotRun(
        title=title,
        counts=counts,
        stopped=stopped.stopped or "" if stopped else "",
        stopped_message=stopped.stopped_message if stopped else "",
        exit_code=max((run.exit_code for run in runs), default=0),
        reports=reports,
        exceptions=[r for r in rows if r["status"] not in _PO_FINE],
        rows=rows,
        lines=lines,
        data=data,
    )


def run_purchase_orders_bot(params: PurchaseOrdersParameters, context: RunContext) -> BotRun:
    """One requisition file (``input``), or every file waiting in the drop folder."""
    from bots.domain.models import Party
    from bots.purchase_orders import run_purchase_orders
    from config.logging import get_logger
    from connectors.dropfolder import DropFolder
    from connectors.rows import SpreadsheetError

    def one(source: str) -> PurchaseOrderRun:
        return run_purchase_orders(
            source,
            portal_url=params.portal_url or None,
            dry_run=params.dry_run,
            contexts=params.contexts or None,
            peppol=params.peppol,
            buyer=Party(name=params.buyer_name) if params.buyer_name else None,
            run_id=context.run_id,
        )

    if params.input:
        try:
            return _po_outcome([one(params.input)], params)
        except SpreadsheetError as exc:
            raise BotInputError(str(exc)) from None
    runs: list[PurchaseOrderRun] = []
    log = get_logger("purchase_orders")
    for claimed in DropFolder(Path(params.drop_folder)):
        try:
            runs.append(one(str(claimed.path)))
        except SpreadsheetError as exc:
            log.warning("requisition file refused", file=claimed.name, reason=str(exc))
            claimed.quarantine("UNREADABLE_REQUISITIONS", str(exc))
            continue
        except Exception as exc:
            claimed.fail("PROCESSING_ERROR", f"{type(exc).__name__}: {exc}")
            raise
        if runs[-1].stopped:
            # Its requisitions are not finished: the file waits in the inbox for the next run,
            # and so do the other files (the portal is down or refuses the sign-in).
            claimed.release()
            break
        claimed.done()
    return _po_outcome(runs, params)


# -- invoice matching -----------------------------------------------------------------------------


def hold_reasons(decisions: list[Decision]) -> list[dict[str, Any]]:
    """Reason codes of every held or rejected document, most frequent first.

    A document counts once per reason code it carries, so a ``DUPLICATE_INVOICE``
    rejection counts as much as a ``NOT_RECEIVED`` hold.
    """
    counter: Counter[str] = Counter()
    for d in decisions:
        if d.decision in ("hold", "reject"):
            counter.update(dict.fromkeys(d.codes or ("(no code)",), 1))
    return [{"code": code, "count": n} for code, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _decision_rows(decisions: list[Decision]) -> list[dict[str, Any]]:
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


def _matching_outcome(
    mode: str, counts: dict[str, int], rows: list[dict[str, Any]], reasons: list[dict[str, Any]],
    report: Path | None, reports: dict[str, Path | str], exit_code: int,
) -> BotRun:  # fmt: skip
    parts = [f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n]
    summary = f"Invoice matching ({mode}): " + (", ".join(parts) if parts else "nothing to match")
    note = ""
    if reasons:
        note = "held or rejected for: " + ", ".join(f"{r['code']} x{r['count']}" for r in reasons[:3])
        summary += f"; {note}"
    lines = [summary] + ([f"Report: {report}"] if report else [])
    return BotRun(
        title=f"Invoice matching ({mode})",
        counts=counts,
        exit_code=exit_code,
        reports=reports,
        exceptions=rows,
        rows=rows,
        lines=lines,
        data={
            "mode": mode,
            "counts": counts,
            "hold_reasons": reasons,
            "exceptions": rows,
            "report": str(report) if report else None,
        },
        tables={"hold-reasons": reasons or [{"code": "(none)", "count": 0}]},
        table_titles={"hold-reasons": "documents held or rejected, by reason code"},
        table_name="exceptions",
        note=note,
    )


def _match_files(params: InvoiceMatchingParameters, context: RunContext) -> BotRun:
    """File mode: the columnar inputs of ``procbots match`` (:mod:`connectors.match_columns`),
    the engine, and the report workbook."""
    from bots.domain.match_tables import match_tables
    from bots.match_report import write_match_report
    from config.settings import get_settings
    from connectors.match_columns import load_bulk
    from connectors.match_inputs import MatchInputError, load_policy

    try:
        policy = load_policy(Path(params.policy) if params.policy else None)
        # An invoice file that cannot be read at all is named; the rest of the batch is decided.
        files = load_bulk(
            Path(params.orders),
            Path(params.receipts) if params.receipts else None,
            [Path(p) for p in params.invoices],
        )
    except MatchInputError as exc:
        raise BotInputError(str(exc)) from None
    decisions = [*match_tables(files.tables, policy).decisions(), *files.conflicts]
    out = Path(params.out) if params.out else None
    if out is None:
        out = get_settings().paths.resolve("outbox") / f"invoice-matching-{context.run_id}.xlsx"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = write_match_report(out, decisions)
    counts = Counter(d.decision for d in decisions)
    unreadable = [
        {"invoice_number": "", "decision": "unreadable", "reason_codes": "", "what_to_check": problem}
        for problem in files.unreadable
    ]
    return _matching_outcome(
        "files",
        {kind: counts.get(kind, 0) for kind in ("approve", "hold", "reject")}
        | ({"unreadable": len(unreadable)} if unreadable else {}),
        unreadable + _decision_rows(decisions),
        hold_reasons(decisions),
        report,
        {"report": report},
        1 if unreadable or any(d.decision != "approve" for d in decisions) else 0,
    )


def _decide_in_portal(params: InvoiceMatchingParameters, context: RunContext) -> BotRun:
    from bots.invoices import run_inbox
    from config.settings import get_settings
    from connectors.match_inputs import MatchInputError, load_policy

    settings = get_settings()
    try:
        policy = load_policy(Path(params.policy)) if params.policy else None
    except MatchInputError as exc:
        raise BotInputError(str(exc)) from None
    result = run_inbox(
        params.portal_url or settings.portal.url,
        workers=params.workers or None,
        policy=policy,
        run_id=context.run_id,  # evidence and work folders named after the run
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
    reports: dict[str, Path | str] = {"work folder": result.folder}
    if report is not None:
        reports = {"report": report, **reports}
    decided = _matching_outcome(
        "portal", result.counts, rows, hold_reasons(result.decisions), report, reports, result.exit_code
    )
    # The breaker stopped the decisions (portal down, sign-in refused): the flow run fails with it.
    decided.stopped, decided.stopped_message = result.stopped, result.stopped_message
    return decided


def run_invoice_matching_bot(params: InvoiceMatchingParameters, context: RunContext) -> BotRun:
    """Portal mode (the inbox bot decides in the portal) or file mode (offline, a report)."""
    if params.mode == "files":
        return _match_files(params, context)
    return _decide_in_portal(params, context)


# -- contract uploads -----------------------------------------------------------------------------


def run_contract_uploads_bot(params: ContractUploadsParameters, context: RunContext) -> BotRun:
    """Every contract waiting in the drop folder (the bot's runner loops over them)."""
    from bots.contracts import run_contract_uploads
    from connectors.dropfolder import DropFolderError

    try:
        result = run_contract_uploads(
            params.folder,
            portal_url=params.portal_url or None,
            dry_run=params.dry_run,
            workers=params.workers or None,
            stable_for_s=params.stable_for_s,
            run_id=context.run_id,
        )
    except DropFolderError as exc:
        raise BotInputError(str(exc)) from None
    rows = [o.as_row() for o in result.outcomes]
    rows += [
        {"contract_id": "", "outcome": "rejected", "reason_code": "METADATA_UNREADABLE", "reason": line}
        for line in result.quarantined_metadata
    ]
    counts = dict(result.counts)
    counts["business_exception"] = counts.pop("rejected", 0) + len(result.quarantined_metadata)
    counts = {k: v for k, v in counts.items() if v or k in ("uploaded", "business_exception", "failed")}
    shown = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in result.counts.items() if n)
    title = "Contract uploads" + (" (dry run)" if params.dry_run else "")
    lines = [f"{title}: {shown or 'nothing to do'}"]
    for o in result.outcomes:
        if o.outcome in ("rejected", "failed", "pending"):
            lines.append(f"  {o.contract_id or o.source}: {o.outcome}: {o.reason_code}: {o.reason or ''}")
    lines += [f"  {line}" for line in result.quarantined_metadata]
    if result.report:
        lines.append(f"Report: {result.report}")
    if result.stopped:
        lines.append(f"Run stopped early: {result.stopped}: {result.stopped_message}")
    return BotRun(
        title=title,
        counts=counts,
        stopped=result.stopped,
        stopped_message=result.stopped_message,
        exit_code=result.exit_code,
        reports={"contracts report": result.report} if result.report else {},
        exceptions=[r for r in rows if r["outcome"] in ("rejected", "failed", "pending")],
        rows=rows,
        lines=lines,
        data={
            "counts": result.counts,
            "contracts": [o.as_row() for o in result.outcomes],
            "unreadable_metadata": result.quarantined_metadata,
            "report": str(result.report) if result.report else None,
            "stopped": result.stopped or None,
        },
    )


# -- goods receipts -------------------------------------------------------------------------------


def run_goods_receipts_bot(params: GoodsReceiptsParameters, context: RunContext) -> BotRun:
    """Every despatch advice and scan export in the folder, recorded as goods receipts."""
    from bots.goods_receipts import record_goods_receipts
    from bots.runtime.results import EXCEPTION_STATUSES
    from bots.runtime.sync import run_sync

    run = run_sync(
        record_goods_receipts(
            Path(params.folder),
            portal_url=params.portal_url or None,
            contexts=params.workers or None,
            run_id=context.run_id,
        )
    )
    counts = {status.split(" (")[0].lower().replace(" ", "_"): n for status, n in run.counts.items()}
    rows = [r.model_dump(mode="json") for r in run.results]
    shown = ", ".join(f"{n} {status.lower()}" for status, n in run.counts.items())
    lines = [f"{run.title}: {shown or 'nothing to do'}"]
    lines += [f"  {r.document}: {r.status}: {r.reason_code}: {r.reason}" for r in run.exceptions]
    if run.stopped:
        lines.append(f"Run stopped early: {run.stopped}: {run.stopped_message}")
    if run.workbook is not None:
        lines.append(f"Results: {run.workbook}")
    return BotRun(
        title=run.title,
        counts=counts,
        exit_code=run.exit_code,
        reports={"results": run.workbook} if run.workbook is not None else {},
        exceptions=[r for r in rows if r["status"] in EXCEPTION_STATUSES],
        rows=rows,
        lines=lines,
        data={"counts": run.counts, "results": rows, "stopped": run.stopped},
        # The breaker stopped it (portal down, sign-in refused): the flow run ends Failed with it.
        stopped=run.stopped or "",
        stopped_message=run.stopped_message,
    )
