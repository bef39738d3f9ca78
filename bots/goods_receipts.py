"""The goods-receipts bot: despatch advices and point-of-use scans become goods receipts in the portal.

Suppliers send a PEPPOL despatch advice with each delivery; Scan4Safety wards scan
GS1 barcodes where goods are used. Each despatch advice, and each purchase order
scanned on one day in one scan export, is one work item (:class:`ReceiptDraft`,
:mod:`connectors.receipt_inputs`). For each the bot:

1. checks what needs no portal: a despatch advice sent twice (``DUPLICATE_DESPATCH``),
   a received date after today (``DATE_IN_FUTURE``), no purchase order named;
2. records the receipt exactly once with :meth:`~bots.runtime.item.Item.once`: it
   looks for its GRN number in the portal, and only when it is not there opens
   "Record goods receipt" for the order, checks the lines against what the portal
   shows (``UNKNOWN_PO``, ``UNKNOWN_PO_LINE``, ``GTIN_MISMATCH``, ``OVER_RECEIPT``,
   :mod:`bots.domain.receipts`) and records it;
3. reads the receipt back and compares it with what it meant to record.

Invoices held ``NOT_RECEIVED`` for those lines are approved by the next
invoice-matching run. Everything else (browser, sign-in, retries, evidence, ledger,
results) is the runtime's (:mod:`bots.runtime`).

Example:
    >>> run = run_sync(record_goods_receipts(Path("inbox/goods-receipts")))  # doctest: +SKIP
    >>> run.counts  # doctest: +SKIP
    {'Recorded': 27, 'Business exception': 6}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bots.domain.errors import BusinessError
from bots.domain.inputs import london_today
from bots.domain.receipts import ReceiptDraft, check_against_order, check_document
from bots.runtime.bot import Bot, RunContext
from bots.runtime.results import (
    STANDARD_COLUMNS,
    STATUS_BUSINESS,
    BotRun,
    ResultColumn,
    ResultRow,
    item_fields,
    write_results_workbook,
)
from bots.runtime.run import run_bot
from connectors.portal.pages.receipts import GoodsReceiptPages, PortalRejectedReceipt, RecordedReceipt
from connectors.receipt_inputs import receipt_drafts

if TYPE_CHECKING:
    from bots.runtime.item import Item
    from bots.runtime.ledger import WorkItem
    from config.settings import Settings
    from connectors.portal.pages.base import PortalSession

__all__ = ["BOT", "GoodsReceiptBot", "GoodsReceiptsRun", "ReceiptResult", "record_goods_receipts"]

BOT = "goods_receipts"
RECORDED = "receipt_recorded"
STATUS_RECORDED = "Recorded"
STATUS_FOUND = "Already in portal"
STATUS_EARLIER = "Recorded in an earlier run"


class ReceiptResult(ResultRow):
    """One receipt of the run, as the results workbook shows it."""

    document: str
    po_number: str | None = None
    grn_number: str | None = None
    received_date: dt.date | None = None
    lines: int = 0


RESULT_COLUMNS = (
    ResultColumn("document", "Document"),
    ResultColumn("po_number", "PO number"),
    ResultColumn("grn_number", "GRN number"),
    ResultColumn("received_date", "Received date", "date"),
    ResultColumn("lines", "Lines", "int"),
    *STANDARD_COLUMNS.values(),
)


class GoodsReceiptBot(Bot[ReceiptDraft]):
    """Records despatch advices and scans as goods receipts in the portal, exactly once each.

    Options:
        today: the UK date received dates are checked against (default: now, Europe/London).
    """

    name: ClassVar[str] = BOT
    title: ClassVar[str] = "Goods receipts"
    payload = ReceiptDraft
    key_name: ClassVar[str] = "receipt"

    def __init__(self, run: RunContext, *, today: dt.date | None = None) -> None:
        super().__init__(run)
        self.today = today or london_today()

    def key(self, payload: ReceiptDraft) -> str:
        return payload.key

    async def process(self, item: Item[ReceiptDraft], page: PortalSession) -> dict[str, Any]:
        """Checks one receipt, finds or records it under its GRN number, reads it back."""
        draft = item.payload
        check_document(draft, self.today)
        pages = GoodsReceiptPages(page)
        stored: list[RecordedReceipt] = []

        async def find() -> str | None:
            found = await pages.find(draft.grn_number)
            return found.grn_number if found is not None else None

        async def record() -> str:
            assert draft.po_number is not None  # check_document refused a draft without one
            lines = check_against_order(draft, await pages.open_form(draft.po_number))
            await pages.record(draft.grn_number, draft.po_number, draft.received_date, lines)
            return draft.grn_number

        async def verify(grn_number: str) -> None:
            found = await pages.find(grn_number)
            wanted = sum((line.quantity for line in draft.lines), Decimal(0))
            if found is None or found.po_number != draft.po_number or sum(found.lines.values()) != wanted:
                shown = f"{found.po_number}, {sum(found.lines.values())} units" if found else "nothing"
                raise BusinessError(
                    "RECEIPT_MISMATCH",
                    f"{draft.document}: goods receipt {grn_number} in the portal shows {shown}, "
                    f"not {draft.po_number}, {wanted} units",
                )
            stored.append(found)

        step = await item.once(
            RECORDED, find=find, do=record, verify=verify, audit={"po_number": draft.po_number}
        )
        self.log.info("receipt recorded", grn_number=step.value, po_number=draft.po_number, found=step.found)
        return {
            "grn_number": step.value,
            "found_existing": step.found,
            "lines": {str(n): str(q) for n, q in sorted(stored[0].lines.items())},
        }

    def wants_evidence(self, error: BusinessError) -> bool:
        """The page is kept when the portal refused a receipt or shows another one."""
        return isinstance(error, PortalRejectedReceipt) or error.code == "RECEIPT_MISMATCH"

    def done_status(self, result: Mapping[str, Any], earlier: bool) -> str:
        if earlier:
            return STATUS_EARLIER
        return STATUS_FOUND if result.get("found_existing") else STATUS_RECORDED

    def result_row(self, payload: ReceiptDraft, item: WorkItem | None, earlier: bool) -> ReceiptResult:
        fields = item_fields(item, self.done_status((item.result or {}) if item else {}, earlier))
        return ReceiptResult(
            **fields,
            document=payload.document,
            po_number=payload.po_number,
            grn_number=payload.grn_number,
            received_date=payload.received_date,
            lines=len(payload.lines),
        )


@dataclass
class GoodsReceiptsRun(BotRun[ReceiptResult]):
    """The outcome of one run: a row per receipt, and per file or row that could not be read."""

    bot: str = BOT
    title: str = "Goods receipts"
    unreadable: list[str] = field(default_factory=list)


async def record_goods_receipts(
    folder: Path,
    *,
    settings: Settings | None = None,
    portal_url: str | None = None,
    contexts: int | None = None,
    run_id: str | None = None,
    today: dt.date | None = None,
) -> GoodsReceiptsRun:
    """Records the receipts of every despatch advice and scan export in ``folder``.

    A file or row that cannot be read is a business-exception row naming it; the
    other files are recorded. Files stay in the folder: a later run finds their
    receipts done in the ledger (or in the portal) and records nothing twice.
    """
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    drafts, errors = receipt_drafts(files)

    def finish(run: BotRun[Any], items: Mapping[str, WorkItem]) -> None:
        assert isinstance(run, GoodsReceiptsRun)
        run.unreadable = [str(e) for e in errors]
        run.results += [
            ReceiptResult(
                status=STATUS_BUSINESS,
                reason_code="UNREADABLE_INPUT",
                reason=str(e),
                document=Path(e.file).name,
            )
            for e in errors
        ]
        name = f"goods-receipts-{run.run_id}.xlsx"
        target = settings.paths.resolve("outbox") / name
        run.workbook = write_results_workbook(run, target, sheet="Receipts", columns=RESULT_COLUMNS)

    run = await run_bot(
        GoodsReceiptBot,
        drafts,
        settings=settings,
        portal_url=portal_url,
        contexts=contexts,
        run_id=run_id,
        options={"today": today},
        audit={"folder": str(folder), "files": len(files), "unreadable": len(errors)},
        finish=finish,
        run_type=GoodsReceiptsRun,
    )
    assert isinstance(run, GoodsReceiptsRun)
    return run
