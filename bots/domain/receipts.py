"""Goods receipts from despatch advices and point-of-use scans: grouping and business rules.

Pure: no I/O. The goods-receipts bot turns each PEPPOL despatch advice into one
receipt, and a scan export into one receipt per purchase order and (London) day, then
checks each against the purchase order as the portal shows it:

* ``UNKNOWN_PO``: the document names no purchase order, or one the portal does not have.
* ``UNKNOWN_PO_LINE``: a line names a PO line the order does not have (or none, and
  its GTIN is on no line either).
* ``GTIN_MISMATCH``: the despatched or scanned GTIN is not the PO line's item.
* ``OVER_RECEIPT``: the receipt would take a line's received quantity over the ordered one.
* ``DATE_IN_FUTURE``: the received date is after today (London).
* ``DUPLICATE_DESPATCH``: a second despatch advice with the ID of one already seen.

Every message names the document and the line, so a person can find both.

Example:
    >>> draft = from_despatch(advice, "DA-1234.xml")  # doctest: +SKIP
    >>> check_receipt(draft, po_lines, today)  # doctest: +SKIP
    ((1, Decimal('10')), (2, Decimal('6')))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from bots.domain.errors import BusinessError
from bots.domain.models import DespatchAdvice, Quantity

__all__ = [
    "GRN_MAX",
    "RECEIPT_REASONS",
    "PoLineState",
    "ReceiptDraft",
    "ReceivedLine",
    "Scan",
    "check_against_order",
    "check_document",
    "check_receipt",
    "from_despatch",
    "from_scans",
    "grn_number",
    "same_item",
    "with_duplicates_marked",
]

RECEIPT_REASONS = (
    "UNKNOWN_PO",
    "UNKNOWN_PO_LINE",
    "OVER_RECEIPT",
    "DATE_IN_FUTURE",
    "GTIN_MISMATCH",
    "DUPLICATE_DESPATCH",
)
GRN_MAX = 40
"""Longest GRN number the portal takes (letters, digits, ``. - _``)."""
_LONDON = ZoneInfo("Europe/London")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Scan(_Frozen):
    """One point-of-use scan: a GS1 barcode read where the goods were used or stored."""

    gtin: str
    po_number: str
    po_line: int | None = Field(default=None, ge=1)
    quantity: Quantity = Field(gt=0)
    scanned_at: dt.datetime
    location: str = ""
    row: int = 0
    """The row of the scan export it came from (as a spreadsheet shows it)."""


class ReceivedLine(_Frozen):
    """A line of a receipt to record: what arrived against which PO line.

    ``po_line`` is ``None`` for scans that did not say; the GTIN then finds the line.
    ``ref`` names where it came from (``line 2``, ``rows 4, 9``).
    """

    po_line: int | None
    quantity: Quantity
    gtin: str | None = None
    ref: str
    line_ref: str | None = None
    """The PO line reference as the document wrote it (when it is not a number)."""


class ReceiptDraft(_Frozen):
    """One goods receipt to record: the goods-receipts bot's work-item payload."""

    key: str
    grn_number: str
    kind: Literal["despatch", "scan"]
    document: str
    """How messages name the source: ``despatch advice 1234 (DA-1234.xml)``."""
    po_number: str | None
    received_date: dt.date
    lines: tuple[ReceivedLine, ...]
    despatch_id: str | None = None
    duplicate_of: str | None = None
    """For a repeated despatch advice: the document that had its ID first."""


@dataclass(frozen=True, slots=True)
class PoLineState:
    """A purchase-order line as the portal shows it: item, ordered and received so far."""

    line_no: int
    item_code: str
    ordered: Decimal
    received: Decimal


def grn_number(prefix: str, *parts: str) -> str:
    """A readable GRN number from its parts, within the portal's 40 characters.

    Characters the portal refuses become ``_``; a number that would be too long is cut
    and ends in a hash of the whole, so two long IDs never share a GRN number.
    """
    text = _UNSAFE.sub("_", "-".join((prefix, *parts))).strip("_")
    if len(text) <= GRN_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: GRN_MAX - 9]}-{digest}"


def same_item(gtin: str, item_code: str) -> bool:
    """True when a GTIN (8, 12, 13 or 14 digits) names the item code's product.

    GTINs compare as 14 digits (a GTIN-13 is a GTIN-14 with a leading zero). An item
    code that is not a GTIN (``SVC-04200``) cannot be compared and is taken as the same.
    """
    code = item_code.strip()
    if not _is_gtin(code):
        return True
    return gtin.strip().zfill(14) == code.zfill(14)


def from_despatch(advice: DespatchAdvice, file_name: str) -> ReceiptDraft:
    """The receipt a despatch advice asks for: its lines against its order's lines.

    The received date is the advice's issue date (BIS Despatch Advice 3 sends it when
    the goods leave; a trust receipts them on arrival, which is checked not to be in
    the future).
    """
    po = (advice.order_reference or "").strip().upper() or None
    lines = []
    for line in advice.lines:
        ref = (line.order_line_reference or "").strip()
        lines.append(
            ReceivedLine(
                po_line=int(ref) if ref.isdigit() and int(ref) > 0 else None,
                quantity=line.quantity,
                gtin=line.gtin,
                ref=f"line {line.line_id}",
                line_ref=ref,
            )
        )
    return ReceiptDraft(
        key=f"despatch:{po or '-'}:{advice.despatch_id}",
        grn_number=grn_number("DA", po or "NOPO", advice.despatch_id),
        kind="despatch",
        document=f"despatch advice {advice.despatch_id} ({file_name})",
        po_number=po,
        received_date=advice.issue_date,
        lines=tuple(lines),
        despatch_id=advice.despatch_id,
    )


def with_duplicates_marked(drafts: Iterable[ReceiptDraft]) -> list[ReceiptDraft]:
    """Drafts in order; a despatch advice whose ID (for the same order) came before is
    marked ``duplicate_of`` the first one and gets a key of its own."""
    first: dict[str, ReceiptDraft] = {}
    out = []
    for draft in drafts:
        if draft.kind == "despatch" and draft.key in first:
            earlier = first[draft.key]
            out.append(
                draft.model_copy(
                    update={
                        "key": f"{draft.key}#repeat:{draft.document}",
                        "duplicate_of": earlier.document,
                    }
                )
            )
            continue
        first.setdefault(draft.key, draft)
        out.append(draft)
    return out


def from_scans(scans: Sequence[Scan], file_name: str) -> list[ReceiptDraft]:
    """One receipt per purchase order and London day of a scan export.

    Scans of the same item on the same PO line add up to one receipt line. The GRN
    number carries the file's name (hashed), so the same order scanned on the same day
    in another export is another receipt.
    """
    file_tag = hashlib.sha256(file_name.encode()).hexdigest()[:6]
    groups: dict[tuple[str, dt.date], dict[tuple[int | None, str], list[Scan]]] = {}
    for scan in scans:
        day = scan.scanned_at.astimezone(_LONDON).date()
        po = scan.po_number.strip().upper()
        groups.setdefault((po, day), {}).setdefault((scan.po_line, scan.gtin), []).append(scan)
    drafts = []
    for (po, day), by_line in groups.items():
        lines = tuple(
            ReceivedLine(
                po_line=po_line,
                quantity=sum((s.quantity for s in group), Decimal(0)),
                gtin=gtin,
                ref=("row " if len(group) == 1 else "rows ") + ", ".join(str(s.row) for s in group),
            )
            for (po_line, gtin), group in by_line.items()
        )
        drafts.append(
            ReceiptDraft(
                key=f"scan:{file_name}:{po}:{day.isoformat()}",
                grn_number=grn_number("SC", po, day.strftime("%Y%m%d"), file_tag),
                kind="scan",
                document=f"scan export {file_name}, {po} on {day.isoformat()}",
                po_number=po,
                received_date=day,
                lines=lines,
            )
        )
    return drafts


def _is_gtin(code: str) -> bool:
    return code.isdigit() and len(code) in (8, 12, 13, 14)


def _resolve(draft: ReceiptDraft, line: ReceivedLine, po_lines: Mapping[int, PoLineState]) -> int:
    where = f"{draft.document} {line.ref}"
    if line.po_line is None and draft.kind == "scan" and line.gtin:
        # A scan that did not say which line: the PO line of the scanned item.
        for n, state in sorted(po_lines.items()):
            if _is_gtin(state.item_code.strip()) and same_item(line.gtin, state.item_code):
                return n
        raise BusinessError("GTIN_MISMATCH", f"{where}: GTIN {line.gtin} is on no line of {draft.po_number}")
    if line.po_line is None:
        shown = f"PO line {line.line_ref!r}" if line.line_ref else "no PO line"
        raise BusinessError("UNKNOWN_PO_LINE", f"{where}: names {shown}, not a line of {draft.po_number}")
    if line.po_line not in po_lines:
        raise BusinessError("UNKNOWN_PO_LINE", f"{where}: {draft.po_number} has no line {line.po_line}")
    state = po_lines[line.po_line]
    if line.gtin and not same_item(line.gtin, state.item_code):
        raise BusinessError(
            "GTIN_MISMATCH",
            f"{where}: GTIN {line.gtin} is not the item of {draft.po_number} line {line.po_line} "
            f"({state.item_code})",
        )
    return line.po_line


def check_document(draft: ReceiptDraft, today: dt.date) -> None:
    """The rules a receipt must meet before anyone looks at its order.

    Raises:
        BusinessError: ``DUPLICATE_DESPATCH``, ``DATE_IN_FUTURE`` or ``UNKNOWN_PO`` (none named).
    """
    if draft.duplicate_of is not None:
        raise BusinessError(
            "DUPLICATE_DESPATCH",
            f"{draft.document}: despatch advice {draft.despatch_id} was already sent in {draft.duplicate_of}",
        )
    if draft.received_date > today:
        raise BusinessError(
            "DATE_IN_FUTURE",
            f"{draft.document}: received date {draft.received_date.isoformat()} is after today "
            f"({today.isoformat()})",
        )
    if draft.po_number is None:
        raise BusinessError("UNKNOWN_PO", f"{draft.document}: names no purchase order")


def check_against_order(
    draft: ReceiptDraft, po_lines: Mapping[int, PoLineState] | None
) -> tuple[tuple[int, Decimal], ...]:
    """The (PO line, quantity) pairs to key for ``draft`` on its order as the portal shows it.

    Args:
        po_lines: the order's lines with what was received so far; ``None`` when the
            portal has no such order.

    Raises:
        BusinessError: ``UNKNOWN_PO``, ``UNKNOWN_PO_LINE``, ``GTIN_MISMATCH`` or ``OVER_RECEIPT``.
    """
    if po_lines is None:
        raise BusinessError(
            "UNKNOWN_PO", f"{draft.document}: the portal has no purchase order {draft.po_number}"
        )
    totals: dict[int, Decimal] = {}
    refs: dict[int, str] = {}
    for line in draft.lines:
        n = _resolve(draft, line, po_lines)
        totals[n] = totals.get(n, Decimal(0)) + line.quantity
        refs[n] = f"{refs[n]} and {line.ref}" if n in refs else line.ref
    for n, quantity in totals.items():
        state = po_lines[n]
        if state.received + quantity > state.ordered:
            raise BusinessError(
                "OVER_RECEIPT",
                f"{draft.document} {refs[n]}: {_plain(quantity)} more would take {draft.po_number} line {n} "
                f"to {_plain(state.received + quantity)} received of {_plain(state.ordered)} ordered",
            )
    return tuple(sorted(totals.items()))


def check_receipt(
    draft: ReceiptDraft, po_lines: Mapping[int, PoLineState] | None, today: dt.date
) -> tuple[tuple[int, Decimal], ...]:
    """:func:`check_document`, then :func:`check_against_order`: every rule of one receipt.

    Raises:
        BusinessError: one of :data:`RECEIPT_REASONS`, naming the document and line.
    """
    check_document(draft, today)
    return check_against_order(draft, po_lines)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
