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
3. raises each valid requisition in the portal **exactly once**: it searches the PO
   list by requisition reference before creating, checkpoints the PO number the
   moment the portal shows it, then checks the PO detail page against the
   requisition (supplier, lines, totals);
4. writes the results workbook (and optionally a PEPPOL Order per PO) to the outbox.

The validation half of this module is pure (no I/O); the portal half drives page
objects from :mod:`connectors.portal.pages`.

Example:
    >>> from decimal import Decimal
    >>> req = Requisition(
    ...     requisition_ref="REQ-1", source="reqs.xlsx", supplier_id="SUP-0001",
    ...     supplier_vat="GB980780684", cost_centre="CC100", delivery_site="RX1AB",
    ...     need_by=dt.date(2030, 1, 31),
    ...     lines=[RequisitionLine(row=2, item_code="5012345678900", description="Gloves",
    ...                            quantity=Decimal("10"), unit_price=Decimal("4.50"),
    ...                            vat_rate=Decimal("20"))],
    ... )
    >>> check_requisition(req, today=dt.date(2029, 1, 1), vat_rates=[Decimal("20")])
    []
    >>> to_purchase_order(req).gross_total
    Decimal('54.00')
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from bots.domain.errors import BusinessError, SessionExpired
from bots.domain.identifiers import check_gb_vat, check_gtin, check_ods_code
from bots.domain.models import Party, POLine, PurchaseOrder, Supplier, money
from bots.runtime.ledger import Evidence, Ledger, WorkItem
from bots.runtime.portal_bot import PortalBot, PortalWorker
from config.logging import get_logger
from connectors.audit import audit_event
from connectors.portal.pages.base import LoginRejected, PortalCredentials, PortalSession
from connectors.portal.pages.new_po import NewPurchaseOrderPage
from connectors.portal.pages.po_detail import PurchaseOrderDetailPage
from connectors.portal.pages.po_list import PurchaseOrderListPage
from connectors.portal.pages.suppliers import SupplierDirectoryPage
from connectors.rows import (
    ColumnKind,
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
    "LONDON",
    "PO_CREATED",
    "PO_FOUND",
    "PO_VERIFIED",
    "REQUISITION_ALIASES",
    "PortalWorker",
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

LONDON = ZoneInfo("Europe/London")


def london_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Europe/London (need-by dates are UK calendar dates)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(LONDON).date()


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(_Model):
    """One thing wrong with a requisition, at one row and field of the input file."""

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


class RequisitionLine(_Model):
    """One requested line; amounts are ``None`` when the cell could not be read."""

    row: int
    item_code: str = ""
    description: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    vat_rate: Decimal | None = None


class Requisition(_Model):
    """A requisition: the lines of one ``requisition_ref``, with the problems found reading them.

    This is the work item's payload, so it stays JSON-serialisable.
    """

    requisition_ref: str
    source: str = ""
    supplier_id: str = ""
    supplier_vat: str = ""
    cost_centre: str = ""
    delivery_site: str = ""
    need_by: dt.date | None = None
    lines: list[RequisitionLine] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    @property
    def rows(self) -> list[int]:
        """The input rows of this requisition."""
        return [line.row for line in self.lines]

    @property
    def first_row(self) -> int | None:
        """Where the requisition starts in the input file."""
        return min(self.rows, default=None)


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)


def check_requisition(
    requisition: Requisition,
    *,
    today: dt.date,
    vat_rates: Iterable[Decimal],
    suppliers: Mapping[str, str | None] | None = None,
) -> list[Problem]:
    """Every problem with ``requisition``; an empty list means it can be raised.

    Args:
        requisition: the requisition, with any problems found while reading it.
        today: the UK calendar date (see :func:`london_today`); need-by must not be before it.
        vat_rates: the VAT rates policy allows (``config`` ``matching.vat_rates``).
        suppliers: supplier id -> VAT number as the portal knows them; ``None``
            skips the "known supplier" check (no portal at hand).
    """
    problems = list(requisition.problems)
    row = requisition.first_row
    supplier_id = requisition.supplier_id
    if not supplier_id:
        problems.append(Problem(code="UNKNOWN_SUPPLIER", field="supplier_id", row=row, message="is required"))
    elif suppliers is not None and supplier_id not in suppliers:
        problems.append(
            Problem(
                code="UNKNOWN_SUPPLIER",
                field="supplier_id",
                row=row,
                value=supplier_id,
                message=f"supplier {supplier_id} is not known to the portal",
            )
        )
    vat = check_gb_vat(requisition.supplier_vat) if requisition.supplier_vat else None
    if vat is None:
        problems.append(
            Problem(code="INVALID_VAT_NUMBER", field="supplier_vat", row=row, message="is required")
        )
    elif not vat.valid:
        problems.append(
            Problem(
                code="INVALID_VAT_NUMBER",
                field="supplier_vat",
                row=row,
                value=requisition.supplier_vat,
                message=vat.message or "not a valid GB VAT number",
            )
        )
    elif suppliers is not None and supplier_id in suppliers:
        known = suppliers[supplier_id]
        if known and check_gb_vat(known).normalised != vat.normalised:
            problems.append(
                Problem(
                    code="SUPPLIER_VAT_MISMATCH",
                    field="supplier_vat",
                    row=row,
                    value=requisition.supplier_vat,
                    message=f"the portal has VAT number {known} for supplier {supplier_id}",
                )
            )
    if not requisition.cost_centre:
        problems.append(Problem(code="MISSING_FIELD", field="cost_centre", row=row, message="is required"))
    ods = check_ods_code(requisition.delivery_site) if requisition.delivery_site else None
    if ods is None or not ods.valid:
        problems.append(
            Problem(
                code="INVALID_DELIVERY_SITE",
                field="delivery_site",
                row=row,
                value=requisition.delivery_site,
                message=(ods.message if ods is not None else "is required"),
            )
        )
    if requisition.need_by is None:
        if not any(p.field == "need_by" for p in problems):
            problems.append(Problem(code="MISSING_FIELD", field="need_by", row=row, message="is required"))
    elif requisition.need_by < today:
        problems.append(
            Problem(
                code="NEED_BY_IN_PAST",
                field="need_by",
                row=row,
                value=requisition.need_by.strftime("%d/%m/%Y"),
                message=f"need-by date is before today ({today:%d/%m/%Y})",
            )
        )
    problems.extend(_line_problems(requisition.lines, vat_rates, problems))
    return problems


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _line_problems(
    lines: Sequence[RequisitionLine], vat_rates: Iterable[Decimal], known: Sequence[Problem]
) -> list[Problem]:
    allowed = sorted({Decimal(rate).normalize() for rate in vat_rates})
    unreadable = {(p.row, p.field) for p in known}
    problems: list[Problem] = []
    if not lines:
        problems.append(Problem(code="NO_LINES", message="has no lines"))
    for line in lines:
        code = line.item_code
        if not code:
            problems.append(
                Problem(code="MISSING_FIELD", field="item_code", row=line.row, message="is required")
            )
        elif code.isdigit():
            # Numeric item codes are GTINs (catalogue items); others are service codes.
            gtin = check_gtin(code)
            if not gtin.valid:
                problems.append(
                    Problem(
                        code="INVALID_GTIN",
                        field="item_code",
                        row=line.row,
                        value=code,
                        message=gtin.message or "GTIN check digit is wrong",
                    )
                )
        if line.quantity is None:
            if (line.row, "quantity") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="quantity", row=line.row, message="is required")
                )
        elif line.quantity <= 0:
            problems.append(
                Problem(
                    code="INVALID_QUANTITY",
                    field="quantity",
                    row=line.row,
                    value=_shown(line.quantity),
                    message="quantity must be more than 0",
                )
            )
        if line.unit_price is None:
            if (line.row, "unit_price") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="unit_price", row=line.row, message="is required")
                )
        elif line.unit_price < 0:
            problems.append(
                Problem(
                    code="INVALID_PRICE",
                    field="unit_price",
                    row=line.row,
                    value=_shown(line.unit_price),
                    message="unit price must not be negative",
                )
            )
        if line.vat_rate is None:
            if (line.row, "vat_rate") not in unreadable:
                problems.append(
                    Problem(code="MISSING_FIELD", field="vat_rate", row=line.row, message="is required")
                )
        elif line.vat_rate.normalize() not in allowed:
            problems.append(
                Problem(
                    code="VAT_RATE_NOT_ALLOWED",
                    field="vat_rate",
                    row=line.row,
                    value=_shown(line.vat_rate),
                    message=f"VAT rate {_percent(line.vat_rate)}% is not allowed (allowed: "
                    + ", ".join(f"{_percent(r)}%" for r in allowed)
                    + ")",
                )
            )
    return problems


def to_purchase_order(requisition: Requisition, po_number: str | None = None) -> PurchaseOrder:
    """The purchase order a valid requisition becomes (line numbers in input order).

    Raises:
        ValueError: when a line has no quantity, price or VAT rate (check first).
    """
    lines = []
    for number, line in enumerate(requisition.lines, start=1):
        if line.quantity is None or line.unit_price is None or line.vat_rate is None:
            raise ValueError(f"row {line.row} of {requisition.requisition_ref} is incomplete")
        lines.append(
            POLine(
                line_no=number,
                item_code=line.item_code,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                vat_rate=line.vat_rate,
            )
        )
    return PurchaseOrder(
        po_number=po_number,
        requisition_ref=requisition.requisition_ref,
        supplier_id=requisition.supplier_id,
        supplier_vat=requisition.supplier_vat or None,
        cost_centre=requisition.cost_centre,
        delivery_site=requisition.delivery_site,
        need_by=requisition.need_by,
        lines=lines,
    )


# --- reading the requisition file -------------------------------------------------------

RAW = ColumnKind("raw", lambda value: value)
"""Keeps the cell as read: the bot converts it, so a bad cell stays with its requisition."""

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


class RequisitionBatch(_Model):
    """What one input file holds: requisitions (valid or not) and rows that belong to none."""

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
    order: list[str] = []
    headers: dict[str, dict[str, Any]] = {}
    header_rows: dict[str, int] = {}
    lines: dict[str, list[RequisitionLine]] = {}
    problems: dict[str, list[Problem]] = {}
    orphans = [str(error) for error in errors]
    for row, number in zip(rows, row_numbers, strict=True):
        ref = _text(row.requisition_ref)
        if not ref:
            orphans.append(f"row {number}: requisition_ref is empty, so the row belongs to no requisition")
            continue
        if ref not in lines:
            order.append(ref)
            lines[ref], problems[ref] = [], []
        found = problems[ref]

        header = {
            "supplier_id": _text(row.supplier_id),
            "supplier_vat": _text(row.supplier_vat),
            "cost_centre": _text(row.cost_centre),
            "delivery_site": _text(row.delivery_site).upper(),
            "need_by": _convert("need_by", to_date, row.need_by, number, found),
        }
        if ref not in headers:
            headers[ref], header_rows[ref] = header, number
        else:
            first = headers[ref]
            for name in _HEADER_FIELDS:
                if header[name] is not None and first[name] is not None and header[name] != first[name]:
                    found.append(
                        Problem(
                            code="INCONSISTENT_REQUISITION",
                            field=name,
                            row=number,
                            value=str(header[name]),
                            message=f"differs from {first[name]!s} on row {header_rows[ref]} "
                            "of the same requisition",
                        )
                    )
        lines[ref].append(
            RequisitionLine(
                row=number,
                item_code=_text(row.item_code),
                description=_text(row.description),
                quantity=_convert("quantity", to_decimal, row.quantity, number, found),
                unit_price=_convert("unit_price", to_decimal, row.unit_price, number, found),
                vat_rate=_convert("vat_rate", to_percent, row.vat_rate, number, found),
            )
        )
    requisitions = [
        Requisition(
            requisition_ref=ref,
            source=source,
            supplier_id=headers[ref]["supplier_id"],
            supplier_vat=headers[ref]["supplier_vat"],
            cost_centre=headers[ref]["cost_centre"],
            delivery_site=headers[ref]["delivery_site"],
            need_by=headers[ref]["need_by"],
            lines=lines[ref],
            problems=problems[ref],
        )
        for ref in order
    ]
    return RequisitionBatch(source=source, requisitions=requisitions, orphan_rows=orphans)


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


# --- comparing the portal's order with the requisition ------------------------------------


def compare_with_portal(
    order: PurchaseOrder,
    shown: PurchaseOrder,
    *,
    net_total: Decimal,
    vat_total: Decimal,
    gross_total: Decimal,
) -> list[str]:
    """What differs between the order meant (``order``) and the order the portal shows.

    Unit prices are compared to the penny, because the portal shows them so; line
    amounts and totals exactly. An empty list means the portal holds what was keyed.
    """
    out: list[str] = []

    def differ(what: str, meant: object, found: object) -> None:
        out.append(f"{what}: requisition has {meant}, portal shows {found}")

    if (shown.requisition_ref or "") != (order.requisition_ref or ""):
        differ("requisition reference", order.requisition_ref, shown.requisition_ref)
    if shown.supplier_id.upper() != order.supplier_id.upper():
        differ("supplier", order.supplier_id, shown.supplier_id)
    if order.supplier_vat and shown.supplier_vat:
        meant_vat = check_gb_vat(order.supplier_vat).normalised
        if check_gb_vat(shown.supplier_vat).normalised != meant_vat:
            differ("supplier VAT number", order.supplier_vat, shown.supplier_vat)
    if shown.cost_centre.upper() != order.cost_centre.upper():
        differ("cost centre", order.cost_centre, shown.cost_centre)
    if shown.delivery_site.upper() != order.delivery_site.upper():
        differ("delivery site", order.delivery_site, shown.delivery_site)
    if shown.need_by != order.need_by:
        differ("need-by date", order.need_by, shown.need_by)
    if len(shown.lines) != len(order.lines):
        differ("number of lines", len(order.lines), len(shown.lines))
    for meant, found in zip(order.lines, shown.lines, strict=False):
        where = f"line {meant.line_no}"
        if found.item_code != meant.item_code:
            differ(f"{where} item code", meant.item_code, found.item_code)
        if found.description.strip() != meant.description.strip():
            differ(f"{where} description", meant.description, found.description)
        if found.quantity != meant.quantity:
            differ(f"{where} quantity", meant.quantity, found.quantity)
        if money(found.unit_price) != money(meant.unit_price):
            differ(f"{where} unit price", f"£{money(meant.unit_price)}", f"£{money(found.unit_price)}")
        if found.vat_rate != meant.vat_rate:
            differ(f"{where} VAT rate", f"{_percent(meant.vat_rate)}%", f"{_percent(found.vat_rate)}%")
    for what, meant_total, found_total in (
        ("net total", order.net_total, net_total),
        ("VAT total", order.vat_total, vat_total),
        ("gross total", order.gross_total, gross_total),
    ):
        if meant_total != found_total:
            differ(what, f"£{meant_total}", f"£{found_total}")
    return out


# --- the bot: raising requisitions in the portal ------------------------------------------

BOT = "purchase_orders"
"""The bot name its work items are filed under in the ledger."""

PO_CREATED = "po_created"
"""Checkpoint: the portal holds a PO for this requisition (value: the PO number)."""
SESSION_RETRIES = 2
"""Times an item starts again at once when the portal session ended mid-item (before the runner's retry)."""
PO_FOUND = "po_found"
"""Checkpoint: the PO was already in the portal when the bot looked (raised earlier or by hand)."""
PO_VERIFIED = "po_verified"
"""Checkpoint: the PO's detail page matched the requisition."""


class RequisitionInvalid(BusinessError):
    """A requisition that fails its checks; the message lists every row and field at fault."""

    default_code = "INVALID_REQUISITION"

    @classmethod
    def from_problems(cls, requisition: Requisition, problems: Sequence[Problem]) -> RequisitionInvalid:
        """One business exception naming every problem (code: the first problem's)."""
        text = "; ".join(str(p) for p in problems)
        return cls(problems[0].code, f"Requisition {requisition.requisition_ref}: {text}")


class PurchaseOrderMismatch(BusinessError):
    """The order the portal stored differs from the requisition (supplier, lines or totals)."""

    default_code = "PO_MISMATCH"


class PurchaseOrderBot(PortalBot):
    """Raises requisitions as purchase orders in the portal, exactly once each.

    One instance serves every worker of a run; :meth:`process` is the runner's
    async process function and :meth:`worker` its ``worker_setup``.

    Args:
        ledger: the work-item ledger (checkpoints and evidence are written to it).
        portal_url: the portal's base URL.
        credentials: the portal user.
        settings: procbots settings (browser timeouts, VAT policy, evidence folder).
        run_id: names the evidence folder of this run.
        dry_run: check and search only; never create an order.
        today: the UK date need-by dates are checked against (default: now, Europe/London).
    """

    item_key_name = "requisition_ref"

    def __init__(
        self,
        *,
        ledger: Ledger,
        portal_url: str,
        credentials: PortalCredentials,
        settings: Settings,
        run_id: str,
        dry_run: bool = False,
        today: dt.date | None = None,
    ) -> None:
        self.ledger = ledger
        self.portal_url = portal_url.rstrip("/")
        self.credentials = credentials
        self.settings = settings
        self.run_id = run_id
        self.dry_run = dry_run
        self.today = today or london_today()
        self.vat_rates = list(settings.matching.vat_rates)
        self.log = get_logger("purchase_orders").bind(run_id=run_id, dry_run=dry_run)
        self._suppliers: dict[str, Supplier | None] = {}
        self._directory_complete: bool | None = None
        self._directory_lock: asyncio.Lock | None = None
        self._init_portal()

    # -- per item ------------------------------------------------------------------------

    async def process(self, item: WorkItem, worker: PortalWorker) -> dict[str, Any]:
        """Checks one requisition, finds or raises its PO, verifies it; returns the item's result.

        Raises:
            BusinessError: the requisition is invalid, the supplier unknown to the portal,
                the portal refused the order, or the stored order differs.
            ApplicationError: portal trouble (5xx, session, timeouts): the runner retries,
                and this attempt's screenshot, page and trace are kept as evidence.
        """
        requisition = item.payload_as(Requisition)
        problems = check_requisition(requisition, today=self.today, vat_rates=self.vat_rates)
        if problems:
            raise RequisitionInvalid.from_problems(requisition, problems)
        try:
            for _expiry in range(SESSION_RETRIES):
                try:
                    return await self._raise_in_portal(item, requisition, worker)
                except SessionExpired as exc:
                    # Signed in again already, and nothing was posted: start over from the search.
                    self.log.info("session expired mid-item, starting the item again", reason=exc.message)
            return await self._raise_in_portal(item, requisition, worker)
        except BusinessError:
            raise
        except Exception as exc:
            if isinstance(exc, LoginRejected):
                self.rejected = exc
            await self._keep_evidence(item, exc, worker, folder=f"attempt-{item.attempts}")
            raise

    async def _raise_in_portal(
        self, item: WorkItem, requisition: Requisition, worker: PortalWorker
    ) -> dict[str, Any]:
        session = worker.session
        if self.rejected is not None:
            raise self.rejected
        supplier = await self._supplier(requisition.supplier_id, session)
        problems = check_requisition(
            requisition,
            today=self.today,
            vat_rates=self.vat_rates,
            suppliers={supplier.supplier_id: supplier.vat_number} if supplier else {},
        )
        if problems:
            raise RequisitionInvalid.from_problems(requisition, problems)
        order = to_purchase_order(requisition)
        ref = requisition.requisition_ref
        po_number = item.done_step(PO_CREATED) or None
        found_existing = bool(item.done_step(PO_FOUND))
        if po_number is None:
            existing = await PurchaseOrderListPage(session).find_by_requisition(ref)
            if len(existing) > 1:
                numbers = ", ".join(s.po_number for s in existing)
                raise BusinessError(
                    "DUPLICATE_PO",
                    f"Requisition {ref} already has {len(existing)} purchase orders in the portal "
                    f"({numbers}); cancel the extra ones there before this requisition is marked done",
                )
            if existing:
                po_number, found_existing = existing[0].po_number, True
                self.log.info("po already in portal", requisition_ref=ref, po_number=po_number)
                if self.dry_run:
                    return {"po_number": po_number, "found_existing": True, "dry_run": True}
                await asyncio.to_thread(item.checkpoint, PO_FOUND, po_number)
                await asyncio.to_thread(item.checkpoint, PO_CREATED, po_number)
                audit_event("po_found_existing", bot=BOT, run_id=self.run_id, item_id=item.id,
                            requisition_ref=ref, po_number=po_number)  # fmt: skip
            elif self.dry_run:
                return {"would_raise": True, "dry_run": True, "gross_total": str(order.gross_total)}
            else:
                po_number = await self._create(item, order, session)
        view = await PurchaseOrderDetailPage(session).read(po_number)
        differences = compare_with_portal(
            order.model_copy(update={"po_number": po_number}),
            view.order,
            net_total=view.net_total,
            vat_total=view.vat_total,
            gross_total=view.gross_total,
        )
        if differences:
            raise PurchaseOrderMismatch(
                "PO_MISMATCH",
                f"Purchase order {po_number} in the portal differs from requisition {ref}: "
                + "; ".join(differences),
            )
        if not item.done_step(PO_VERIFIED):
            await asyncio.to_thread(item.checkpoint, PO_VERIFIED, po_number)
        self.log.info(
            "po verified", requisition_ref=ref, po_number=po_number, gross_total=str(view.gross_total)
        )
        return {
            "po_number": po_number,
            "found_existing": found_existing,
            "link": view.url,
            "supplier_name": view.order.supplier_name,
            "supplier_vat": view.order.supplier_vat,
            "lines": len(view.order.lines),
            "net_total": str(view.net_total),
            "vat_total": str(view.vat_total),
            "gross_total": str(view.gross_total),
        }

    async def _create(self, item: WorkItem, order: PurchaseOrder, session: PortalSession) -> str:
        ref = order.requisition_ref
        self.log.info("raising po", requisition_ref=ref, lines=len(order.lines))
        po_number = await NewPurchaseOrderPage(session).create(order)
        # Recorded before anything else can fail: a retry must find it, not key it again.
        await asyncio.to_thread(item.checkpoint, PO_CREATED, po_number)
        audit_event(
            "po_created",
            bot=BOT,
            run_id=self.run_id,
            item_id=item.id,
            requisition_ref=ref,
            po_number=po_number,
            supplier_id=order.supplier_id,
            gross_total=order.gross_total,
        )
        self.log.info("po created", requisition_ref=ref, po_number=po_number)
        return po_number

    async def _supplier(self, supplier_id: str, session: PortalSession) -> Supplier | None:
        key = supplier_id.upper()
        if self._directory_lock is None:
            self._directory_lock = asyncio.Lock()
        async with self._directory_lock:  # one worker reads the directory; the others wait for it
            if self._directory_complete is None:
                directory, complete = await SupplierDirectoryPage(session).all()
                self._suppliers.update(directory)
                self._directory_complete = complete
                self.log.info("supplier directory read", suppliers=len(directory), complete=complete)
        if key not in self._suppliers and not self._directory_complete:
            self._suppliers[key] = await SupplierDirectoryPage(session).find(supplier_id)
        return self._suppliers.get(key)

    # -- evidence ------------------------------------------------------------------------

    async def on_error(
        self, item: WorkItem, exc: BaseException, worker: PortalWorker | None
    ) -> list[Evidence]:
        """The runner's final-failure hook: evidence for business errors found in the portal.

        System errors already kept evidence at each attempt; an invalid requisition
        needs none (the reason names the rows).
        """
        if isinstance(exc, RequisitionInvalid) or not isinstance(exc, BusinessError):
            return []
        return await self._capture(item, worker, folder="business-exception")


# --- a run: file in, items through the runner, results out ----------------------------------

STATUS_RAISED = "Raised"
STATUS_EXISTING = "Already in portal"
STATUS_EARLIER = "Raised in an earlier run"
STATUS_WOULD_RAISE = "Would raise (dry run)"
STATUS_BUSINESS = "Business exception"
STATUS_FAILED = "Failed (system error)"
STATUS_NEEDS_REVIEW = "Needs review"
STATUS_PENDING = "Not processed"
EXCEPTION_STATUSES = frozenset({STATUS_BUSINESS, STATUS_FAILED, STATUS_NEEDS_REVIEW, STATUS_PENDING})


class RequisitionResult(_Model):
    """One row of the results workbook: what happened to one requisition."""

    requisition_ref: str
    rows: str = ""
    supplier_id: str = ""
    lines: int = 0
    gross_total: Decimal | None = None
    status: str
    po_number: str | None = None
    link: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    attempts: int = 0
    item_id: int | None = None
    evidence: str | None = None


@dataclass
class PurchaseOrderRun:
    """The outcome of one run of the purchase-order bot."""

    run_id: str
    source: Path
    results: list[RequisitionResult]
    workbook: Path | None = None
    orders_xml: list[Path] = field(default_factory=list)
    dry_run: bool = False
    retries: int = 0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None

    @property
    def counts(self) -> dict[str, int]:
        """How many requisitions ended in each status."""
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    @property
    def exceptions(self) -> list[RequisitionResult]:
        """The requisitions people must act on."""
        return [r for r in self.results if r.status in EXCEPTION_STATUSES]

    @property
    def exit_code(self) -> int:
        """0 when every requisition has its PO (or would, in a dry run), 1 otherwise."""
        return 1 if self.exceptions else 0


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


def _result_for(requisition: Requisition, item: WorkItem | None, earlier: bool) -> RequisitionResult:
    base = {
        "requisition_ref": requisition.requisition_ref,
        "rows": _row_span(requisition.rows),
        "supplier_id": requisition.supplier_id,
        "lines": len(requisition.lines),
        "gross_total": _gross(requisition),
    }
    if item is None:
        return RequisitionResult(**base, status=STATUS_PENDING, reason="not added to the ledger")
    result = item.result or {}
    common = {
        **base,
        "attempts": item.attempts,
        "item_id": item.id,
        "evidence": item.evidence[-1].path if item.evidence else None,
        "po_number": result.get("po_number") or item.checkpoints.get(PO_CREATED),
    }
    state = str(item.state)
    if state == "done":
        if result.get("would_raise"):
            status = STATUS_WOULD_RAISE
        elif earlier:
            status = STATUS_EARLIER
        elif result.get("found_existing"):
            status = STATUS_EXISTING
        else:
            status = STATUS_RAISED
        gross = result.get("gross_total")
        if gross and not result.get("would_raise"):
            common["gross_total"] = Decimal(str(gross))
        return RequisitionResult(**common, status=status, link=result.get("link"))
    status = {
        "business_exception": STATUS_BUSINESS,
        "failed": STATUS_FAILED,
        "needs_review": STATUS_NEEDS_REVIEW,
    }.get(state, STATUS_PENDING)
    return RequisitionResult(
        **common, status=status, reason_code=item.reason_code, reason=item.reason_message or None
    )


def _orphan_results(batch: RequisitionBatch) -> list[RequisitionResult]:
    return [
        RequisitionResult(
            requisition_ref="(none)",
            status=STATUS_BUSINESS,
            reason_code="NO_REQUISITION_REF",
            reason=message,
        )
        for message in batch.orphan_rows
    ]


RESULT_COLUMNS = (
    ("requisition_ref", "Requisition reference", "text"),
    ("rows", "Input rows", "text"),
    ("supplier_id", "Supplier", "text"),
    ("lines", "Lines", "int"),
    ("gross_total", "Gross total", "money"),
    ("status", "Status", "text"),
    ("po_number", "PO number", "text"),
    ("link", "PO in portal", "link"),
    ("reason_code", "Reason code", "text"),
    ("reason", "Reason", "text"),
    ("attempts", "Attempts", "int"),
    ("evidence", "Evidence", "link"),
)
"""Columns of the results workbook's "Requisitions" sheet: (field, header, kind)."""


def write_results_workbook(run: PurchaseOrderRun, path: Path) -> Path:
    """Writes the results workbook: a summary with a chart, then one row per requisition."""
    from connectors.excel import ChartSpec, Column, Sheet, Summary, write_report

    counts = run.counts
    title = "Purchase orders" + (" (dry run)" if run.dry_run else "")
    summary = Summary(
        title=title,
        figures=[
            ("Input file", str(run.source)),
            ("Run", run.run_id),
            ("Started", run.started_at),
            ("Requisitions", len(run.results)),
            *[(status, count) for status, count in counts.items()],
        ],
        charts=[ChartSpec("Requisitions by outcome", list(counts), {"Requisitions": list(counts.values())})]
        if counts
        else [],
    )
    sheet = Sheet(
        "Requisitions",
        [Column(key, header, kind) for key, header, kind in RESULT_COLUMNS],  # type: ignore[arg-type]
        [r.model_dump() for r in run.results],
        highlight=("status", set(EXCEPTION_STATUSES)),
    )
    return write_report(path, [sheet], summary=summary)


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
    import hashlib
    import tempfile
    import uuid

    from playwright.async_api import async_playwright

    from bots.runtime.runner import Runner
    from connectors.portal.browser import launch_chromium_async

    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    source = Path(source)
    run_id = run_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    log = get_logger("purchase_orders").bind(run_id=run_id)
    started = dt.datetime.now(dt.UTC)
    batch = read_requisitions(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    credentials = credentials or PortalCredentials.from_settings(settings)
    url = (portal_url or settings.portal.url).rstrip("/")
    audit_event(
        "purchase_orders_run_started",
        bot=BOT,
        run_id=run_id,
        source=str(source),
        sha256=digest,
        requisitions=len(batch.requisitions),
        orphan_rows=len(batch.orphan_rows),
        portal=url,
        dry_run=dry_run,
    )
    log.info("requisitions read", source=str(source), requisitions=len(batch.requisitions), dry_run=dry_run)
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if dry_run:
        # A dry run leaves the real ledger alone: its items live in a throwaway one.
        scratch = tempfile.TemporaryDirectory(prefix="procbots-dry-run-")
        ledger = Ledger(f"sqlite:///{scratch.name}/ledger.db", audit=False)
    elif ledger is None:
        ledger = Ledger.from_settings(settings)
    try:
        keys = [r.requisition_ref for r in batch.requisitions]
        finished_before = {
            key for key in keys if (found := ledger.find(BOT, key)) is not None and str(found.state) == "done"
        }
        ledger.add_many(BOT, [(r.requisition_ref, r) for r in batch.requisitions])
        bot = PurchaseOrderBot(
            ledger=ledger,
            portal_url=url,
            credentials=credentials,
            settings=settings,
            run_id=run_id,
            dry_run=dry_run,
            today=today,
        )
        runner = Runner(ledger, BOT, settings=settings, run_id=run_id, on_error=bot.on_error)
        retries = 0
        if ledger.counts(BOT)["pending"] or ledger.counts(BOT)["system_exception"]:
            workers = max(1, contexts or settings.browser.contexts)
            async with async_playwright() as pw:
                browser = await launch_chromium_async(pw, settings.browser)
                try:
                    summary = await runner.run_async(
                        workers=workers, process=bot.process, worker_setup=bot.worker_setup(browser)
                    )
                finally:
                    await browser.close()
            retries = summary.retries
            log.info("runner finished", **{k: v for k, v in summary.as_dict().items() if k != "exceptions"})
        items = {key: ledger.find(BOT, key) for key in keys}
        results = [
            _result_for(r, items[r.requisition_ref], r.requisition_ref in finished_before)
            for r in batch.requisitions
        ] + _orphan_results(batch)
        run = PurchaseOrderRun(
            run_id=run_id,
            source=source,
            results=results,
            dry_run=dry_run,
            retries=retries,
            started_at=started,
        )
        outbox = settings.paths.resolve("outbox")
        if peppol and not dry_run:
            buyer = buyer or Party(name="NHS trust")
            for requisition in batch.requisitions:
                item = items[requisition.requisition_ref]
                if item is not None and str(item.state) == "done" and (item.result or {}).get("po_number"):
                    target = outbox / "orders" / f"{item.result['po_number']}.xml"  # type: ignore[index]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(_peppol_order(requisition, item, buyer))
                    run.orders_xml.append(target)
        stem = "purchase-orders-dry-run" if dry_run else "purchase-orders"
        run.finished_at = dt.datetime.now(dt.UTC)
        run.workbook = write_results_workbook(run, outbox / f"{stem}-{source.stem}-{run_id}.xlsx")
        audit_event(
            "purchase_orders_run_finished",
            bot=BOT,
            run_id=run_id,
            counts=run.counts,
            results=str(run.workbook),
            results_sha256=hashlib.sha256(run.workbook.read_bytes()).hexdigest(),
            peppol_orders=len(run.orders_xml),
        )
        log.info("results written", workbook=str(run.workbook), counts=run.counts)
        return run
    finally:
        if scratch is not None:
            ledger.close()
            scratch.cleanup()


def run_purchase_orders(source: str | Path, **options: Any) -> PurchaseOrderRun:
    """Synchronous :func:`raise_purchase_orders` (CLI, Prefect task); same arguments.

    Runs its own event loop, in a helper thread when the caller already has one.
    """
    coroutine = raise_purchase_orders(source, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="procbots-po") as pool:
        return pool.submit(asyncio.run, coroutine).result()
