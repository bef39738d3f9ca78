"""Identifier checks against published vectors.

GB VAT vectors are the valid/invalid examples published in python-stdnum's test suite
(tests/test_gb_vat.doctest); GS1 vectors are the examples GS1 and the EAN/UPC
literature use (e.g. EAN-13 4006381333931, EAN-8 73513537, UPC-A 036000291452).
"""

from __future__ import annotations

import pytest

from bots.domain.identifiers import (
    IdentifierError,
    check_companies_house,
    check_cpv,
    check_gb_vat,
    check_gln,
    check_gtin,
    check_ods_code,
    enforce,
    gb_vat_check_digits,
    gtin_check_digit,
)

PUBLISHED_VALID_GB_VAT = """
GB 002 4257 28|GB 003232345|GB 100 1950 75|GB 100190874|GB 102675046|GB 232177091|GB 242338087388
GB 311 405 025|GB 362 5866 29|GB 417 2280 71|GB 436 0630 72|GB 495 2781 05|GB 507 5768 25
GB 521 6763 52|GB 586 367 295|GB 591 9373 01|GB 605 8678 15|GB 662 8564 06|GB 698 550 577
GB 733 4428 41|GB 770 381 235|GB 784 9117 89|GB 808 6365 12|GB 812 8333 44|GB 818243334
GB 823 531 352|GB 829 9594 59|GB 845788960|GB 879 7056 62|GB 881 3758 91|GB 913 3041 68
GB 933210951|GB 975 8664 50|GB 977 4872 51|GB980780684|GB 997 7094 44|GB260311213|GB653599494
GB974053902|980780684|100190874|242338087388|GD100|HA501|GD888810003|HA888856782|XI 980 7806 84
""".replace("\n", "|").strip("|").split("|")


@pytest.mark.parametrize("number", PUBLISHED_VALID_GB_VAT)
def test_published_valid_gb_vat_numbers_pass(number: str) -> None:
    result = check_gb_vat(number)
    assert result.valid, result.message


@pytest.mark.parametrize(
    ("number", "why"),
    [
        pytest.param("802311781", "check digits", id="bad-check-digit"),
        pytest.param("9807806842", "9 or 12 digits", id="too-long"),
        pytest.param("9807806B4", "9 or 12 digits", id="letter-in-number"),
        pytest.param("GD8888567B2", "9 or 12 digits", id="letter-in-eu-ha"),
        pytest.param("001234567", "check digits", id="bad-checksum-low-range"),
        pytest.param("ZZ100", "9 or 12 digits", id="unknown-prefix"),
        pytest.param("GD600", "GD numbers run 000-499", id="gd-too-high"),
        pytest.param("HA201", "HA numbers run 500-999", id="ha-too-low"),
        pytest.param("GD888860018", "GD numbers run 000-499", id="eu-gd-too-high"),
        pytest.param("HA888820107", "HA numbers run 500-999", id="eu-ha-too-low"),
        pytest.param("HA888856700", "check digits", id="eu-ha-bad-check"),
        pytest.param("GB928741974", "check digits", id="peppol-example-invalid"),
        pytest.param("", "9 or 12 digits", id="empty"),
    ],
)
def test_published_invalid_gb_vat_numbers_fail_with_reason(number: str, why: str) -> None:
    result = check_gb_vat(number)
    assert not result.valid
    assert why in result.message


@pytest.mark.parametrize("scheme", ["97", "9755"])
@pytest.mark.parametrize("body", ["1234567", "5551234", "9876543", "1000001"])
def test_generated_check_digits_validate_under_both_schemes(body: str, scheme: str) -> None:
    number = body + gb_vat_check_digits(body, scheme)  # type: ignore[arg-type]
    assert check_gb_vat(number).valid
    assert check_gb_vat(f"GB{number}999").valid  # branch-trader form ignores the branch digits


def test_9755_scheme_is_not_accepted_below_100_million() -> None:
    number = "0012345" + gb_vat_check_digits("0012345", "9755")
    if gb_vat_check_digits("0012345", "9755") != gb_vat_check_digits("0012345", "97"):
        assert not check_gb_vat(number).valid


def test_vat_number_is_normalised_with_prefix() -> None:
    assert check_gb_vat("gb 980-780.684").normalised == "GB980780684"
    assert check_gb_vat("XI980780684").normalised == "XI980780684"


@pytest.mark.parametrize(
    ("gtin", "valid"),
    [
        pytest.param("4006381333931", True, id="ean13-wikipedia"),
        pytest.param("5012345678900", True, id="ean13-gs1-uk"),
        pytest.param("73513537", True, id="ean8"),
        pytest.param("036000291452", True, id="upc-a"),
        pytest.param("00012345600012", True, id="gtin14"),
        pytest.param("4006381333932", False, id="ean13-bad-check"),
        pytest.param("73513538", False, id="ean8-bad-check"),
        pytest.param("036000291453", False, id="upc-a-bad-check"),
        pytest.param("12345", False, id="wrong-length"),
        pytest.param("40063813339A1", False, id="not-digits"),
    ],
)
def test_gtin_check_digits(gtin: str, valid: bool) -> None:
    assert check_gtin(gtin).valid is valid


def test_gtin_check_digit_of_published_body() -> None:
    assert gtin_check_digit("400638133393") == "1"
    assert gtin_check_digit("03600029145") == "2"


@pytest.mark.parametrize(
    ("gln", "valid"),
    [
        pytest.param("5412345000013", True, id="gs1-example"),
        pytest.param("0614141000005", True, id="gs1-us-example"),
        pytest.param("0614141000006", False, id="bad-check"),
        pytest.param("061414100000", False, id="twelve-digits"),
    ],
)
def test_gln_check_digits(gln: str, valid: bool) -> None:
    assert check_gln(gln).valid is valid


@pytest.mark.parametrize(
    ("code", "valid"),
    [("RX1", True), ("rx1ab", True), ("RJ122", True), ("A81001", True), ("R", False), ("RX1-AB", False)],
)
def test_ods_code_shapes(code: str, valid: bool) -> None:
    assert check_ods_code(code).valid is valid


@pytest.mark.parametrize(
    ("number", "valid"),
    [("00445790", True), ("SC123456", True), ("445790", True), ("XX123456", False), ("123456789", False)],
)
def test_companies_house_shapes(number: str, valid: bool) -> None:
    assert check_companies_house(number).valid is valid


def test_cpv_shapes() -> None:
    assert check_cpv("33140000-3").valid
    assert not check_cpv("3314000").valid


def test_policy_reject_raises_and_warn_returns() -> None:
    bad = check_gtin("4006381333932")
    with pytest.raises(IdentifierError, match="check digit"):
        enforce(bad, "reject")
    assert enforce(bad, "warn") is bad
