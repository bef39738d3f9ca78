"""Identifier checks for UK public procurement: GB VAT numbers, GTIN/GLN, ODS codes,
Companies House numbers and CPV codes. Pure functions, no I/O.

Each ``check_*`` returns an :class:`IdentifierCheck` instead of raising, because the
caller decides the policy: official PEPPOL examples carry invalid check digits and
must parse with a warning, while a requisition with a bad GTIN is rejected.

Example:
    >>> check_gb_vat("GB 980 7806 84").valid
    True
    >>> check_gtin("5012345678900").valid
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "IdentifierCheck",
    "IdentifierError",
    "IdentifierPolicy",
    "check_companies_house",
    "check_cpv",
    "check_gb_vat",
    "check_gln",
    "check_gtin",
    "check_ods_code",
    "enforce",
    "gb_vat_check_digits",
    "gtin_check_digit",
]

IdentifierPolicy = Literal["reject", "warn"]


@dataclass(frozen=True, slots=True)
class IdentifierCheck:
    """Outcome of one identifier check: the normalised form and, if invalid, why."""

    kind: str
    value: str
    normalised: str
    valid: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.valid


class IdentifierError(ValueError):
    """An identifier failed its check under a ``reject`` policy."""


def enforce(check: IdentifierCheck, policy: IdentifierPolicy = "reject") -> IdentifierCheck:
    """Raise :class:`IdentifierError` for an invalid identifier when the policy is ``reject``."""
    if not check.valid and policy == "reject":
        raise IdentifierError(check.message)
    return check


def _ok(kind: str, value: str, normalised: str) -> IdentifierCheck:
    return IdentifierCheck(kind, value, normalised, True)


def _bad(kind: str, value: str, normalised: str, message: str) -> IdentifierCheck:
    return IdentifierCheck(kind, value, normalised, False, message)


# --- GB VAT -------------------------------------------------------------------------

_VAT_WEIGHTS = (8, 7, 6, 5, 4, 3, 2)
_VAT_CLEAN = re.compile(r"[\s.\-]")


def gb_vat_check_digits(first_seven: str, scheme: Literal["97", "9755"] = "9755") -> str:
    """The two check digits that make ``first_seven`` a valid GB VAT number.

    HMRC's original scheme makes the weighted sum plus the check number a multiple
    of 97; the newer "9755" scheme (numbers issued since 2010) adds 55 first.
    """
    if not re.fullmatch(r"\d{7}", first_seven):
        raise ValueError(f"expected 7 digits, got {first_seven!r}")
    total = sum(int(d) * w for d, w in zip(first_seven, _VAT_WEIGHTS, strict=True))
    if scheme == "9755":
        total += 55
    return f"{(-total) % 97:02d}"


def _vat_nine_digits_valid(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:7], _VAT_WEIGHTS, strict=True)) + int(digits[7:9])
    if total % 97 == 0:
        return True
    # The 9755 scheme was only used for numbers issued from 100 000 000 upwards.
    return int(digits[:3]) >= 100 and (total + 55) % 97 == 0


def check_gb_vat(value: str) -> IdentifierCheck:
    """Check a UK VAT number: standard 9 digits (mod-97 or 9755), 12-digit branch form,
    government departments (GD000-GD499), health authorities (HA500-HA999); prefix GB or XI.
    """
    kind = "gb_vat"
    raw = _VAT_CLEAN.sub("", value or "").upper()
    prefix = "GB"
    if raw[:2] in ("GB", "XI"):
        prefix, raw = raw[:2], raw[2:]
    normalised = prefix + raw
    if m := re.fullmatch(r"(GD|HA)8888(\d{3})(\d{2})", raw):
        # EU-format government department / health authority: 3 digits and their mod-97 check.
        raw, check = m.group(1) + m.group(2), int(m.group(3))
        if int(m.group(2)) % 97 != check:
            return _bad(kind, value, normalised, f"VAT number {value!r}: check digits do not match")
    if m := re.fullmatch(r"(GD|HA)(\d{3})", raw):
        number = int(m.group(2))
        if m.group(1) == "GD" and number >= 500:
            return _bad(kind, value, normalised, f"VAT number {value!r}: GD numbers run 000-499")
        if m.group(1) == "HA" and number < 500:
            return _bad(kind, value, normalised, f"VAT number {value!r}: HA numbers run 500-999")
        return _ok(kind, value, normalised)
    if not re.fullmatch(r"\d{9}(\d{3})?", raw):
        return _bad(
            kind,
            value,
            normalised,
            f"VAT number {value!r}: expected GB/XI followed by 9 or 12 digits, or GD/HA and 3 digits",
        )
    if not _vat_nine_digits_valid(raw[:9]):
        return _bad(kind, value, normalised, f"VAT number {value!r}: check digits do not match")
    return _ok(kind, value, normalised)


# --- GS1: GTIN and GLN ----------------------------------------------------------------


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for the digits before it (weights 3,1 from the right)."""
    if not body.isdigit():
        raise ValueError(f"expected digits, got {body!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _gs1(kind: str, value: str, lengths: tuple[int, ...]) -> IdentifierCheck:
    digits = re.sub(r"\s", "", value or "")
    if not digits.isdigit() or len(digits) not in lengths:
        wanted = "/".join(str(n) for n in lengths)
        return _bad(kind, value, digits, f"{kind.upper()} {value!r}: expected {wanted} digits")
    if gtin_check_digit(digits[:-1]) != digits[-1]:
        return _bad(kind, value, digits, f"{kind.upper()} {value!r}: check digit does not match")
    return _ok(kind, value, digits)


def check_gtin(value: str) -> IdentifierCheck:
    """Check a GTIN-8, -12, -13 or -14 (GS1 check digit)."""
    return _gs1("gtin", value, (8, 12, 13, 14))


def check_gln(value: str) -> IdentifierCheck:
    """Check a GS1 Global Location Number (13 digits)."""
    return _gs1("gln", value, (13,))


# --- NHS ODS, Companies House, CPV ---------------------------------------------------------

# ODS codes: trusts are 3 characters (e.g. RX1, RJ1), their sites 5 (RX1AB, RJ122),
# GP practices a letter and 5 digits (A81001), CCG/ICB-style codes 3 with a digit first (00L).
_ODS = re.compile(r"[A-Z0-9]{3}|[A-Z0-9]{5}|[A-Z]\d{5}|[A-Z0-9]{3}\d{2}")


def check_ods_code(value: str) -> IdentifierCheck:
    """Check the shape of an NHS ODS organisation or site code."""
    normalised = (value or "").strip().upper()
    if not _ODS.fullmatch(normalised):
        return _bad(
            "ods", value, normalised, f"ODS code {value!r}: expected 3 or 5 letters/digits (e.g. RX1, RX1AB)"
        )
    return _ok("ods", value, normalised)


_COMPANIES_HOUSE = re.compile(r"\d{8}|(SC|NI|OC|SO|NC|LP|SL|NL|R0|IP|SP|RC|SR|NP|NO|FC|GE)\d{6}")


def check_companies_house(value: str) -> IdentifierCheck:
    """Check the shape of a Companies House registration number (8 characters)."""
    normalised = re.sub(r"\s", "", value or "").upper()
    if normalised.isdigit() and len(normalised) < 8:
        normalised = normalised.zfill(8)
    if not _COMPANIES_HOUSE.fullmatch(normalised):
        return _bad(
            "companies_house",
            value,
            normalised,
            f"Companies House number {value!r}: expected 8 digits or a 2-letter prefix and 6 digits",
        )
    return _ok("companies_house", value, normalised)


def check_cpv(value: str) -> IdentifierCheck:
    """Check the shape of a Common Procurement Vocabulary code (``33140000-3``)."""
    normalised = (value or "").strip()
    if not re.fullmatch(r"\d{8}(-\d)?", normalised):
        return _bad("cpv", value, normalised, f"CPV code {value!r}: expected 8 digits and a check digit")
    return _ok("cpv", value, normalised)
