"""The sentences a payables clerk reads on a held, rejected or noted invoice.

Pure functions of plain values (numbers as exact ``Decimal`` or as the engine's integers
of 1/10,000, dates, strings), used by
the product engine: :mod:`bots.domain.match_tables` words its reasons column by column,
:mod:`bots.domain.match_sequential` those of the documents it decides one by one
(credit notes, duplicates, shared cumulative quantities).
Each returns the message of one reason code; the wording is the interface people read,
so the differential tests compare it, character for character, with the readable
reference engine kept under ``tests/`` as the oracle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "WITHIN_TOLERANCE",
    "credit_exceeds_invoice",
    "credit_exceeds_line",
    "credit_no_reference",
    "credit_reference_unknown",
    "currency_mismatch",
    "day",
    "duplicate",
    "financial_year_label",
    "line_not_on_po",
    "money",
    "no_lines",
    "no_po",
    "number",
    "pennies_money",
    "po_from_billing_reference",
    "po_not_found",
    "possible_duplicate_days",
    "possible_duplicate_number",
    "price",
    "quantity",
    "rebill_after_credit",
    "scaled_number",
    "scaled_unit_price",
    "supplier_mismatch",
    "tolerance_text",
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


# --- amounts held as integers of 1/10,000 (the engine's columns) ---------------------------

SCALE = 10_000


def scaled_number(value: int) -> str:
    """:func:`number` of ``value`` / 10,000, from the integer: ``125000`` -> ``12.5``."""
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), SCALE)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:04d}".rstrip("0")


def pennies_money(pennies: int, currency: str = "GBP") -> str:
    """:func:`money` of an amount already rounded to pennies."""
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if pennies < 0 else ""
    whole, cents = divmod(abs(pennies), 100)
    return f"{sign}{symbol}{whole:,}.{cents:02d}"


def scaled_unit_price(value: int, currency: str = "GBP") -> str:
    """:func:`unit_price` of ``value`` / 10,000."""
    if value % 100 == 0:
        return pennies_money(value // 100, currency)
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    return f"{'-' if value < 0 else ''}{symbol}{scaled_number(abs(value))}"


# --- line reasons -------------------------------------------------------------------------


def vat_category(label: int, rate: int, category: str, accepted: Sequence[Decimal]) -> str:
    """``VAT_RATE_MISMATCH``: a rate (1/10,000 of a per cent) the policy does not accept,
    or a category that does not fit the rate."""
    if Decimal(rate).scaleb(-4) not in accepted:
        listed = ", ".join(number(r) + "%" for r in accepted)
        shown = scaled_number(rate)
        return f"Line {label}: VAT rate {shown}% is not a UK VAT rate this policy accepts ({listed})"
    return f"Line {label}: VAT category {category} does not fit VAT rate {scaled_number(rate)}%"


def line_not_on_po(label: int, po: str, reference: str) -> str:
    """``LINE_NOT_ON_PO``: the line names a PO line the order does not have."""
    return f"Line {label}: purchase order {po} has no line {reference}"


def tolerance_text(tolerance_pct: Decimal, tolerance_abs: Decimal, currency: str) -> str:
    """``(tolerance 2% / £5.00)``: the price tolerance as the price messages state it."""
    return f"(tolerance {number(tolerance_pct)}% / {money(tolerance_abs, currency)})"


def price(label: int, po_line_no: int, invoiced: int, ordered: int, tolerance: str, currency: str) -> str:
    """The text of ``PRICE_UNDER_PO``, ``PRICE_WITHIN_TOLERANCE`` (without "; within
    tolerance, accepted") or ``PRICE_OVER_TOLERANCE``; prices in 1/10,000,
    ``tolerance`` from :func:`tolerance_text`."""
    where = f"Line {label}" if label == po_line_no else f"Line {label} (PO line {po_line_no})"
    if invoiced < ordered:
        return (
            f"{where}: unit price {scaled_unit_price(invoiced, currency)} is below the PO price "
            f"{scaled_unit_price(ordered, currency)}; accepted"
        )
    over = invoiced - ordered
    if ordered:
        # over / ordered as a percentage, rounded half up to a tenth, in integers.
        tenths = (over * 2000 + ordered) // (2 * ordered)
        share = f"{tenths // 10}.{tenths % 10}% over"
    else:
        share = f"{scaled_unit_price(over, currency)} over"
    return (
        f"{where}: unit price {scaled_unit_price(invoiced, currency)} is {share} the PO price "
        f"{scaled_unit_price(ordered, currency)} {tolerance}"
    )


WITHIN_TOLERANCE = "; within tolerance, accepted"


def vat_rate_differs(label: int, rate: int, po_rate: int) -> str:
    """``VAT_RATE_MISMATCH``: the line's rate is not the PO line's (1/10,000 of a per cent)."""
    return (
        f"Line {label}: VAT rate {scaled_number(rate)}% differs from the PO line's {scaled_number(po_rate)}%"
    )


def quantity(code: str, label: int, po_line_no: int, kind: str, total: int, before: int, limit: int) -> str:
    """``QTY_OVER_ORDERED`` (``limit`` ordered), ``QTY_OVER_RECEIVED`` (``limit``
    received) or ``NOT_RECEIVED``; quantities in 1/10,000, ``before`` what approved
    documents billed earlier."""
    already = f" (already invoiced {scaled_number(before)})" if before else ""
    if code == "QTY_OVER_ORDERED":
        return (
            f"Line {label}: {kind}d quantity would reach {scaled_number(total)} on PO line {po_line_no} "
            f"but only {scaled_number(limit)} was ordered{already}"
        )
    if code == "NOT_RECEIVED":
        return (
            f"Line {label}: no goods receipt is recorded for PO line {po_line_no}; "
            "ask the requester to receipt the goods"
        )
    return (
        f"Line {label}: invoiced quantity would reach {scaled_number(total)} on PO line {po_line_no} "
        f"but only {scaled_number(limit)} has been received{already}"
    )


# --- the sequential rules (bots.domain.match_sequential): credits and duplicates ---------


def credit_no_reference() -> str:
    """``CREDIT_NOTE_NO_REFERENCE``."""
    return (
        "Credit note does not name the invoice it credits (billing reference); "
        "ask the supplier which invoice it reduces"
    )


def credit_reference_unknown(reference: str) -> str:
    """``CREDIT_REFERENCE_UNKNOWN`` (a note)."""
    return f"Credited invoice {reference} is not among the invoices matched in this run"


def po_from_billing_reference(po: str, invoice_number: str) -> str:
    """``PO_FROM_BILLING_REFERENCE`` (a note)."""
    return f"Purchase order {po} taken from credited invoice {invoice_number}"


def credit_exceeds_line(label: int, po_line_no: int, credited: Decimal, invoiced: Decimal) -> str:
    """``CREDIT_EXCEEDS_INVOICED`` on a line: more credited than approved invoices billed."""
    return (
        f"Line {label}: crediting {number(credited)} of PO line {po_line_no} "
        f"but only {number(invoiced)} has been invoiced and approved"
    )


def credit_exceeds_invoice(gross: Decimal, invoice_number: str, invoiced: Decimal, currency: str) -> str:
    """``CREDIT_EXCEEDS_INVOICED`` on the document: more than the credited invoice's gross."""
    return (
        f"Credit note of {money(gross, currency)} exceeds invoice {invoice_number} "
        f"of {money(invoiced, currency)}"
    )


def rebill_after_credit(invoice_number: str, issued: dt.date, credit_note: str, kind: str) -> str:
    """``REBILL_AFTER_CREDIT`` (a note): the invoice was reversed in full and is billed again."""
    return (
        f"Invoice {invoice_number} dated {day(issued)} was reversed in full by credit note "
        f"{credit_note}; this {kind} bills it again and is not a duplicate"
    )


def duplicate(kind: str, invoice_number: str, issued: dt.date, year: int) -> str:
    """``DUPLICATE_INVOICE``: same supplier and number in the same financial year."""
    return (
        f"Duplicate of {kind} {invoice_number} dated {day(issued)} from the same supplier "
        f"in financial year {financial_year_label(year)}; already processed, do not pay again"
    )


def possible_duplicate_days(
    kind: str, invoice_number: str, issued: dt.date, gross: Decimal, currency: str, days: int
) -> str:
    """``POSSIBLE_DUPLICATE``: same supplier and amount within a few days."""
    return (
        f"Possible duplicate of {kind} {invoice_number} dated {day(issued)}: "
        f"same supplier and same amount {money(gross, currency)}, {days} day(s) apart"
    )


def possible_duplicate_number(
    kind: str, invoice_number: str, issued: dt.date, gross: Decimal, currency: str
) -> str:
    """``POSSIBLE_DUPLICATE``: same supplier and amount, numbers one edit apart."""
    return (
        f"Possible duplicate of {kind} {invoice_number} dated {day(issued)}: same supplier, "
        f"same amount {money(gross, currency)} and the numbers differ by one character"
    )
