"""The rules of a requisition: what makes it raisable, the order it becomes, and how to compare
that order with what the portal shows. Pure: no I/O.

Example:
    >>> import datetime as dt
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

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bots.domain.errors import BusinessError
from bots.domain.identifiers import check_gb_vat, check_gtin, check_ods_code
from bots.domain.inputs import Problem
from bots.domain.models import POLine, PurchaseOrder, money

__all__ = [
    "PurchaseOrderMismatch",
    "Requisition",
    "RequisitionInvalid",
    "RequisitionLine",
    "check_requisition",
    "compare_with_portal",
    "to_purchase_order",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
