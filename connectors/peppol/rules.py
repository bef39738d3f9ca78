"""The EN 16931 calculation rules a read document is checked against (BR-CO-10 to -16,
BR-x-08/09 per VAT category, and PEPPOL's line rule PEPPOL-EN16931-R120).

A rule not met is a :class:`~connectors.peppol.document.Finding` (a warning), never a
failure: deciding what to do with one is the matcher's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from bots.domain.models import money
from connectors.peppol.document import Finding, PeppolLine, StatedTotals

__all__ = ["Findings", "MoneyParts", "TaxSubtotal", "check_arithmetic"]

LINE_TOLERANCE = Decimal("0.01")
TAX_TOLERANCE = Decimal("0.01")


class Findings(list[Finding]):
    """The findings of one document, in the order they were found."""

    def add(self, code: str, message: str) -> None:
        self.append(Finding(code, message))


@dataclass
class TaxSubtotal:
    """One VAT breakdown (TaxSubtotal) as stated, with where it is."""

    taxable: Decimal
    tax: Decimal
    category: str
    percent: Decimal
    path: str


@dataclass
class MoneyParts:
    """What the arithmetic checks need besides lines and stated totals."""

    allowances: list[tuple[Decimal, str | None, Decimal | None]] = field(default_factory=list)
    charges: list[tuple[Decimal, str | None, Decimal | None]] = field(default_factory=list)
    subtotals: list[TaxSubtotal] = field(default_factory=list)
    total_path: str = ""


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def check_arithmetic(
    lines: Sequence[PeppolLine], totals: StatedTotals, parts: MoneyParts, findings: Findings, root_path: str
) -> None:
    """EN 16931 calculation rules (BR-CO-10 to -16, BR-x-08/09 per VAT category) and
    the PEPPOL line rule (net = quantity x price / base quantity + charges - allowances)."""
    where = parts.total_path or root_path
    for line in lines:
        unit_price = line.unit_price
        if line.net_amount is None or unit_price is None:
            continue
        expected = line.quantity * unit_price + line.charges - line.allowances
        if abs(expected - line.net_amount) > LINE_TOLERANCE:
            findings.add(
                "PEPPOL-EN16931-R120",
                f"line {line.line_id}: net amount {_fmt(line.net_amount)} is not quantity x price"
                f"{' / base quantity' if line.base_quantity not in (None, 1) else ''}"
                f"{' + charges - allowances' if line.charges or line.allowances else ''}"
                f" = {_fmt(money(expected))}",
            )
    allowance_sum = sum((a for a, _, _ in parts.allowances), Decimal(0))
    charge_sum = sum((c for c, _, _ in parts.charges), Decimal(0))
    if totals.line_extension is not None and all(line.net_amount is not None for line in lines):
        line_sum = sum((line.net_amount or Decimal(0) for line in lines), Decimal(0))
        if line_sum != totals.line_extension:
            findings.add(
                "BR-CO-10",
                f"{where}: sum of line net amounts {_fmt(line_sum)} differs from "
                f"LineExtensionAmount {_fmt(totals.line_extension)}",
            )
    if parts.allowances or totals.allowances is not None:
        stated = totals.allowances or Decimal(0)
        if stated != allowance_sum:
            findings.add(
                "BR-CO-11",
                f"{where}: sum of document allowances {_fmt(allowance_sum)} differs from "
                f"AllowanceTotalAmount {_fmt(stated)}",
            )
    if parts.charges or totals.charges is not None:
        stated = totals.charges or Decimal(0)
        if stated != charge_sum:
            findings.add(
                "BR-CO-12",
                f"{where}: sum of document charges {_fmt(charge_sum)} differs from "
                f"ChargeTotalAmount {_fmt(stated)}",
            )
    zero = Decimal(0)
    if totals.tax_exclusive is not None and totals.line_extension is not None:
        expected = totals.line_extension - (totals.allowances or zero) + (totals.charges or zero)
        if expected != totals.tax_exclusive:
            findings.add(
                "BR-CO-13",
                f"{where}: TaxExclusiveAmount {_fmt(totals.tax_exclusive)} is not line total - allowances"
                f" + charges = {_fmt(expected)}",
            )
    if parts.subtotals and totals.tax is not None:
        sub_sum = sum((s.tax for s in parts.subtotals), zero)
        if sub_sum != totals.tax:
            findings.add(
                "BR-CO-14",
                f"{root_path}/cac:TaxTotal: TaxAmount {_fmt(totals.tax)} differs from the sum of "
                f"the VAT category amounts {_fmt(sub_sum)}",
            )
    if totals.tax_inclusive is not None and totals.tax_exclusive is not None:
        expected = totals.tax_exclusive + (totals.tax or zero)
        if expected != totals.tax_inclusive:
            findings.add(
                "BR-CO-15",
                f"{where}: TaxInclusiveAmount {_fmt(totals.tax_inclusive)} is not TaxExclusiveAmount"
                f" + VAT = {_fmt(expected)}",
            )
    if totals.payable is not None:
        base = totals.tax_inclusive
        if base is None and totals.tax_exclusive is None and totals.line_extension is not None:
            # Orders may state only the line total and the amount due.
            base = totals.line_extension - (totals.allowances or zero) + (totals.charges or zero)
            base += totals.tax or zero
        if base is not None:
            expected = base - (totals.prepaid or zero) + (totals.rounding or zero)
            if expected != totals.payable:
                findings.add(
                    "BR-CO-16",
                    f"{where}: PayableAmount {_fmt(totals.payable)} is not TaxInclusiveAmount - prepaid"
                    f" + rounding = {_fmt(expected)}",
                )
    _vat_breakdown(lines, parts, findings)


def _vat_breakdown(lines: Sequence[PeppolLine], parts: MoneyParts, findings: Findings) -> None:
    if not parts.subtotals:
        return
    zero = Decimal(0)

    def key(category: str | None, percent: Decimal | None) -> tuple[str, Decimal]:
        return (category or "").upper(), percent if percent is not None else zero

    base: dict[tuple[str, Decimal], Decimal] = {}
    for line in lines:
        k = key(line.vat_category, line.vat_percent)
        base[k] = base.get(k, zero) + (line.net_amount or zero)
    for amount, category, percent in parts.charges:
        k = key(category, percent)
        base[k] = base.get(k, zero) + amount
    for amount, category, percent in parts.allowances:
        k = key(category, percent)
        base[k] = base.get(k, zero) - amount
    for sub in parts.subtotals:
        cat = sub.category.upper()
        k = key(cat, sub.percent)
        expected_base = base.get(k, zero)
        if expected_base != sub.taxable:
            findings.add(
                f"BR-{cat}-08",
                f"{sub.path}: taxable amount {_fmt(sub.taxable)} for VAT category {cat} at "
                f"{_fmt(sub.percent)}% is not lines + charges - allowances = {_fmt(expected_base)}",
            )
        expected_tax = (sub.taxable * sub.percent / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if abs(expected_tax - sub.tax) > TAX_TOLERANCE:
            findings.add(
                f"BR-{cat}-09",
                f"{sub.path}: VAT {_fmt(sub.tax)} for category {cat} is not taxable amount "
                f"{_fmt(sub.taxable)} x {_fmt(sub.percent)}% = {_fmt(expected_tax)}",
            )
