"""The purchase-order bot: requisition spreadsheet in, purchase orders raised in the portal.

Procurement staff drop a requisition workbook (or CSV), one row per line; rows that
share a ``requisition_ref`` are one order. The bot

1. reads every row with the file connectors, converting cells itself so that a bad
   cell is reported against its requisition (row and field named), never dropped;
2. checks each requisition (:func:`check_requisition`): supplier known to the portal
   and VAT number matching, GB VAT and GTIN check digits, quantity above 0, price not
   negative, VAT rate allowed by policy, delivery site shaped like an ODS code,
   need-by date not in the past (Europe/London). A failed requisition is a business
   exception whose reason names every row and field at fault;
3. raises each valid requisition in the portal **exactly once** with the runtime's
   step helper (:meth:`bots.runtime.item.Item.once`): it searches the PO list by
   requisition reference, creates the order only when none is there, checkpoints
   the PO number the moment the portal shows it, then checks the PO detail page
   against the requisition (supplier, lines, totals);
4. writes the results workbook (and optionally a PEPPOL Order per PO) to the outbox.

Everything around a requisition (browser, sign-in, retries, evidence, the
ledger, the circuit breaker, result rows) is the runtime's (:mod:`bots.runtime`).

The rules of a requisition (checks, the order it becomes, the comparison with the
portal) are pure and live in :mod:`bots.domain.requisitions`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bots.domain.errors import BusinessError
from bots.domain.inputs import LONDON, Problem, group_rows, london_today
from bots.domain.models import Party, PurchaseOrder, Supplier
from bots.domain.requisitions import (
    PurchaseOrderMismatch,
    Requisition,
    RequisitionInvalid,
    RequisitionLine,
    check_requisition,
    compare_with_portal,
    to_purchase_order,
)
from bots.runtime.bot import Bot, RunContext
from bots.runtime.item import Item
from bots.runtime.ledger import Ledger, WorkItem
from bots.runtime.results import (
    EXCEPTION_STATUSES,
    STANDARD_COLUMNS,
    STATUS_BUSINESS,
    STATUS_FAILED,
    STATUS_NEEDS_REVIEW,
    STATUS_PENDING,
    BotRun,
    ResultColumn,
    ResultRow,
    item_fields,
)
from bots.runtime.results import write_results_workbook as _write_workbook
from bots.runtime.run import run_bot
from bots.runtime.sync import run_sync
from connectors.portal.pages.base import PortalCredentials, PortalSession
from connectors.portal.pages.new_po import NewPurchaseOrderPage
from connectors.portal.pages.po_detail import PurchaseOrderDetailPage
from connectors.portal.pages.po_list import PurchaseOrderListPage
from connectors.portal.pages.suppliers import SupplierDirectoryPage
from connectors.rows import (
    RAW,
    ConversionError,
    ReadResult,
    RowError,
    to_date,
    to_decimal,
    to_percent,
    to_text,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "BOT",
    "EXCEPTION_STATUSES",
    "LONDON",
    "PO_CREATED",
    "PO_VERIFIED",
    "REQUISITION_ALIASES",
    "STATUS_BUSINESS",
    "STATUS_EARLIER",
    "STATUS_EXISTING",
    "STATUS_FAILED",
    "STATUS_NEEDS_REVIEW",
    "STATUS_PENDING",
    "STATUS_RAISED",
    "STATUS_WOULD_RAISE",
    "Problem",
    "PurchaseOrderBot",
    "PurchaseOrderMismatch",
    "PurchaseOrderRun",
    "Requisition",
    "RequisitionBatch",
    "RequisitionInvalid",
    "RequisitionLine",
    "RequisitionResult",
    "RequisitionRow",
    "check_requisition",
    "compare_with_portal",
    "group_requisitions",
    "london_today",
    "raise_purchase_orders",
    "read_requisitions",
    "run_purchase_orders",
    "to_purchase_order",
    "write_results_workbook",
]


# --- reading the requisition file -------------------------------------------------------

REQUISITION_ALIASES: dict[str, list[str]] = {
    "requisition_ref": ["requisition", "requisition no", "requisition number", "req ref", "req no"],
    "supplier_id": ["supplier", "supplier code", "vendor", "vendor id"],
    "supplier_vat": ["vat number", "supplier vat number", "vat no", "vat reg"],
    "cost_centre": ["cost center", "cost centre code"],
    "delivery_site": ["site", "delivery ods", "ods code", "delivery location"],
    "need_by": ["need by date", "required by", "date required", "needed by"],
    "item_code": ["gtin", "item", "product code", "catalogue code"],
    "description": ["item description", "product"],
    "quantity": ["qty"],
    "unit_price": ["price", "unit cost", "price each"],
    "vat_rate": ["vat", "vat %", "vat percent", "tax rate"],
}
"""Header spellings staff use for each requisition column (matched case- and space-insensitively)."""

_REQUIRED_COLUMNS = [name for name in REQUISITION_ALIASES if name != "description"]


class RequisitionRow(BaseModel):
    """One row of the requisition file, cells as read (see :func:`group_requisitions`)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    requisition_ref: Annotated[Any, RAW] = None
    supplier_id: Annotated[Any, RAW] = None
    supplier_vat: Annotated[Any, RAW] = None
    cost_centre: Annotated[Any, RAW] = None
    delivery_site: Annotated[Any, RAW] = None
    need_by: Annotated[Any, RAW] = None
    item_code: Annotated[Any, RAW] = None
    description: Annotated[Any, RAW] = None
    quantity: Annotated[Any, RAW] = None
    unit_price: Annotated[Any, RAW] = None
    vat_rate: Annotated[Any, RAW] = None


class RequisitionBatch(BaseModel):
    """What one input file holds: requisitions (valid or not) and rows that belong to none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    requisitions: list[Requisition]
    orphan_rows: list[str] = Field(default_factory=list)
    """Readable messages for rows with no requisition reference (reported, never raised)."""


def _text(value: Any) -> str:
    return (to_text(value) or "").strip()


_HEADER_FIELDS = ("supplier_id", "supplier_vat", "cost_centre", "delivery_site", "need_by")


def _convert(field: str, converter: Any, raw: Any, row: int, problems: list[Problem]) -> Any:
    try:
        return converter(raw)
    except ConversionError as exc:
        problems.append(
            Problem(code="UNREADABLE_VALUE", field=field, row=row, value=_text(raw), message=str(exc))
        )
        return None


def group_requisitions(
    rows: Sequence[RequisitionRow],
    row_numbers: Sequence[int],
    *,
    source: str,
    errors: Sequence[RowError] = (),
) -> RequisitionBatch:
    """Converts raw rows and groups them into requisitions by ``requisition_ref``, in file order.

    A cell that does not convert, or a header field (supplier, cost centre, site,
    need-by) that differs between rows of one requisition, becomes a :class:`Problem`
    of that requisition. ``errors`` are reader errors (a formula without a value);
    those rows cannot be placed and are reported as orphans.
    """
    orphans = [str(error) for error in errors]
    placed = []
    for row, number in zip(rows, row_numbers, strict=True):
        if _text(row.requisition_ref):
            placed.append((row, number))
        else:
            orphans.append(f"row {number}: requisition_ref is empty, so the row belongs to no requisition")
    groups = group_rows(placed, key=lambda pair: _text(pair[0].requisition_ref))
    requisitions = [_requisition(ref, group, source) for ref, group in groups.items()]
    return RequisitionBatch(source=source, requisitions=requisitions, orphan_rows=orphans)


def _requisition(ref: str, group: Sequence[tuple[RequisitionRow, int]], source: str) -> Requisition:
    """One requisition from its rows: header fields from the first, a problem for each that differs."""
    found: list[Problem] = []
    lines: list[RequisitionLine] = []
    first: dict[str, Any] | None = None
    first_row = group[0][1]
    for row, number in group:
        header = {
            "supplier_id": _text(row.supplier_id),
            "supplier_vat": _text(row.supplier_vat),
            "cost_centre": _text(row.cost_centre),
            "delivery_site": _text(row.delivery_site).upper(),
            "need_by": _convert("need_by", to_date, row.need_by, number, found),
        }
        if first is None:
            first = header
        else:
            for name in _HEADER_FIELDS:
                if header[name] is not None and first[name] is not None and header[name] != first[name]:
                    found.append(
                        Problem(
                            code="INCONSISTENT_REQUISITION",
                            field=name,
                            row=number,
                            value=str(header[name]),
                            message=f"differs from {first[name]!s} on row {first_row} "
                            "of the same requisition",
                        )
                    )
        lines.append(
            RequisitionLine(
                row=number,
                item_code=_text(row.item_code),
                description=_text(row.description),
                quantity=_convert("quantity", to_decimal, row.quantity, number, found),
                unit_price=_convert("unit_price", to_decimal, row.unit_price, number, found),
                vat_rate=_convert("vat_rate", to_percent, row.vat_rate, number, found),
            )
        )
    assert first is not None
    return Requisition(requisition_ref=ref, source=source, lines=lines, problems=found, **first)


def read_requisitions(
    path: str | Path, *, aliases: Mapping[str, Iterable[str]] | None = None
) -> RequisitionBatch:
    """Reads a requisition workbook (.xlsx/.xlsm) or CSV into requisitions.

    Raises:
        connectors.rows.SpreadsheetError: the file cannot be read at all, or has no
            header row with the requisition columns (the message names the file).

    Example:
        >>> batch = read_requisitions("inbox/requisitions.xlsx")  # doctest: +SKIP
        >>> [r.requisition_ref for r in batch.requisitions][:2]  # doctest: +SKIP
        ['REQ-2026-000001', 'REQ-2026-000002']
    """
    path = Path(path)
    merged: dict[str, list[str]] = {name: list(spellings) for name, spellings in REQUISITION_ALIASES.items()}
    for name, extra in (aliases or {}).items():
        merged.setdefault(name, []).extend([extra] if isinstance(extra, str) else extra)
    result: ReadResult[RequisitionRow]
    if path.suffix.lower() in (".csv", ".txt"):
        from connectors import csvfiles

        result = csvfiles.read_rows(path, RequisitionRow, aliases=merged, required=_REQUIRED_COLUMNS)
    else:
        from connectors import excel

        result = excel.read_rows(path, RequisitionRow, aliases=merged, required=_REQUIRED_COLUMNS)
    return group_requisitions(result.rows, result.row_numbers, source=str(path), errors=result.errors)


# --- the bot: raising requisitions in the portal ------------------------------------------

BOT = "purchase_orders"
"""The bot name its work items are filed under in the ledger."""

PO_CREATED = "po_created"
"""Step: the portal holds a PO for this requisition (value: the PO number)."""
PO_VERIFIED = "po_verified"
"""Checkpoint: the PO's detail page matched the requisition."""


STATUS_RAISED = "Raised"
STATUS_EXISTING = "Already in portal"
STATUS_EARLIER = "Raised in an earlier run"
STATUS_WOULD_RAISE = "Would raise (dry run)"


class RequisitionResult(ResultRow):
    """One row of the results workbook: what happened to one requisition."""

    requisition_ref: str
    rows: str = ""
    supplier_id: str = ""
    lines: int = 0
    gross_total: Decimal | None = None
    po_number: str | None = None
    link: str | None = None


RESULT_COLUMNS = (
    ResultColumn("requisition_ref", "Requisition reference"),
    ResultColumn("rows", "Input rows"),
    ResultColumn("supplier_id", "Supplier"),
    ResultColumn("lines", "Lines", "int"),
    ResultColumn("gross_total", "Gross total", "money"),
    STANDARD_COLUMNS["status"],
    ResultColumn("po_number", "PO number"),
    ResultColumn("link", "PO in portal", "link"),
    STANDARD_COLUMNS["reason_code"],
    STANDARD_COLUMNS["reason"],
    STANDARD_COLUMNS["attempts"],
    STANDARD_COLUMNS["evidence"],
)
"""Columns of the results workbook's "Requisitions" sheet."""


def _row_span(rows: Sequence[int]) -> str:
    if not rows:
        return ""
    low, high = min(rows), max(rows)
    return str(low) if low == high else f"{low}-{high}"


def _gross(requisition: Requisition) -> Decimal | None:
    try:
        return to_purchase_order(requisition).gross_total
    except (ValueError, ArithmeticError):
        return None


class PurchaseOrderBot(Bot[Requisition]):
    """Raises requisitions as purchase orders in the portal, exactly once each.

    Options:
        today: the UK date need-by dates are checked against (default: now, Europe/London).
    """

    name: ClassVar[str] = BOT
    title: ClassVar[str] = "Purchase orders"
    payload = Requisition
    key_name: ClassVar[str] = "requisition_ref"

    def __init__(self, run: RunContext, *, today: dt.date | None = None) -> None:
        super().__init__(run)
        self.today = today or london_today()
        self.vat_rates = list(run.settings.matching.vat_rates)
        self._suppliers: dict[str, Supplier | None] = {}
        self._directory_complete: bool | None = None
        self._directory_lock = asyncio.Lock()

    def key(self, payload: Requisition) -> str:
        return payload.requisition_ref

    async def process(self, item: Item[Requisition], page: PortalSession) -> dict[str, Any]:
        """Checks one requisition, finds or raises its PO, verifies it; returns the item's result.

        Raises:
            BusinessError: the requisition is invalid, the supplier unknown to the portal,
                the portal refused the order, or the stored order differs.
        """
        requisition = item.payload
        problems = check_requisition(requisition, today=self.today, vat_rates=self.vat_rates)
        if not problems:
            supplier = await self._supplier(requisition.supplier_id, page)
            known = {supplier.supplier_id: supplier.vat_number} if supplier else {}
            problems = check_requisition(
                requisition, today=self.today, vat_rates=self.vat_rates, suppliers=known
            )
        if problems:
            raise RequisitionInvalid.from_problems(requisition, problems)
        order = to_purchase_order(requisition)
        ref = requisition.requisition_ref
        if self.run.dry_run:
            existing = await self._find(ref, page)
            if existing is not None:
                return {"po_number": existing, "found_existing": True, "dry_run": True}
            return {"would_raise": True, "dry_run": True, "gross_total": str(order.gross_total)}
        step = await item.once(
            PO_CREATED,
            find=lambda: self._find(ref, page),
            do=lambda: self._create(order, page),
            audit={"supplier_id": order.supplier_id, "gross_total": str(order.gross_total)},
        )
        view = await PurchaseOrderDetailPage(page).read(step.value)
        differences = compare_with_portal(
            order.model_copy(update={"po_number": step.value}),
            view.order,
            net_total=view.net_total,
            vat_total=view.vat_total,
            gross_total=view.gross_total,
        )
        if differences:
            raise PurchaseOrderMismatch(
                "PO_MISMATCH",
                f"Purchase order {step.value} in the portal differs from requisition {ref}: "
                + "; ".join(differences),
            )
        if not item.done_step(PO_VERIFIED):
            await item.checkpoint(PO_VERIFIED, step.value)
        self.log.info(
            "po verified", requisition_ref=ref, po_number=step.value, gross_total=str(view.gross_total)
        )
        return {
            "po_number": step.value,
            "found_existing": step.found,
            "link": view.url,
            "supplier_name": view.order.supplier_name,
            "supplier_vat": view.order.supplier_vat,
            "lines": len(view.order.lines),
            "net_total": str(view.net_total),
            "vat_total": str(view.vat_total),
            "gross_total": str(view.gross_total),
        }

    async def _find(self, ref: str, page: PortalSession) -> str | None:
        existing = await PurchaseOrderListPage(page).find_by_requisition(ref)
        if len(existing) > 1:
            numbers = ", ".join(s.po_number for s in existing)
            raise BusinessError(
                "DUPLICATE_PO",
                f"Requisition {ref} already has {len(existing)} purchase orders in the portal "
                f"({numbers}); cancel the extra ones there before this requisition is marked done",
            )
        if existing:
            self.log.info("po already in portal", requisition_ref=ref, po_number=existing[0].po_number)
            return existing[0].po_number
        return None

    async def _create(self, order: PurchaseOrder, page: PortalSession) -> str:
        self.log.info("raising po", requisition_ref=order.requisition_ref, lines=len(order.lines))
        po_number = await NewPurchaseOrderPage(page).create(order)
        self.log.info("po created", requisition_ref=order.requisition_ref, po_number=po_number)
        return po_number

    async def _supplier(self, supplier_id: str, page: PortalSession) -> Supplier | None:
        key = supplier_id.upper()
        async with self._directory_lock:  # one worker reads the directory; the others wait for it
            if self._directory_complete is None:
                directory, complete = await SupplierDirectoryPage(page).all()
                self._suppliers.update(directory)
                self._directory_complete = complete
                self.log.info("supplier directory read", suppliers=len(directory), complete=complete)
        if key not in self._suppliers and not self._directory_complete:
            self._suppliers[key] = await SupplierDirectoryPage(page).find(supplier_id)
        return self._suppliers.get(key)

    def wants_evidence(self, error: BusinessError) -> bool:
        """Evidence for business errors found in the portal; an invalid requisition names its rows."""
        return not isinstance(error, RequisitionInvalid)

    def done_status(self, result: Mapping[str, Any], earlier: bool) -> str:
        if result.get("would_raise"):
            return STATUS_WOULD_RAISE
        if earlier:
            return STATUS_EARLIER
        return STATUS_EXISTING if result.get("found_existing") else STATUS_RAISED

    def result_row(self, payload: Requisition, item: WorkItem | None, earlier: bool) -> RequisitionResult:
        fields = item_fields(item, self.done_status((item.result or {}) if item else {}, earlier))
        result = (item.result or {}) if item is not None else {}
        done = fields["status"] not in EXCEPTION_STATUSES
        gross = result.get("gross_total") if done and not result.get("would_raise") else None
        return RequisitionResult(
            **fields,
            requisition_ref=payload.requisition_ref,
            rows=_row_span(payload.rows),
            supplier_id=payload.supplier_id,
            lines=len(payload.lines),
            gross_total=Decimal(str(gross)) if gross else _gross(payload),
            po_number=result.get("po_number") or (item.checkpoints.get(PO_CREATED) if item else None),
            link=result.get("link") if done else None,
        )


# --- a run: file in, items through the runtime, results out --------------------------------


@dataclass
class PurchaseOrderRun(BotRun[RequisitionResult]):
    """The outcome of one run of the purchase-order bot."""

    bot: str = BOT
    title: str = "Purchase orders"
    orders_xml: list[Path] = field(default_factory=list)


def write_results_workbook(run: PurchaseOrderRun, path: Path) -> Path:
    """Writes the results workbook: a summary with a chart, then one row per requisition."""
    return _write_workbook(run, path, sheet="Requisitions", columns=RESULT_COLUMNS)


def _peppol_order(requisition: Requisition, item: WorkItem, buyer: Party) -> bytes:
    from connectors.peppol import write_order

    result = item.result or {}
    po = to_purchase_order(requisition, po_number=str(result["po_number"])).model_copy(
        update={"supplier_name": str(result.get("supplier_name") or "")}
    )
    supplier = Party(name=po.supplier_name or po.supplier_id, vat_number=requisition.supplier_vat or None)
    return write_order(po, buyer=buyer, supplier=supplier)


async def raise_purchase_orders(
    source: str | Path,
    *,
    settings: Settings | None = None,
    portal_url: str | None = None,
    dry_run: bool = False,
    contexts: int | None = None,
    peppol: bool = False,
    buyer: Party | None = None,
    credentials: PortalCredentials | None = None,
    ledger: Ledger | None = None,
    run_id: str | None = None,
    today: dt.date | None = None,
) -> PurchaseOrderRun:
    """Raises every requisition of ``source`` in the portal and writes the results workbook.

    Args:
        source: the requisition workbook (.xlsx/.xlsm) or CSV.
        settings: procbots settings (default: the process settings).
        portal_url: the portal (default ``settings.portal.url``).
        dry_run: check and search only: nothing is created, the ledger is not touched.
        contexts: browser contexts working at once (default ``settings.browser.contexts``).
        peppol: also write a PEPPOL BIS Order 3 XML per purchase order raised.
        buyer: the buying organisation named in PEPPOL orders.
        credentials: the portal user (default from settings).
        ledger: the work-item ledger (default from settings).
        run_id: names evidence folders and output files (default: time + random).
        today: the UK date need-by dates are checked against (tests).

    Raises:
        connectors.rows.SpreadsheetError: the file cannot be read or has no requisition header.
        config.settings.SettingsError: no portal password is configured.

    Example:
        >>> run = asyncio.run(raise_purchase_orders("inbox/requisitions.xlsx"))  # doctest: +SKIP
        >>> run.counts, run.workbook  # doctest: +SKIP
        ({'Raised': 45, 'Business exception': 5}, PosixPath('var/outbox/purchase-orders-....xlsx'))
    """
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    source = Path(source)
    batch = read_requisitions(source)
    by_ref = {r.requisition_ref: r for r in batch.requisitions}

    def finish(run: BotRun[Any], items: Mapping[str, WorkItem]) -> None:
        assert isinstance(run, PurchaseOrderRun)
        run.results += [
            RequisitionResult(
                requisition_ref="(none)",
                status=STATUS_BUSINESS,
                reason_code="NO_REQUISITION_REF",
                reason=message,
            )
            for message in batch.orphan_rows
        ]
        outbox = settings.paths.resolve("outbox")
        if peppol and not dry_run:
            for ref, item in items.items():
                if str(item.state) == "done" and (item.result or {}).get("po_number"):
                    target = outbox / "orders" / f"{item.result['po_number']}.xml"  # type: ignore[index]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(_peppol_order(by_ref[ref], item, buyer or Party(name="NHS trust")))
                    run.orders_xml.append(target)
        stem = "purchase-orders-dry-run" if dry_run else "purchase-orders"
        run.workbook = write_results_workbook(run, outbox / f"{stem}-{source.stem}-{run.run_id}.xlsx")

    run = await run_bot(
        PurchaseOrderBot,
        batch.requisitions,
        settings=settings,
        portal_url=portal_url,
        credentials=credentials,
        ledger=ledger,
        run_id=run_id,
        contexts=contexts,
        dry_run=dry_run,
        source=source,
        options={"today": today},
        audit={"orphan_rows": len(batch.orphan_rows)},
        finish=finish,
        run_type=PurchaseOrderRun,
    )
    assert isinstance(run, PurchaseOrderRun)
    return run


def run_purchase_orders(source: str | Path, **options: Any) -> PurchaseOrderRun:
    """Synchronous :func:`raise_purchase_orders` (CLI, Prefect task); same arguments."""
    return run_sync(raise_purchase_orders(source, **options))
