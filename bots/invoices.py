"""The invoice inbox bot: match the portal's open invoices and decide each one there, once.

Accounts-payable clerks spend their days on the portal's invoice inbox: open an
invoice, find its purchase order and goods receipts, compare, then Approve it or
put it on Hold with a reason. This bot does that round for every open document:

1. **Collect** (one browser context): every document in the inbox (any status, so
   earlier invoices count for duplicate checks and cumulative quantities) with its
   PEPPOL UBL XML, and the portal's CSV exports of the order book and goods
   receipts. The files are kept in the run's work folder, so
   ``procbots match --orders ... --receipts ... --invoices ...`` replays the run.
2. **Match** with :func:`bots.domain.match_tables.match_documents` (the product's one matching
   engine, column-wise with a sequential pass for dependent documents; policy from settings).
3. **Decide in the portal**, as work items of the ledger (idempotency key: supplier
   VAT number + invoice number, see :func:`idempotency_key`), N browser contexts
   at once: for each *open* (``received``) document, read its current status on
   its page first; if it is already decided, record that and do nothing; else
   Approve, Hold (reason code + note naming the lines) or Reject (exact
   duplicates), and checkpoint the status the portal shows right after the post.
   A post that answered 5xx is never repeated blindly: the retry reads the status.
4. **Report**: the matching workbook of the run's documents in the outbox.

System errors (5xx, session expiry, timeouts) are retried by the runner; each
failed attempt keeps a screenshot, the page and a trace as evidence.

Example:
    >>> result = run_inbox("http://127.0.0.1:8765")  # doctest: +SKIP
    >>> result.counts  # doctest: +SKIP
    {'approve': 41, 'hold': 9, 'reject': 2, 'already_decided': 0, 'business_exception': 0, 'failed': 0}
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bots.domain.errors import ApplicationError, BusinessError, classify
from bots.domain.match_tables import match_documents
from bots.domain.matching import Decision, MatchingPolicy, normalise_invoice_number, normalise_vat
from bots.domain.models import GoodsReceipt, Invoice, PurchaseOrder
from bots.runtime.bot import Bot, RunContext
from bots.runtime.breaker import CircuitBreaker
from bots.runtime.ids import new_run_id
from bots.runtime.item import Item
from bots.runtime.ledger import ItemState, Ledger, WorkItem
from bots.runtime.run import browser_crew
from bots.runtime.sync import run_sync
from connectors.audit import audit_event
from connectors.portal.pages.base import LoginRejected, PortalCredentials, PortalSession
from connectors.portal.pages.exports import PortalExports
from connectors.portal.pages.invoices import (
    InvoiceDetailPage,
    InvoiceInboxPage,
    InvoiceSummary,
)
from connectors.portal.pages.login import LoginPage

if TYPE_CHECKING:
    from bots.runtime.runner import RunSummary as RunnerSummary
    from config.settings import Settings
    from connectors.peppol import PeppolDocument

__all__ = [
    "ACTION_SENT",
    "BOT",
    "DECIDED",
    "FOUND_DECIDED",
    "OPEN_STATUS",
    "InboxRunResult",
    "InboxSnapshot",
    "InvoiceInboxBot",
    "InvoiceTask",
    "hold_note",
    "idempotency_key",
    "plan_tasks",
    "run_inbox",
]

BOT = "invoice_matching"
"""The bot name its work items are filed under in the ledger."""

DECIDED = "portal_decision"
"""Checkpoint: the portal shows the document decided (value: the status it shows)."""
FOUND_DECIDED = "found_decided"
"""Checkpoint: the document was already decided when the bot looked (by hand, or an earlier run)."""
ACTION_SENT = "action_sent"
"""Checkpoint: the bot is about to post its decision (value: approve, hold or reject)."""

OPEN_STATUS = "received"
"""The inbox status of a document nobody has decided yet."""
RECEIPT_HOLDS = frozenset({"NOT_RECEIVED", "QTY_OVER_RECEIVED"})
"""Hold reasons a goods receipt clears: a document the bot held only for these is approved
by a later run once matching approves it (the receipt has been recorded since)."""

STATUS_OF: dict[str, str] = {"approve": "approved", "hold": "on_hold", "reject": "rejected"}
"""The portal status each matching decision leads to."""

NOTE_LIMIT = 1_000
"""Characters of a hold or reject note (the portal's text area is for people, not logs)."""

T = TypeVar("T")


# --- pure planning ----------------------------------------------------------------------------


class InvoiceTask(BaseModel):
    """The payload of one work item: which portal document, and what to do with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portal_id: int
    invoice_number: str
    supplier_vat: str | None = None
    document_type: str = "invoice"
    po_number: str | None = None
    decision: Literal["approve", "hold", "reject"]
    reason_code: str | None = None
    note: str = ""
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    problem: str | None = None
    """Why the document cannot be matched (its UBL is unreadable): a person must look."""
    release: bool = False
    """Approve a document this bot held for want of a goods receipt, now that matching approves it."""


def idempotency_key(supplier_vat: str | None, invoice_number: str, document_type: str = "invoice") -> str:
    """The work-item key of a supplier document: normalised VAT number + invoice number.

    Credit notes get their own key (a supplier may number them in the invoice
    series). Exact duplicates share a key; :func:`plan_tasks` tells their copies apart.

    Example:
        >>> idempotency_key("GB 980 7806 84", "inv-00012")
        'GB980780684/INV12'
        >>> idempotency_key("GB980780684", "CN-7", "credit_note")
        'GB980780684/CN7/credit_note'
    """
    vat = normalise_vat(supplier_vat)
    vat = f"GB{vat}" if vat.isdigit() else vat or "NO-VAT"  # the matching key drops GB; people don't
    key = f"{vat}/{normalise_invoice_number(invoice_number)}"
    return key if document_type == "invoice" else f"{key}/{document_type}"


def hold_note(decision: Decision, limit: int = NOTE_LIMIT) -> str:
    """The note a clerk reads in the portal: every reason with the line it concerns.

    Example:
        >>> from bots.domain.matching import Reason
        >>> d = Decision("INV-1", "GB980780684", "invoice", "hold",
        ...              (Reason("NOT_RECEIVED", 2, "Line 2: nothing received yet"),))
        >>> hold_note(d)
        'NOT_RECEIVED (line 2): Line 2: nothing received yet'
    """
    parts = [
        f"{r.code} (line {r.line_no}): {r.message}" if r.line_no is not None else f"{r.code}: {r.message}"
        for r in decision.reasons
    ]
    note = "; ".join(parts)
    return note if len(note) <= limit else note[: limit - 3] + "..."


def plan_tasks(
    summaries: Sequence[InvoiceSummary],
    decisions: Mapping[int, Decision],
    held_for_receipt: Collection[str] = (),
) -> list[tuple[str, InvoiceTask]]:
    """The work items for the open documents: ``(idempotency key, task)`` by portal id.

    Args:
        summaries: inbox rows of every readable document, open or decided.
        decisions: the matching decision of each document, by portal id.
        held_for_receipt: keys of documents this bot put on hold only for want of a
            goods receipt (:data:`RECEIPT_HOLDS`). One still on hold that matching now
            approves gets a release item, ``<key>/released``, which approves it.

    A document whose key another inbox entry already has (an exact duplicate the
    supplier sent twice) is keyed ``<key>#<portal id>``: both entries need a
    decision, and the earliest keeps the plain key. Keys are given over the whole
    inbox, so a copy still open in a later run keeps the key it had.
    """
    seen: set[str] = set()
    planned: list[tuple[str, InvoiceTask]] = []
    for summary in sorted(summaries, key=lambda s: s.portal_id):
        decision = decisions[summary.portal_id]
        key = idempotency_key(decision.supplier_vat, decision.invoice_number, decision.document_type)
        if key in seen:
            key = f"{key}#{summary.portal_id}"
        seen.add(key)
        release = summary.status == "on_hold" and key in held_for_receipt and decision.decision == "approve"
        if release:
            key = f"{key}/released"
        elif summary.status != OPEN_STATUS:
            continue
        acts = decision.decision != "approve"
        reason_code = decision.reasons[0].code if decision.reasons and acts else None
        planned.append(
            (
                key,
                InvoiceTask(
                    portal_id=summary.portal_id,
                    invoice_number=decision.invoice_number,
                    supplier_vat=decision.supplier_vat,
                    document_type=decision.document_type,
                    po_number=decision.po_number,
                    decision=decision.decision,
                    reason_code=reason_code,
                    note=hold_note(decision) if acts else "",
                    reasons=[r.to_dict() for r in decision.reasons],
                    release=release,
                ),
            )
        )
    return planned


# --- the portal half ----------------------------------------------------------------------------


@dataclass
class InboxSnapshot:
    """What the collect step read from the portal, and where it kept the files."""

    folder: Path
    documents: list[tuple[InvoiceSummary, Invoice]]
    orders: list[PurchaseOrder]
    receipts: list[GoodsReceipt]
    unreadable: dict[int, str] = field(default_factory=dict)
    unreadable_open: list[InvoiceSummary] = field(default_factory=list)
    downloaded: int = 0
    """UBL files fetched from the portal this run (the others came from the cache)."""

    @property
    def open_documents(self) -> list[tuple[InvoiceSummary, Invoice]]:
        """The documents nobody has decided yet."""
        return [(s, doc) for s, doc in self.documents if s.status == OPEN_STATUS]


@dataclass
class InboxRunResult:
    """What one inbox run did: decisions, per-item outcomes, the report and the files."""

    run_id: str
    decisions: list[Decision]
    outcomes: list[dict[str, Any]]
    runner: RunnerSummary | None
    report: Path | None
    folder: Path
    inbox_size: int
    downloaded: int = 0
    stopped: str = ""
    """Why the run stopped early (``PORTAL_UNAVAILABLE``, ``LOGIN_REJECTED``), else empty."""
    stopped_message: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Documents by outcome: ``approve``/``hold``/``reject`` decided in the portal (by
        this run or found so), ``already_decided`` (of those, found decided), and items
        that ended ``business_exception`` or ``failed``."""
        counts = {"approve": 0, "hold": 0, "reject": 0, "already_decided": 0}
        for outcome in self.outcomes:
            if outcome.get("state") != ItemState.DONE.value:
                continue
            counts[outcome["decision"]] += 1
            counts["already_decided"] += bool(outcome.get("found_decided"))
        runner = self.runner
        counts["business_exception"] = runner.business_exception if runner else 0
        counts["failed"] = runner.failed if runner else 0
        return counts

    @property
    def exit_code(self) -> int:
        """0 all approved and nothing failed; 1 some held, rejected or in exceptions."""
        counts = self.counts
        bad = counts["hold"] + counts["reject"] + counts["business_exception"] + counts["failed"]
        return 1 if bad or self.stopped else 0


def _read_cached(path: Path, summary: InvoiceSummary) -> PeppolDocument | None:
    """A cached UBL file as read, or None when it is unreadable or not the inbox row's document."""
    from connectors.peppol import PeppolError, read_document

    try:
        parsed = read_document(path)
    except PeppolError:
        return None
    model = parsed.model
    if not isinstance(model, Invoice) or model.invoice_number != summary.invoice_number:
        return None
    if summary.gross_total is not None and abs(model.totals.tax_inclusive) != summary.gross_total:
        return None
    return parsed


def _retryable(exc: BaseException) -> bool:
    return classify(exc) == "system" and isinstance(exc, Exception) and not isinstance(exc, LoginRejected)


class InvoiceInboxBot(Bot[InvoiceTask]):
    """Matches the portal's open invoices and decides each one there, exactly once.

    :meth:`collect` reads the portal, :meth:`plan` matches and files work items,
    :meth:`process` decides one document (the runtime's envelope around it).

    Options:
        policy: matching tolerances; default ``settings.matching``.
    """

    name: ClassVar[str] = BOT
    title: ClassVar[str] = "Invoice matching"
    payload = InvoiceTask
    key_name: ClassVar[str] = "invoice_key"

    def __init__(self, run: RunContext, *, policy: MatchingPolicy | None = None) -> None:
        super().__init__(run)
        self.ledger = run.ledger
        self.settings = run.settings
        self.portal_url = run.portal_url
        self.run_id = run.run_id
        self.policy = policy or MatchingPolicy.from_settings(run.settings.matching)
        self.outcomes: list[dict[str, Any]] = []

    def key(self, payload: InvoiceTask) -> str:
        return idempotency_key(payload.supplier_vat, payload.invoice_number, payload.document_type)

    # -- folders -------------------------------------------------------------------------

    @property
    def work_folder(self) -> Path:
        """``<data root>/work/invoice-matching/<run id>/``: the inputs read from the portal."""
        folder = self.settings.paths.root / "work" / "invoice-matching" / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def ubl_cache(self) -> Path:
        """``<data root>/cache/portal-ubl/<portal>/``: UBL files already fetched from this portal.

        A supplier document never changes once it is in the inbox, so each is fetched
        once; a cached file is used only while it still names the inbox row's number
        and gross total.
        """
        portal = hashlib.sha256(self.portal_url.encode()).hexdigest()[:16]
        folder = self.settings.paths.root / "cache" / "portal-ubl" / portal
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """One collect step, retried on system errors with the runner's backoff settings."""
        retry = self.settings.retry

        def note(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning("collect step failed, retrying", step=what, reason=str(exc))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(retry.max_attempts),
            wait=wait_exponential_jitter(initial=retry.initial_s, max=retry.max_s, jitter=retry.jitter_s),
            retry=retry_if_exception(_retryable),
            before_sleep=note,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await step()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # -- 1. collect ----------------------------------------------------------------------

    async def collect(self, session: PortalSession) -> InboxSnapshot:
        """Reads the inbox (every document and its UBL) and the order and receipt exports.

        Raises:
            LoginRejected: the portal refused the credentials (not retried).
            ApplicationError: the portal kept failing after every retry.
        """
        from connectors.formats import load_orders, load_receipts
        from connectors.peppol import PeppolError, read_document

        folder = self.work_folder
        await self._retrying("sign in", lambda: LoginPage(session).sign_in())
        inbox = InvoiceInboxPage(session)
        summaries = await self._retrying("read the invoice inbox", lambda: inbox.list())
        self.log.info("inbox read", documents=len(summaries))
        exports = PortalExports(session)
        orders_file = folder / "orders.csv"
        receipts_file = folder / "receipts.csv"
        orders_file.write_bytes(await self._retrying("export orders", exports.orders_csv))
        receipts_file.write_bytes(await self._retrying("export receipts", exports.receipts_csv))
        orders, order_errors = await asyncio.to_thread(load_orders, orders_file)
        receipts, receipt_errors = await asyncio.to_thread(load_receipts, receipts_file)
        if order_errors or receipt_errors:
            shown = "; ".join(str(e) for e in [*order_errors, *receipt_errors][:5])
            # A half-read order book would hold good invoices as PO_NOT_FOUND: stop instead.
            raise ApplicationError("EXPORT_UNREADABLE", f"The portal's exports could not be read: {shown}")

        invoices_folder = folder / "invoices"
        invoices_folder.mkdir(exist_ok=True)
        detail = InvoiceDetailPage(session)
        cache = self.ubl_cache
        documents: list[tuple[InvoiceSummary, Invoice]] = []
        unreadable: dict[int, str] = {}
        downloaded = 0
        for summary in summaries:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", summary.invoice_number)[:60]
            name = f"{summary.portal_id:07d}-{safe}.xml"
            path = invoices_folder / name
            parsed = None
            if (cache / name).is_file():
                shutil.copyfile(cache / name, path)
                parsed = _read_cached(path, summary)
            if parsed is None:
                detail.portal_id = summary.portal_id
                path.write_bytes(
                    await self._retrying(f"download UBL {summary.portal_id}", detail.download_ubl)
                )
                downloaded += 1
                try:
                    parsed = read_document(path)
                except PeppolError as exc:
                    unreadable[summary.portal_id] = str(exc)
                    continue
                if isinstance(parsed.model, Invoice):
                    shutil.copyfile(path, cache / name)
            if not isinstance(parsed.model, Invoice):
                unreadable[summary.portal_id] = f"{path.name}: a {parsed.document_type}, not an invoice"
                continue
            documents.append((summary, parsed.model))
        self.log.info(
            "portal read",
            documents=len(documents),
            open=sum(1 for s, _ in documents if s.status == OPEN_STATUS),
            orders=len(orders),
            receipts=len(receipts),
            unreadable=len(unreadable),
            downloaded=downloaded,
        )
        unreadable_open = [s for s in summaries if s.portal_id in unreadable and s.status == OPEN_STATUS]
        return InboxSnapshot(folder, documents, orders, receipts, unreadable, unreadable_open, downloaded)

    # -- 2. match and plan ---------------------------------------------------------------

    def match(self, snapshot: InboxSnapshot) -> dict[int, Decision]:
        """The engine's decision for every readable document, by portal id."""
        by_source = {str(doc.source): summary.portal_id for summary, doc in snapshot.documents}
        decisions = match_documents(
            snapshot.orders, snapshot.receipts, [doc for _, doc in snapshot.documents], self.policy
        )
        return {by_source[str(d.source)]: d for d in decisions}

    def plan(self, snapshot: InboxSnapshot, decisions: Mapping[int, Decision]) -> list[WorkItem]:
        """Files one work item per open document (a no-op for keys already in the ledger).

        Returns the items in plan order: matched documents by portal id, then the
        unreadable open ones. A key already filed keeps its item (and its state).
        """
        summaries = [s for s, _ in snapshot.documents]
        planned = plan_tasks(summaries, decisions, self.held_for_receipt(summaries, decisions))
        for summary in snapshot.unreadable_open:
            # Nothing to match: the item ends a business exception and a person looks.
            task = InvoiceTask(
                portal_id=summary.portal_id,
                invoice_number=summary.invoice_number,
                decision="hold",
                problem=snapshot.unreadable[summary.portal_id],
            )
            planned.append((f"portal-document/{summary.portal_id}", task))
        # One transaction for the whole inbox, then one read back per 500 keys.
        self.ledger.add_many(BOT, planned)
        filed = self.ledger.find_many(BOT, [key for key, _ in planned])
        return [filed[key] for key, _ in planned]

    def held_for_receipt(
        self, summaries: Sequence[InvoiceSummary], decisions: Mapping[int, Decision]
    ) -> set[str]:
        """Keys of on-hold documents this bot held (not found held) only for want of a receipt."""
        keys = [
            idempotency_key(d.supplier_vat, d.invoice_number, d.document_type)
            for s in summaries
            if s.status == "on_hold" and (d := decisions[s.portal_id]).decision == "approve"
        ]
        held = set()
        for key, item in self.ledger.find_many(BOT, keys).items():
            result = item.result or {}
            reasons = {r.get("code") for r in item.payload.get("reasons", [])}
            ours = str(item.state) == "done" and not result.get("found_decided")
            if ours and result.get("status") == "on_hold" and reasons and reasons <= RECEIPT_HOLDS:
                held.add(key)
        return held

    # -- 3. decide in the portal, one item --------------------------------------------------

    async def process(self, item: Item[InvoiceTask], page: PortalSession) -> dict[str, Any]:
        """Decides one document in the portal unless it is decided already; returns the result.

        Raises:
            BusinessError: the portal's page shows another document than the one matched.
            ApplicationError: portal trouble (5xx, session, timeouts): the runtime retries,
                and this attempt's screenshot, page and trace are kept as evidence.
        """
        task = item.payload
        if task.problem:
            raise BusinessError("UBL_UNREADABLE", f"Portal invoice {task.portal_id}: {task.problem}")
        result = await self._decide(item, task, page)
        self.outcomes.append({**result, "state": ItemState.DONE.value})
        return result

    def wants_evidence(self, error: BusinessError) -> bool:
        """Evidence for every business error: each is found on a portal page."""
        return True

    async def _decide(
        self, item: Item[InvoiceTask], task: InvoiceTask, session: PortalSession
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "portal_id": task.portal_id,
            "invoice_number": task.invoice_number,
            "supplier_vat": task.supplier_vat,
            "document_type": task.document_type,
            "po_number": task.po_number,
            "decision": task.decision,
            "reason_code": task.reason_code,
            "link": f"{self.portal_url}/invoices/{task.portal_id}",
        }
        done = item.done_step(DECIDED)
        if done:  # an earlier attempt decided it and checkpointed: nothing to do in the portal
            return {**result, "status": done, "found_decided": bool(item.done_step(FOUND_DECIDED))}
        page = await InvoiceDetailPage(session).open(task.portal_id)
        shown = await page.read()
        if shown.invoice_number != task.invoice_number or (
            task.supplier_vat and normalise_vat(shown.supplier_vat) != normalise_vat(task.supplier_vat)
        ):
            raise BusinessError(
                "PORTAL_MISMATCH",
                f"Portal invoice {task.portal_id} shows {shown.invoice_number} from {shown.supplier_vat}, "
                f"not {task.invoice_number} from {task.supplier_vat}; check the inbox before re-running",
            )
        if shown.decided and not (task.release and shown.status == "on_hold"):
            if item.done_step(ACTION_SENT) and shown.status == STATUS_OF[task.decision]:
                # An earlier attempt's post was saved but its answer lost (a 5xx after saving).
                await item.checkpoint(DECIDED, shown.status)
                audit_event(
                    "invoice_decided", bot=BOT, run_id=self.run_id, item_id=item.id,
                    portal_id=task.portal_id, invoice_number=task.invoice_number,
                    supplier_vat=task.supplier_vat, decision=task.decision, reason_code=task.reason_code,
                    status=shown.status, answer_lost=True,
                )  # fmt: skip
                self.log.info("earlier post saved", invoice_number=task.invoice_number, status=shown.status)
                return {**result, "status": shown.status, "found_decided": False}
            await item.checkpoint(FOUND_DECIDED, shown.status)
            await item.checkpoint(DECIDED, shown.status)
            audit_event(
                "invoice_found_decided", bot=BOT, run_id=self.run_id, item_id=item.id,
                portal_id=task.portal_id, invoice_number=task.invoice_number, status=shown.status,
            )  # fmt: skip
            self.log.info("invoice already decided", invoice_number=task.invoice_number, status=shown.status)
            return {**result, "status": shown.status, "found_decided": True}

        # Noted before the post: a retry that finds this decision saved knows it was ours.
        await item.checkpoint(ACTION_SENT, task.decision)
        if task.decision == "approve":
            status = await page.approve()
        elif task.decision == "hold":
            status = await page.hold(task.reason_code or "OTHER", task.note)
        else:
            status = await page.reject(task.reason_code or "DUPLICATE_INVOICE", task.note)
        if status == OPEN_STATUS:
            raise ApplicationError(
                "DECISION_NOT_SAVED",
                f"Invoice {task.invoice_number} (portal {task.portal_id}) still shows as received after "
                f"the {task.decision}",
            )
        # Recorded before anything else can fail: a retry must not decide it again.
        await item.checkpoint(DECIDED, status)
        audit_event(
            "invoice_decided", bot=BOT, run_id=self.run_id, item_id=item.id, portal_id=task.portal_id,
            invoice_number=task.invoice_number, supplier_vat=task.supplier_vat, decision=task.decision,
            reason_code=task.reason_code, status=status,
        )  # fmt: skip
        self.log.info(
            "invoice decided",
            invoice_number=task.invoice_number,
            decision=task.decision,
            reason_code=task.reason_code,
            status=status,
        )
        if status != STATUS_OF[task.decision]:
            self.log.warning(
                "portal shows another decision", invoice_number=task.invoice_number, status=status
            )
        return {**result, "status": status, "found_decided": False}


async def run_inbox_async(
    portal_url: str | None = None,
    *,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    credentials: PortalCredentials | None = None,
    workers: int | None = None,
    run_id: str | None = None,
    policy: MatchingPolicy | None = None,
    bot_type: type[InvoiceInboxBot] = InvoiceInboxBot,
) -> InboxRunResult:
    """One inbox run: collect, match, decide every open document, write the report.

    One Chromium (the runtime's), a context to collect, then a context per worker.
    Items of earlier runs left pending, or leased by a run that was killed, are taken up too.
    """
    from config.settings import get_settings

    settings = settings or get_settings()
    own_ledger = ledger is None
    ledger = ledger or Ledger.from_settings(settings)
    url = (portal_url or settings.portal.url).rstrip("/")
    bot = bot_type(RunContext(settings, ledger, run_id or new_run_id(), url), policy=policy)
    breaker = CircuitBreaker()
    credentials = credentials or PortalCredentials.from_settings(settings)
    try:
        async with browser_crew(bot, credentials=credentials, breaker=breaker) as crew:
            async with crew.setup() as collector:
                snapshot = await bot.collect(collector.session)
            decisions = bot.match(snapshot)
            await asyncio.to_thread(bot.plan, snapshot, decisions)
            runner_summary = await crew.work(workers) if ledger.claimable(BOT) else None
    finally:
        if own_ledger:
            ledger.close()
    for outcome in runner_summary.exceptions if runner_summary is not None else []:
        bot.outcomes.append(
            {
                "idempotency_key": outcome.idempotency_key,
                "state": outcome.state,
                "reason_code": outcome.reason_code,
                "reason": outcome.reason_message,
            }
        )
    acted = {task_id for task_id in (o.get("portal_id") for o in bot.outcomes) if task_id is not None}
    run_decisions = [d for portal_id, d in sorted(decisions.items()) if portal_id in acted]
    report = None
    if run_decisions:
        from bots.match_report import write_match_report

        outbox = settings.paths.resolve("outbox")
        outbox.mkdir(parents=True, exist_ok=True)
        report = await asyncio.to_thread(
            write_match_report, outbox / f"invoice-matching-{bot.run_id}.xlsx", run_decisions
        )
    return InboxRunResult(
        run_id=bot.run_id,
        decisions=run_decisions,
        outcomes=list(bot.outcomes),
        runner=runner_summary,
        report=report,
        folder=snapshot.folder,
        inbox_size=len(snapshot.documents) + len(snapshot.unreadable),
        downloaded=snapshot.downloaded,
        stopped=breaker.reason or "",
        stopped_message=breaker.message,
    )


def run_inbox(portal_url: str | None = None, **kwargs: Any) -> InboxRunResult:
    """:func:`run_inbox_async` from synchronous code (a CLI command, a Prefect task thread).

    Example:
        >>> run_inbox("http://127.0.0.1:8765", workers=2).counts  # doctest: +SKIP
    """
    return run_sync(run_inbox_async(portal_url, **kwargs))
