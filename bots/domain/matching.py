"""The shared vocabulary of invoice matching: :class:`MatchingPolicy`, :class:`Decision`
and :class:`Reason`, the reason codes, the normalisation of VAT and invoice numbers,
the UK financial year and :func:`summarise`.

Pure domain logic, no I/O. The engine that decides documents is
:func:`bots.domain.match_tables.match_documents` (column-wise, with the sequential
rules in :mod:`bots.domain.match_sequential`); the readable reference engine that the
differential tests compare it against lives under ``tests/oracle/``. The rules
(defaults in ``config/procbots.toml``, overridable per supplier) are in docs/matching.md:

- 3-way match (order, receipt, invoice) for ``receipt_required`` lines, 2-way
  (order, invoice) otherwise.
- Unit price above the PO price is held when over the *stricter* of the % and the
  absolute per-unit tolerance; below the PO price is approved with a note.
- Quantities are cumulative per PO line over every approved invoice and credit note,
  processed in a fixed order (issue date, supplier VAT, normalised invoice number),
  so the same documents in any order give the same decisions. Held and rejected
  documents do not consume quantity: a clerk releases or the supplier re-issues them.
- Header totals and VAT (recomputed per rate group) are checked within tolerances;
  small differences are accepted with a note.
- Exact duplicates (same supplier VAT and normalised number in the same UK financial
  year) are rejected; possible duplicates (same supplier and gross amount, with dates
  within a few days or numbers one edit apart) are held.

Example:
    >>> normalise_invoice_number("inv-000123"), normalise_vat("GB 980 7806 84")
    ('INV123', '980780684')
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "HOLD_CODES",
    "NOTE_CODES",
    "REJECT_CODES",
    "ZERO_CATEGORIES",
    "Decision",
    "DecisionKind",
    "MatchingPolicy",
    "Reason",
    "financial_year",
    "normalise_invoice_number",
    "normalise_vat",
    "one_edit_apart",
    "summarise",
]

DecisionKind = Literal["approve", "hold", "reject"]

REJECT_CODES = frozenset({"DUPLICATE_INVOICE"})
"""Reason codes that reject a document outright."""

HOLD_CODES = frozenset(
    {
        "NO_PO",
        "PO_NOT_FOUND",
        "SUPPLIER_MISMATCH",
        "CURRENCY_MISMATCH",
        "LINE_NOT_ON_PO",
        "PRICE_OVER_TOLERANCE",
        "QTY_OVER_ORDERED",
        "QTY_OVER_RECEIVED",
        "NOT_RECEIVED",
        "VAT_RATE_MISMATCH",
        "VAT_ARITHMETIC",
        "TOTALS_ARITHMETIC",
        "POSSIBLE_DUPLICATE",
        "CREDIT_NOTE_NO_REFERENCE",
        "CREDIT_EXCEEDS_INVOICED",
    }
)
"""Reason codes that put a document on hold for a clerk."""

NOTE_CODES = frozenset(
    {
        "PRICE_UNDER_PO",
        "PRICE_WITHIN_TOLERANCE",
        "LINE_ROUNDING",
        "LINE_DISCOUNT",
        "TOTALS_ROUNDING",
        "VAT_ROUNDING",
        "PO_FROM_BILLING_REFERENCE",
        "CREDIT_REFERENCE_UNKNOWN",
    }
)
"""Codes of notes: facts recorded on a decision that do not change it."""

_ZERO = Decimal(0)
ZERO_CATEGORIES = frozenset({"Z", "E", "O", "AE", "K", "G"})
"""VAT categories (UNCL5305) that carry no VAT: zero-rated, exempt, outside scope, reverse charge."""


# --- policy --------------------------------------------------------------------------


class MatchingPolicy(BaseModel):
    """Tolerances of invoice matching; ``suppliers`` maps a VAT number to overrides.

    Example:
        >>> policy = MatchingPolicy(suppliers={"GB 980 7806 84": {"price_tolerance_pct": "5"}})
        >>> policy.for_supplier("GB980780684").price_tolerance_pct
        Decimal('5')
        >>> policy.for_supplier("GB123456789").price_tolerance_pct
        Decimal('2')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    price_tolerance_pct: Decimal = Field(Decimal("2"), ge=0)
    price_tolerance_abs: Decimal = Field(Decimal("5.00"), ge=0)
    qty_tolerance_pct: Decimal = Field(Decimal("0"), ge=0)
    header_tolerance: Decimal = Field(Decimal("1.00"), ge=0)
    vat_tolerance: Decimal = Field(Decimal("0.05"), ge=0)
    vat_rates: tuple[Decimal, ...] = (Decimal("20"), Decimal("5"), Decimal("0"))
    duplicate_days: int = Field(3, ge=0)
    similar_numbers: bool = Field(
        True,
        description="Hold same-amount invoices whose numbers are one edit apart; a supplier "
        "billing a fixed fee with sequential numbers can switch this off",
    )
    suppliers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("suppliers")
    @classmethod
    def _normalised_supplier_keys(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        allowed = set(cls.model_fields) - {"suppliers"}
        normalised: dict[str, dict[str, Any]] = {}
        for vat, overrides in value.items():
            unknown = set(overrides) - allowed
            if unknown:
                raise ValueError(
                    f"supplier {vat}: unknown matching setting(s) {sorted(unknown)}; "
                    f"expected some of {sorted(allowed)}"
                )
            normalised[normalise_vat(vat)] = dict(overrides)
        return normalised

    @model_validator(mode="after")
    def _overrides_valid(self) -> MatchingPolicy:
        # Validate every override now, so a bad supplier setting fails at start-up
        # rather than when that supplier's first invoice arrives.
        for vat in self.suppliers:
            self.for_supplier(vat)
        return self

    @classmethod
    def from_settings(cls, settings: Any) -> MatchingPolicy:
        """The policy of ``settings.matching`` (a ``MatchingPolicySettings``)."""
        data = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings)
        return cls.model_validate(data)

    def for_supplier(self, vat_number: str | None) -> MatchingPolicy:
        """This policy with the overrides of one supplier (by VAT number) applied."""
        overrides = self.suppliers.get(normalise_vat(vat_number)) if vat_number else None
        if not overrides:
            return self
        base = self.model_dump(exclude={"suppliers"})
        return MatchingPolicy.model_validate({**base, **overrides})


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a document was held or rejected (or a note on it): a code, the invoice line
    it concerns (``None`` for the whole document) and a message for a payables clerk."""

    code: str
    line_no: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: ``{"code", "line_no", "message"}``."""
        return {"code": self.code, "line_no": self.line_no, "message": self.message}


@dataclass(frozen=True, slots=True)
class Decision:
    """The matching outcome of one invoice or credit note."""

    invoice_number: str
    supplier_vat: str | None
    document_type: str
    decision: DecisionKind
    reasons: tuple[Reason, ...] = ()
    po_number: str | None = None
    gross_amount: Decimal = _ZERO
    notes: tuple[Reason, ...] = ()
    issue_date: dt.date | None = None
    currency: str = "GBP"
    source: str | None = None

    @property
    def codes(self) -> list[str]:
        """The reason codes, in the order found."""
        return [reason.code for reason in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``procbots match --json`` (amounts as decimal strings)."""
        return {
            "invoice_number": self.invoice_number,
            "supplier_vat": self.supplier_vat,
            "document_type": self.document_type,
            "decision": self.decision,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "notes": [note.to_dict() for note in self.notes],
            "po_number": self.po_number,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "currency": self.currency,
            "gross_amount": str(self.gross_amount),
            "source": self.source,
        }


# --- normalisation helpers -----------------------------------------------------------

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def normalise_vat(value: str | None) -> str:
    """A VAT number as a comparison key: no spaces or punctuation, upper case, no
    ``GB`` prefix (``"GB 980 7806 84"`` and ``"980780684"`` are the same supplier)."""
    if not value:
        return ""
    key = _NOT_ALNUM.sub("", value).upper()
    if key.startswith("GB") and key[2:3].isdigit():
        key = key[2:]
    return key


def normalise_invoice_number(value: str) -> str:
    """An invoice number as suppliers re-key it: no spaces or punctuation, upper case,
    and no leading zeros in any run of digits (``"inv-000123"`` -> ``"INV123"``)."""
    # Zeros are stripped per digit run before punctuation goes, so "2024/0007"
    # stays two runs ("20247") rather than one ("20240007" -> no change).
    return _NOT_ALNUM.sub("", _LEADING_ZEROS.sub("", value)).upper()


def financial_year(day: dt.date) -> int:
    """The UK financial year (1 April to 31 March) a date falls in, by its first year."""
    return day.year if day.month >= 4 else day.year - 1


def one_edit_apart(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with exactly one character substituted, inserted or deleted."""
    la, lb = len(a), len(b)
    if la == lb:
        if a == b:
            return False
        differences = 0
        for x, y in zip(a, b, strict=True):
            if x != y:
                differences += 1
                if differences > 1:
                    return False
        return True
    if la > lb:
        a, b, la, lb = b, a, lb, la
    if lb - la != 1:
        return False
    for i in range(la):
        if a[i] != b[i]:
            return a[i:] == b[i + 1 :]
    return True


def summarise(decisions: Sequence[Decision]) -> dict[str, Any]:
    """Counts and values by decision, the most frequent hold reasons and a per-supplier
    breakdown: the ``summary`` object of ``procbots match --json``.

    Amounts are decimal strings; credit notes count as negative values.
    """
    counts: Counter[str] = Counter()
    values: defaultdict[str, Decimal] = defaultdict(Decimal)
    reason_counts: Counter[str] = Counter()
    suppliers: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        signed = -decision.gross_amount if decision.document_type == "credit_note" else decision.gross_amount
        counts[decision.decision] += 1
        values[decision.decision] += signed
        for reason in decision.reasons:
            reason_counts[reason.code] += 1
        supplier = suppliers.setdefault(
            decision.supplier_vat or "",
            {"documents": 0, "approve": 0, "hold": 0, "reject": 0, "value": Decimal(0)},
        )
        supplier["documents"] += 1
        supplier[decision.decision] += 1
        supplier["value"] += signed
    return {
        "documents": len(decisions),
        "counts": {kind: counts.get(kind, 0) for kind in ("approve", "hold", "reject")},
        "values": {kind: str(values.get(kind, Decimal("0.00"))) for kind in ("approve", "hold", "reject")},
        "top_reasons": [{"code": code, "count": n} for code, n in reason_counts.most_common(10)],
        "by_supplier": [
            {
                "supplier_vat": vat or None,
                **{k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()},
            }
            for vat, row in sorted(suppliers.items())
        ],
    }
