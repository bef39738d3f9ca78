"""The contract upload bot: signed contracts from a drop folder into the portal's contract
register, exactly once, verified.

Staff drop signed PDFs with their details in a folder (:mod:`connectors.contract_inputs`
reads and pairs them). For each contract the bot

1. pairs the details with the file (:func:`~connectors.contract_inputs.plan_batch`);
2. validates (:func:`~connectors.contract_inputs.check_job`): the file is a real PDF and
   the details follow the Procurement Act 2023 rules of :mod:`bots.domain.contracts`.
   Every problem is collected, so one rejection tells the officer everything that is wrong;
3. uploads it through the register's page objects, exactly once: search by contract ID
   first; after the upload, checkpoint ``uploaded`` at once;
4. verifies: downloads the stored document and compares its SHA-256 with the file's,
   and compares the details the register shows with the model; then checkpoints
   ``verified``.

The drop folder keeps every file: uploaded contracts go to ``done/``, rejected ones to
``quarantine/`` with a ``.reason.json`` beside them. :func:`write_contracts_report`
writes the workbook people read: uploaded, rejected with reasons, and contracts ending
within 90 and 180 days with a chart by month.

Reason codes (stable): ``MISSING_FIELD``, ``INVALID_VALUE``, ``DATES_INCONSISTENT``,
``VALUE_INCONSISTENT``, ``HIGH_VALUE_KPIS``, ``SUPPLIER_ID_MISSING``,
``SUPPLIER_ID_INVALID``, ``FILE_MISSING``, ``METADATA_MISSING``, ``METADATA_UNREADABLE``,
``DUPLICATE_CONTRACT_ID``, ``DUPLICATE_DOCUMENT``, ``UNSAFE_FILE_NAME``, the
:mod:`connectors.pdf` codes (``NOT_A_PDF``, ``PDF_ENCRYPTED``, ``PDF_TOO_LARGE``,
``PDF_TRUNCATED``, ``PDF_DAMAGED``, ``PDF_EMPTY``), and from the portal
``PORTAL_REFUSED``, ``REGISTER_DOCUMENT_MISMATCH``, ``REGISTER_DETAILS_MISMATCH``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from bots.domain.contracts import (
    CONTRACT_ALIASES,
    HIGH_VALUE_THRESHOLD,
    MIN_HIGH_VALUE_KPIS,
    ContractJob,
    ContractProblem,
    ContractRejected,
    ContractRow,
    contract_fingerprint,
    contract_result,
    register_form,
)
from bots.domain.errors import ApplicationError, BusinessError
from bots.domain.models import Contract
from bots.runtime.bot import Bot, RunContext
from bots.runtime.breaker import CircuitBreaker
from bots.runtime.ids import new_run_id
from bots.runtime.item import Item
from bots.runtime.ledger import Ledger, WorkItem
from bots.runtime.run import work
from bots.runtime.runner import RunSummary
from bots.runtime.sync import run_sync
from connectors.contract_inputs import (
    BatchFile,
    adopt_loose_files,
    check_job,
    compare_register_details,
    plan_batch,
    read_metadata_file,
    read_sidecar,
    validate_contract,
)

if TYPE_CHECKING:
    from config.settings import Settings
    from connectors.portal.pages.base import PortalSession

__all__ = [
    "BOT",
    "CONTRACT_ALIASES",
    "HIGH_VALUE_THRESHOLD",
    "MIN_HIGH_VALUE_KPIS",
    "BatchFile",
    "ContractBot",
    "ContractJob",
    "ContractOutcome",
    "ContractProblem",
    "ContractRejected",
    "ContractRow",
    "ContractRunResult",
    "check_job",
    "compare_register_details",
    "contract_fingerprint",
    "plan_batch",
    "read_metadata_file",
    "read_sidecar",
    "register_form",
    "run_contract_uploads",
    "validate_contract",
    "write_contracts_report",
]

BOT: Final = "contract_uploads"
"""The bot name of contract upload work items in the ledger."""


# --- the run: drop folder -> ledger -> portal -> drop folder + report ---------------------------------


@dataclass(slots=True)
class ContractOutcome:
    """How one contract of a run ended, for the report and the flow's artifacts."""

    contract_id: str
    source: str
    document: str | None
    outcome: str
    """``uploaded``, ``found_in_register`` (it was there), ``already_done`` (by an earlier run),
    ``validated`` (dry run), ``rejected``, ``failed`` or ``pending`` (interrupted; retried later)."""
    reason_code: str | None = None
    reason: str | None = None
    problems: list[dict[str, str | None]] = field(default_factory=list)
    sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stored_as: str | None = None
    item_id: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "outcome": self.outcome,
            "reason_code": self.reason_code or "",
            "reason": self.reason or "",
            "source": self.source,
            "document": self.document or "",
            "stored_as": self.stored_as or "",
        }


@dataclass(slots=True)
class ContractRunResult:
    """What one run did: every contract's outcome, counts, the report, and the runner's summary."""

    outcomes: list[ContractOutcome] = field(default_factory=list)
    report: Path | None = None
    dry_run: bool = False
    runner_summary: RunSummary | None = None
    quarantined_metadata: list[str] = field(default_factory=list)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    @property
    def stopped(self) -> str:
        """Why the run stopped early (``PORTAL_UNAVAILABLE``, ``LOGIN_REJECTED``), else empty."""
        return self.breaker.reason or ""

    @property
    def stopped_message(self) -> str:
        return self.breaker.message

    @property
    def counts(self) -> dict[str, int]:
        names = (
            "uploaded",
            "found_in_register",
            "already_done",
            "validated",
            "rejected",
            "failed",
            "pending",
        )
        counts = dict.fromkeys(names, 0)
        for o in self.outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """0 when every contract went in (or validated), 1 when some were rejected or failed."""
        bad = any(o.outcome in ("rejected", "failed", "pending") for o in self.outcomes)
        return 1 if bad or self.quarantined_metadata or self.stopped else 0


async def upload_and_verify(
    session: PortalSession, job: ContractJob, contract: Contract, sha256: str, *, item: Item[ContractJob]
) -> dict[str, Any]:
    """Put one validated contract in the register exactly once, then check what the register holds.

    The upload is the step ``uploaded`` of :meth:`~bots.runtime.item.Item.once`: the
    register is searched first (an earlier attempt may have saved it before its answer
    was lost), the lease is checked right before the form is sent, and the outcome
    (``uploaded`` or ``found_in_register``) is checkpointed at once.

    Raises:
        BusinessError: ``PORTAL_REFUSED``, ``REGISTER_DOCUMENT_MISMATCH`` or ``REGISTER_DETAILS_MISMATCH``.
        ApplicationError: the portal failed (5xx, session, timeout): retried by the runner.
    """
    from urllib.parse import quote

    from connectors.portal.pages.contracts import (
        AlreadyInRegister,
        ContractDetailPage,
        ContractForm,
        ContractRefused,
        ContractRegisterPage,
        ContractUploadPage,
    )

    async def find() -> str | None:
        found = await ContractRegisterPage(session).find(contract.contract_id)
        return "found_in_register" if found is not None else None

    async def upload() -> str:
        assert job.document_path is not None
        try:
            await ContractUploadPage(session).upload(
                ContractForm(**register_form(contract)),  # type: ignore[arg-type]
                Path(job.document_path),
            )
        except AlreadyInRegister:
            return "found_in_register"
        except ContractRefused as exc:
            raise BusinessError(
                "PORTAL_REFUSED", f"{job.source}: the portal refused contract {contract.contract_id}: {exc}"
            ) from None
        return "uploaded"

    action = (
        await item.once("uploaded", find=find, do=upload, audit={"contract_id": contract.contract_id})
    ).value
    detail = ContractDetailPage(session)
    if action == "uploaded" and detail.showing(contract.contract_id):
        detail.title = f"Contract {contract.contract_id}"  # the upload landed on it: no second load
    else:
        await detail.open(contract.contract_id)
    shown = await detail.details()
    stored = hashlib.sha256(await detail.download_document()).hexdigest()
    if stored != sha256:
        raise BusinessError(
            "REGISTER_DOCUMENT_MISMATCH",
            f"{job.source}: the register holds a different document for {contract.contract_id} "
            f"(SHA-256 {stored[:12]}..., the file is {sha256[:12]}...)",
        )
    differences = compare_register_details(contract, shown)
    if differences:
        raise BusinessError(
            "REGISTER_DETAILS_MISMATCH",
            f"{job.source}: the register shows {contract.contract_id} differently: " + "; ".join(differences),
        )
    await item.checkpoint("verified", stored)
    url = session.url(f"/contracts/{quote(contract.contract_id, safe='')}")
    return contract_result(contract, stored, action, url)


class ContractBot(Bot[ContractJob]):
    """Uploads each validated contract to the portal's register exactly once, verified.

    Options:
        jobs: this run's contracts by key (their files as claimed now).
        max_document_bytes: the PDF size limit.
    """

    name: ClassVar[str] = BOT
    title: ClassVar[str] = "Contract uploads"
    payload = ContractJob
    key_name: ClassVar[str] = "contract_key"
    session_retries: ClassVar[int] = 3

    def __init__(
        self, run: RunContext, *, jobs: Mapping[str, ContractJob], max_document_bytes: int | None = None
    ) -> None:
        super().__init__(run)
        self.jobs = jobs
        self.max_document_bytes = max_document_bytes

    def key(self, payload: ContractJob) -> str:
        return payload.key

    def _job(self, item: Item[ContractJob]) -> ContractJob:
        # This run's claim of the files, else (an item of an earlier drop) the ledger's.
        return self.jobs.get(item.key) or item.payload

    def check(self, item: Item[ContractJob]) -> None:
        check_job(self._job(item), max_document_bytes=self.max_document_bytes)

    async def process(self, item: Item[ContractJob], page: PortalSession) -> dict[str, Any]:
        job = self._job(item)
        if (
            job.document_path is not None
            and not Path(job.document_path).exists()
            and not item.done_step("uploaded")
        ):
            raise ApplicationError(
                "DOCUMENT_NOT_AVAILABLE",
                f"{job.source}: the document is no longer in processing/; it is retried when dropped again",
            )
        contract, sha256 = check_job(job, max_document_bytes=self.max_document_bytes)
        return await upload_and_verify(page, job, contract, sha256, item=item)

    def wants_evidence(self, error: BusinessError) -> bool:
        """A rejected contract's data was wrong: a screenshot of the portal would show nothing."""
        return not isinstance(error, ContractRejected)


def run_contract_uploads(
    folder: str | Path,
    *,
    portal_url: str | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    workers: int | None = None,
    stable_for_s: float = 2.0,
    recover_after_s: float = 0.0,
    max_document_bytes: int | None = None,
    report_dir: Path | None = None,
    today: dt.date | None = None,
    run_id: str | None = None,
) -> ContractRunResult:
    """Take every contract dropped in ``folder``, upload the valid ones, quarantine the rest.

    Args:
        folder: the drop folder root (``inbox/``, ``processing/``, ``done/``, ``quarantine/``...);
            files put straight into it are moved into its ``inbox/`` first.
        portal_url: the portal; default ``settings.portal.url``.
        dry_run: validate and report only: nothing is claimed, uploaded or moved, and the
            ledger is not touched.
        settings: procbots settings (default: the process settings).
        ledger: the work-item ledger (default: from settings).
        workers: parallel browser contexts (default ``settings.browser.contexts``).
        stable_for_s: how long a file must stay unchanged before it is taken.
        recover_after_s: files in ``processing/`` that no live lease holds (a killed or
            stopped run left them) and were claimed longer ago than this go back to the
            inbox first, to be taken again; their contracts finish after their last
            checkpoint. One run per drop folder at a time.
        max_document_bytes: PDF size limit (default :data:`connectors.pdf.DEFAULT_MAX_BYTES`).
        report_dir: where the report workbook goes (default the outbox).
        today: the date "ending within 90/180 days" counts from (default today in London).
        run_id: names the evidence folder ``evidence/<run id>/<item id>/`` (default a timestamp).

    Returns:
        every contract's outcome and the report's path (``None`` when nothing arrived).
    """
    from zoneinfo import ZoneInfo

    from config.logging import get_logger
    from config.settings import get_settings
    from connectors.dropfolder import ClaimedFile, DropFolder

    settings = settings or get_settings()
    log = get_logger("contracts")
    root = Path(folder)
    today = today or dt.datetime.now(ZoneInfo("Europe/London")).date()
    result = ContractRunResult(dry_run=dry_run)
    report_dir = report_dir or settings.paths.resolve("outbox")

    if dry_run:
        # Read where the files are; claim nothing.
        places = [p for p in (root, root / "inbox") if p.is_dir()]
        files = [
            BatchFile(p.name, p)
            for place in places
            for p in sorted(place.iterdir())
            if p.is_file() and not p.is_symlink() and not p.name.startswith((".", "~$"))
        ]
        plan = plan_batch(files, max_document_bytes=max_document_bytes)
        for path, problem in plan.unreadable.items():
            result.quarantined_metadata.append(f"{Path(path).name}: {problem.message}")
        for job in plan.jobs:
            result.outcomes.append(_dry_run_outcome(job, max_document_bytes))
        if result.outcomes or result.quarantined_metadata:
            result.report = write_contracts_report(
                report_dir / _report_name("contracts-dry-run"), result, [], today
            )
        return result

    from connectors.portal.pages.base import PortalCredentials

    # Before any file moves: a missing password is a configuration error, not 20 failed items.
    credentials = PortalCredentials.from_settings(settings)
    adopt_loose_files(root)
    drop = DropFolder(root, stable_for_s=stable_for_s)
    if ledger is None:
        from bots.runtime.ledger import Ledger

        ledger = Ledger.from_settings(settings)
    # Files a killed run left in processing/ go back to the inbox once no live lease holds them.
    held, dropped_as = _files_in_ledger(ledger)
    drop.recover_stale(recover_after_s, keep=held, names=dropped_as)
    claims: dict[str, ClaimedFile] = {}
    for claimed in drop:
        claims[str(claimed.path)] = claimed
    if not claims:
        log.info("no contracts dropped", folder=str(root))
        return result
    plan = plan_batch(
        [BatchFile(c.original_name, c.path) for c in claims.values()], max_document_bytes=max_document_bytes
    )
    for path, problem in plan.unreadable.items():
        claims[path].quarantine(problem.code, f"{claims[path].original_name}: {problem.message}")
        result.quarantined_metadata.append(f"{claims[path].original_name}: {problem.message}")

    jobs: dict[str, ContractJob] = {}
    items: dict[str, Any] = {}
    earlier: set[str] = set()  # done by an earlier run: this drop is a repeat
    for job in plan.jobs:
        item = ledger.add(BOT, job.key, job)
        if item.state in ("failed", "needs_review"):
            # Dropped again after it failed on system errors: give it another go.
            item = ledger.retry(item.id, reason="the contract was dropped again")
        jobs[job.key] = job
        items[job.key] = item
        if item.state == "done":
            earlier.add(job.key)
    log.info("contracts planned", contracts=len(jobs), files=len(claims))

    # Claimable: pending, or leased by a run that was killed (its lease ran out). A drop whose
    # every claimable contract is rejected on its own data needs no browser at all.
    failing_here = [
        k for k, item in items.items() if item.state == "pending" and not _passes(jobs[k], max_document_bytes)
    ]
    bot = ContractBot(
        RunContext(settings, ledger, run_id or new_run_id(), (portal_url or settings.portal.url).rstrip("/")),
        jobs=jobs,
        max_document_bytes=max_document_bytes,
    )
    result.runner_summary = run_sync(
        work(
            bot,
            credentials=credentials,
            contexts=workers,
            breaker=result.breaker,
            browser=ledger.claimable(BOT) > len(failing_here),
        )
    )

    found = ledger.find_many(BOT, list(jobs))
    outcomes = {key: _outcome(job, found[key]) for key, job in jobs.items()}
    # A drop with a contract still pending (the run stopped early, or another run holds it)
    # stays together in processing/: the next run takes it again whole, and reports the
    # contracts done now as done by an earlier run.
    finished_metadata_ok = all(o.outcome != "pending" for o in outcomes.values())
    for key, job in jobs.items():
        outcome = outcomes[key]
        if key in earlier:
            outcome.outcome = "already_done"
        owned = [claims[f] for f in job.files if f in claims]
        if not finished_metadata_ok:
            moved = []
        elif outcome.outcome in ("uploaded", "found_in_register", "already_done"):
            moved = [c.done() for c in owned]
        elif outcome.outcome == "rejected":
            errors = outcome.problems or [{"code": outcome.reason_code, "message": outcome.reason}]
            moved = [
                c.quarantine(outcome.reason_code or "REJECTED", outcome.reason or "", errors) for c in owned
            ]
        elif outcome.outcome == "failed":
            moved = [c.fail(outcome.reason_code or "FAILED", outcome.reason or "") for c in owned]
        else:
            moved = []
        if moved:
            outcome.stored_as = str(moved[0].relative_to(drop.root))
        result.outcomes.append(outcome)
    for meta in plan.metadata_files:
        sheet = claims.get(str(meta.path))
        if sheet is not None and sheet.outcome is None and finished_metadata_ok:
            sheet.done()

    ending = _known_contracts(ledger)
    result.report = write_contracts_report(report_dir / _report_name("contracts"), result, ending, today)
    log.info("contract uploads finished", report=str(result.report), **result.counts)
    return result


def _files_in_ledger(ledger: Ledger) -> tuple[set[str], dict[str, str]]:
    """Names in processing/ of the files of contracts a live run holds (an unexpired lease),
    and the names unfinished contracts' documents were dropped under, by processing/ name."""
    now = dt.datetime.now(dt.UTC)
    held: set[str] = set()
    dropped_as: dict[str, str] = {}
    for state in ("pending", "in_progress", "system_exception"):
        for item in ledger.list(state=state, bot=BOT):
            job = item.payload_as(ContractJob)
            if job.document_path and job.document_name:
                dropped_as[Path(job.document_path).name] = job.document_name
            if item.lease_expires_at is not None and item.lease_expires_at > now:
                held.update(Path(f).name for f in job.files)
    return held, dropped_as


def _passes(job: ContractJob, max_document_bytes: int | None) -> bool:
    try:
        check_job(job, max_document_bytes=max_document_bytes)
    except ContractRejected:
        return False
    return True


def _report_name(prefix: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}-{stamp}.xlsx"


def _dry_run_outcome(job: ContractJob, max_document_bytes: int | None) -> ContractOutcome:
    try:
        contract, sha256 = check_job(job, max_document_bytes=max_document_bytes)
    except ContractRejected as exc:
        return ContractOutcome(
            job.contract_id,
            job.source,
            job.document_name,
            "rejected",
            exc.code,
            exc.message,
            [p.as_dict() for p in exc.problems],
        )
    return ContractOutcome(
        contract.contract_id,
        job.source,
        job.document_name,
        "validated",
        sha256=sha256,
        details=contract_result(contract, sha256, "validated", ""),
    )


def _outcome(job: ContractJob, item: WorkItem) -> ContractOutcome:
    base = ContractOutcome(job.contract_id, job.source, job.document_name, "pending", item_id=item.id)
    state = str(item.state)
    if state == "done":
        details = dict(item.result or {})
        base.outcome = str(details.get("action", "uploaded"))
        base.sha256 = details.get("sha256")
        base.details = details
    elif state == "business_exception":
        base.outcome = "rejected"
        base.reason_code, base.reason = item.reason_code, item.reason_message
        base.problems = _problems_of(job, item)
    elif state in ("failed", "needs_review"):
        base.outcome = "failed"
        base.reason_code, base.reason = item.reason_code, item.reason_message
    return base


def _problems_of(job: ContractJob, item: WorkItem) -> list[dict[str, str | None]]:
    """Every problem of a rejection (the ledger keeps one code and the joined message)."""
    try:
        check_job(job)
    except ContractRejected as exc:
        if exc.code == item.reason_code:
            return [p.as_dict() for p in exc.problems]
    except Exception:  # the file went away meanwhile: the ledger's reason is the record
        return [{"code": item.reason_code, "field": None, "message": item.reason_message}]
    return [{"code": item.reason_code, "field": None, "message": item.reason_message}]


def _known_contracts(ledger: Ledger) -> list[dict[str, Any]]:
    """Every contract the bot has put in (or found in) the register, latest details per contract ID."""
    latest: dict[str, dict[str, Any]] = {}
    for item in ledger.list(state="done", bot=BOT):
        details = dict(item.result or {})
        if details.get("contract_id") and details.get("end_date"):
            latest[str(details["contract_id"])] = details
    return list(latest.values())


# --- the report ----------------------------------------------------------------------------------


def write_contracts_report(
    path: Path, result: ContractRunResult, known: Sequence[Mapping[str, Any]], today: dt.date
) -> Path:
    """The contracts workbook: a summary with a chart of contracts ending by month, then
    sheets of the uploaded contracts, the rejected ones with every reason, and the
    contracts ending within 180 days (those within 90 highlighted).

    ``known`` are the contracts already in the register (the bot's done items); in a dry
    run they are this run's validated contracts.
    """
    from connectors.excel import ChartSpec, Column, Sheet, Summary, write_report

    def day(value: Any) -> dt.date | None:
        return dt.date.fromisoformat(str(value)) if value else None

    def amount(value: Any) -> Decimal | None:
        return Decimal(str(value)) if value not in (None, "") else None

    uploaded_rows = []
    for o in result.outcomes:
        if o.outcome in ("uploaded", "found_in_register", "already_done", "validated"):
            d = o.details
            uploaded_rows.append(
                {
                    "contract_id": o.contract_id,
                    "outcome": o.outcome.replace("_", " "),
                    "title": d.get("title"),
                    "supplier_name": d.get("supplier_name"),
                    "value_net": amount(d.get("value_net")),
                    "value_gross": amount(d.get("value_gross")),
                    "start_date": day(d.get("start_date")),
                    "end_date": day(d.get("end_date")),
                    "max_end_date": day(d.get("max_end_date")),
                    "kpis": d.get("kpis"),
                    "document": o.document,
                    "sha256": o.sha256,
                    "url": d.get("url") or None,
                }
            )
    rejected_rows = []
    for o in result.outcomes:
        if o.outcome in ("rejected", "failed", "pending"):
            problems = o.problems or [{"code": o.reason_code, "field": None, "message": o.reason}]
            for p in problems:
                rejected_rows.append(
                    {
                        "contract_id": o.contract_id,
                        "outcome": o.outcome,
                        "code": p.get("code"),
                        "field": p.get("field"),
                        "message": p.get("message"),
                        "source": o.source,
                        "document": o.document,
                        "stored_as": o.stored_as,
                    }
                )
    for line in result.quarantined_metadata:
        rejected_rows.append({"outcome": "rejected", "code": "METADATA_UNREADABLE", "message": line})

    contracts = list(known) or [o.details for o in result.outcomes if o.outcome == "validated"]
    horizon = today + dt.timedelta(days=180)
    ending_rows: list[dict[str, Any]] = []
    ending_by_month: list[tuple[dt.date, int]] = []
    for c in contracts:
        end = day(c.get("end_date"))
        if end is None or not today <= end <= horizon:
            continue
        days_left = (end - today).days
        ending_by_month.append((end.replace(day=1), days_left))
        ending_rows.append(
            {
                "contract_id": c.get("contract_id"),
                "title": c.get("title"),
                "supplier_name": c.get("supplier_name"),
                "value_gross": amount(c.get("value_gross")),
                "end_date": end,
                "max_end_date": day(c.get("max_end_date")),
                "days_left": days_left,
                "window": "within 90 days" if days_left <= 90 else "within 180 days",
            }
        )
    ending_rows.sort(key=lambda r: (r["end_date"], str(r["contract_id"])))

    months = []
    cursor = today.replace(day=1)
    while cursor <= horizon:
        months.append(cursor)
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    within_90 = [0] * len(months)
    within_180 = [0] * len(months)
    for month, days_left in ending_by_month:
        (within_90 if days_left <= 90 else within_180)[months.index(month)] += 1

    counts = result.counts
    figures: list[tuple[str, Any]] = [
        ("Report date", today),
        ("Uploaded", counts["uploaded"]),
        ("Found in the register", counts["found_in_register"]),
        ("Done by an earlier run", counts["already_done"]),
        ("Rejected", counts["rejected"] + len(result.quarantined_metadata)),
        ("Failed (system errors)", counts["failed"]),
        ("Contracts ending within 90 days", sum(within_90)),
        ("Contracts ending within 180 days", sum(within_90) + sum(within_180)),
    ]
    if result.dry_run:
        figures.insert(1, ("Dry run: validated, nothing uploaded", counts["validated"]))
    chart = ChartSpec(
        "Contracts ending by month",
        [m.strftime("%b %Y") for m in months],
        {"Within 90 days": within_90, "91 to 180 days": within_180},
    )
    sheets = [
        Sheet(
            "Uploaded",
            [
                Column("contract_id", "Contract ID"),
                Column("outcome", "Outcome"),
                Column("title", "Title"),
                Column("supplier_name", "Supplier"),
                Column("value_net", "Value excl. VAT", "money"),
                Column("value_gross", "Value incl. VAT", "money"),
                Column("start_date", "Start date", "date"),
                Column("end_date", "End date", "date"),
                Column("max_end_date", "Maximum end date", "date"),
                Column("kpis", "KPIs", "int"),
                Column("document", "Document"),
                Column("sha256", "SHA-256"),
                Column("url", "In the register", "link"),
            ],
            uploaded_rows,
        ),
        Sheet(
            "Rejected",
            [
                Column("contract_id", "Contract ID"),
                Column("outcome", "Outcome"),
                Column("code", "Reason code"),
                Column("field", "Field"),
                Column("message", "Reason", width=80),
                Column("source", "Source"),
                Column("document", "Document"),
                Column("stored_as", "Now in"),
            ],
            rejected_rows,
            highlight=("outcome", {"rejected", "failed"}),
        ),
        Sheet(
            "Ending soon",
            [
                Column("contract_id", "Contract ID"),
                Column("title", "Title"),
                Column("supplier_name", "Supplier"),
                Column("value_gross", "Value incl. VAT", "money"),
                Column("end_date", "End date", "date"),
                Column("max_end_date", "Maximum end date", "date"),
                Column("days_left", "Days left", "int"),
                Column("window", "Window"),
            ],
            ending_rows,
            highlight=("window", {"within 90 days"}),
        ),
    ]
    title = "Contract uploads (dry run)" if result.dry_run else "Contract uploads"
    return write_report(path, sheets, summary=Summary(title, figures, [chart]))
