"""The sentences a payables clerk reads on a held, rejected or noted invoice.

Pure functions of plain values (numbers as exact ``Decimal``, dates, strings), used by
the bulk engine (:mod:`bots.domain.match_tables`) to word its reasons column by column.
Each returns the message of one reason code; the wording is the interface people read,
so the differential tests compare it, character for character, with the readable
reference engine kept under ``tests/`` as the oracle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "currency_mismatch",
    "day",
    "financial_year_label",
    "line_not_on_po",
    "money",
    "no_lines",
    "no_po",
    "number",
    "po_not_found",
    "price",
    "quantity",
    "supplier_mismatch",
    "unit_price",
    "vat_category",
    "vat_rate_differs",
]

_PENNY = Decimal("0.01")
_TENTH = Decimal("0.1")
_HUNDRED = Decimal(100)
_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


def money(amount: Decimal, currency: str = "GBP") -> str:
    """``£1,234.50``: rounded half up to the penny, symbol for GBP/EUR/USD, else the code."""
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    rounded = amount.quantize(_PENNY, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    return f"{sign}{symbol}{abs(rounded):,.2f}"


def unit_price(amount: Decimal, currency: str = "GBP") -> str:
    """A unit price: as :func:`money`, or with every decimal it has (``£0.125`` a glove)."""
    if amount == amount.quantize(_PENNY):
        return money(amount, currency)
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    return f"{'-' if amount < 0 else ''}{symbol}{abs(amount).normalize():f}"


def number(value: Decimal) -> str:
    """A quantity or rate without trailing zeros: ``12``, ``2.5``."""
    return f"{value.normalize():f}"


def day(value: dt.date) -> str:
    """``1 May 2025``."""
    return f"{value.day} {value:%b %Y}"


def financial_year_label(year: int) -> str:
    """``2025/26`` for the year starting 1 April 2025."""
    return f"{year}/{(year + 1) % 100:02d}"


# --- document-level reasons -------------------------------------------------------------


def no_po(kind: str) -> str:
    """``NO_PO``."""
    return f"The {kind} quotes no purchase order number; find the order or return it to the supplier"


def po_not_found(po: str) -> str:
    """``PO_NOT_FOUND``."""
    return f"Purchase order {po} is not on the order book"


def supplier_mismatch(vat_number: str | None, po: str, po_vat: str | None) -> str:
    """``SUPPLIER_MISMATCH``."""
    return (
        f"Supplier VAT number {vat_number or '(none)'} is not the supplier of purchase order {po} ({po_vat})"
    )


def currency_mismatch(kind: str, currency: str, po: str, po_currency: str) -> str:
    """``CURRENCY_MISMATCH``."""
    return f"The {kind} is in {currency} but purchase order {po} is in {po_currency}"


def no_lines(kind: str, po: str) -> str:
    """``LINE_NOT_ON_PO`` for a document without lines."""
    return f"The {kind} has no lines to match to purchase order {po}"


# --- line reasons -------------------------------------------------------------------------


def vat_category(label: int, rate: Decimal, category: str, accepted: Sequence[Decimal]) -> str:
    """``VAT_RATE_MISMATCH``: a rate the policy does not accept, or a category that does
    not fit the rate."""
    if rate not in accepted:
        listed = ", ".join(number(r) + "%" for r in accepted)
        return f"Line {label}: VAT rate {number(rate)}% is not a UK VAT rate this policy accepts ({listed})"
    return f"Line {label}: VAT category {category} does not fit VAT rate {number(rate)}%"


def line_not_on_po(label: int, po: str, reference: str) -> str:
    """``LINE_NOT_ON_PO``: the line names a PO line the order does not have."""
    return f"Line {label}: purchase order {po} has no line {reference}"


def price(
    label: int,
    po_line_no: int,
    invoiced: Decimal,
    ordered: Decimal,
    tolerance_pct: Decimal,
    tolerance_abs: Decimal,
    currency: str,
) -> tuple[bool, str]:
    """A price that differs from the PO's: (over tolerance, message). Under the PO price
    is always accepted (``PRICE_UNDER_PO``); over it within tolerance is
    ``PRICE_WITHIN_TOLERANCE``; beyond the stricter of % and £ ``PRICE_OVER_TOLERANCE``."""
    where = f"Line {label}" if label == po_line_no else f"Line {label} (PO line {po_line_no})"
    if invoiced < ordered:
        return False, (
            f"{where}: unit price {unit_price(invoiced, currency)} is below the PO price "
            f"{unit_price(ordered, currency)}; accepted"
        )
    over = invoiced - ordered
    tolerance = min(ordered * tolerance_pct / _HUNDRED, tolerance_abs)
    share = (
        f"{(over * _HUNDRED / ordered).quantize(_TENTH, rounding=ROUND_HALF_UP)}% over"
        if ordered
        else f"{unit_price(over, currency)} over"
    )
    text = (
        f"{where}: unit price {unit_price(invoiced, currency)} is {share} the PO price "
        f"{unit_price(ordered, currency)} "
        f"(tolerance {number(tolerance_pct)}% / {money(tolerance_abs, currency)})"
    )
    if over > tolerance:
        return True, text
    return False, text + "; within tolerance, accepted"


def vat_rate_differs(label: int, rate: Decimal, po_rate: Decimal) -> str:
    """``VAT_RATE_MISMATCH``: the line's rate is not the PO line's."""
    return f"Line {label}: VAT rate {number(rate)}% differs from the PO line's {number(po_rate)}%"


def quantity(
    code: str,
    label: int,
    po_line_no: int,
    kind: str,
    total: Decimal,
    before: Decimal,
    limit: Decimal,
) -> str:
    """``QTY_OVER_ORDERED`` (``limit`` ordered), ``QTY_OVER_RECEIVED`` (``limit``
    received) or ``NOT_RECEIVED``; ``before`` is what approved documents billed earlier."""
    already = f" (already invoiced {number(before)})" if before else ""
    if code == "QTY_OVER_ORDERED":
        return (
            f"Line {label}: {kind}d quantity would reach {number(total)} on PO line {po_line_no} "
            f"but only {number(limit)} was ordered{already}"
        )
    if code == "NOT_RECEIVED":
        return (
            f"Line {label}: no goods receipt is recorded for PO line {po_line_no}; "
            "ask the requester to receipt the goods"
        )
    return (
        f"Line {label}: invoiced quantity would reach {number(total)} on PO line {po_line_no} "
        f"but only {number(limit)} has been received{already}"
    )
