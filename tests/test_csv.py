"""CSV reading (encodings, delimiters), safe CSV writing, and the shared cell conversions."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.csvfiles import read_rows, sniff_delimiter, write_csv
from connectors.rows import (
    ConversionError,
    RowError,
    neutralise_formula,
    to_bool,
    to_date,
    to_decimal,
    to_int,
    to_percent,
)


class Line(BaseModel):
    supplier: str
    amount: Decimal


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        pytest.param("utf-8", "supplier,amount\nCafé Ltd,£1.50\n", id="utf-8"),
        pytest.param("utf-8-sig", "supplier,amount\nCafé Ltd,£1.50\n", id="utf-8-bom"),
        pytest.param("cp1252", "supplier,amount\nCafé Ltd,£1.50\n", id="cp1252"),
        pytest.param("utf-8", "supplier;amount\nCafé Ltd;£1.50\n", id="semicolon"),
        pytest.param("utf-8", "supplier\tamount\nCafé Ltd\t£1.50\n", id="tab"),
        pytest.param("utf-8", "supplier|amount\nCafé Ltd|£1.50\n", id="pipe"),
    ],
)
def test_encodings_and_delimiters(tmp_path: Path, encoding: str, text: str) -> None:
    """Every supported encoding and delimiter yields the same row, £ and é intact."""
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode(encoding))
    result = read_rows(path, Line)
    assert result.errors == []
    assert [(r.supplier, r.amount) for r in result.rows] == [("Café Ltd", Decimal("1.50"))]


def test_sniffer_ignores_commas_inside_quotes() -> None:
    """Quoted amounts with thousands separators do not fool the sniffer."""
    assert sniff_delimiter('a;b\n"1,000.00";x\n"2,000.00";y\n') == ";"


def test_multiline_field_keeps_row_numbers_at_record_start(tmp_path: Path) -> None:
    """Errors point at the line where the bad record starts."""
    path = tmp_path / "in.csv"
    path.write_text('supplier,amount\n"Two\nlines",1\nOK,abc\n', encoding="utf-8")
    result = read_rows(path, Line)
    assert result.row_numbers == [2]
    assert [str(e) for e in result.errors] == [
        "in.csv row 4, column 'amount' ('abc'): expected a number, e.g. 12 or £1,234.50"
    ]


def test_writer_neutralises_formulas_but_keeps_numbers(tmp_path: Path) -> None:
    """Formula-like text gets a leading quote; negative numbers and dates stay data."""
    path = write_csv(
        tmp_path / "out.csv",
        ["supplier", "amount", "when"],
        [
            ['=HYPERLINK("http://x")', Decimal("-12.50"), dt.date(2025, 3, 2)],
            {"supplier": "@SUM(A1)", "amount": Decimal("1"), "when": None},
            ["+44 1", Decimal("0.1"), None],
            ["\tcmd", Decimal("2"), None],
            ["-2+3", Decimal("3"), None],
        ],
    )
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[1] == ['\'=HYPERLINK("http://x")', "-12.50", "2025-03-02"]
    assert [r[0] for r in rows[2:]] == ["'@SUM(A1)", "'+44 1", "'\tcmd", "'-2+3"]


def test_row_error_str_names_file_sheet_row_column_value() -> None:
    """The one-line form people read in reports and logs."""
    error = RowError("/data/in/orders.xlsx", "Orders", 14, "unit_price", "abc", "expected a number")
    assert str(error) == "orders.xlsx!Orders row 14, column 'unit_price' ('abc'): expected a number"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("£1,234.50", Decimal("1234.50")),
        ("(12.00)", Decimal("-12.00")),
        ("-£3", Decimal("-3")),
        ("GBP 5.10", Decimal("5.10")),
        (0.1, Decimal("0.1")),
        (3.0, Decimal("3")),
        ("", None),
    ],
)
def test_to_decimal(value: object, expected: Decimal | None) -> None:
    """Money strings and float cells become exact Decimals."""
    assert to_decimal(value) == expected
    if expected is not None:
        assert str(to_decimal(value)) == str(expected)


@pytest.mark.parametrize("value", ["abc", "1.2.3", "£", "--5", True, float("nan")])
def test_to_decimal_refuses(value: object) -> None:
    """Text, booleans and NaN are not numbers."""
    with pytest.raises(ConversionError):
        to_decimal(value)


def test_percent_date_int_bool_conversions() -> None:
    """20% and a percent-formatted 0.2 are both 20; UK day-first dates; whole numbers; yes/no."""
    assert to_percent("20%") == 20
    assert str(to_percent(0.2)) == "20"
    assert to_percent(5) == 5
    assert to_date("02/03/2025") == dt.date(2025, 3, 2)
    assert to_date("2 Mar 2025") == dt.date(2025, 3, 2)
    assert to_date(dt.datetime(2025, 3, 2, 10)) == dt.date(2025, 3, 2)
    assert to_date(45658.0) == dt.date(2025, 1, 1)
    with pytest.raises(ConversionError, match="outside"):
        to_date("01/01/2205")
    with pytest.raises(ConversionError, match="not a real date"):
        to_date("30/02/2025")
    assert to_int("1,000") == 1000
    assert to_int(3.0) == 3
    with pytest.raises(ConversionError, match="whole number"):
        to_int(3.5)
    assert [to_bool(v) for v in ("Yes", "n", "TRUE", "0", 1.0, "")] == [True, False, True, False, True, None]
    with pytest.raises(ConversionError):
        to_bool("maybe")
    assert neutralise_formula("-12.5") == "-12.5"
    assert neutralise_formula("-A1") == "'-A1"
