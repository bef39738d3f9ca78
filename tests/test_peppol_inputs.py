"""What suppliers' PEPPOL files may legitimately say, and what a reader must refuse clearly.

* Indicators are xsd:boolean: ``true``, ``false``, ``1`` and ``0``. CEN's EN 16931
  validation artefacts read ``<cbc:ChargeIndicator>0</cbc:ChargeIndicator>`` as an
  allowance since their rules compare with ``false()`` rather than the text ``'false'``
  (ConnectingEurope/eInvoicing-EN16931 issue #110).
* A file that declares an encoding the reader does not know, or cannot decode (UTF-7), is
  one error naming the file, never a traceback.

The numeric-indicator documents are the official examples in ``tests/fixtures/peppol/``
(see its README for provenance) with every ``true``/``false`` indicator written as
``1``/``0``, which is how an xsd:boolean may be written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bots.domain.models import Party, PurchaseOrder
from connectors.peppol import PeppolError, read_document, to_json_shape, write_order
from connectors.peppol.read import xsd_boolean

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "peppol"
INDICATOR = re.compile(rb"<cbc:ChargeIndicator>(true|false)</cbc:ChargeIndicator>")
DIGIT = {b"true": b"1", b"false": b"0"}


def numeric_indicators(data: bytes) -> bytes:
    """The document with each ChargeIndicator written as 1 or 0 instead of true or false."""
    return INDICATOR.sub(lambda m: b"<cbc:ChargeIndicator>%s</cbc:ChargeIndicator>" % DIGIT[m[1]], data)


def with_encoding(source: Path, encoding: str) -> bytes:
    data = source.read_bytes()
    declared = re.sub(rb'encoding="[^"]*"', f'encoding="{encoding}"'.encode(), data, count=1)
    assert declared != data, "the fixture has no encoding declaration to replace (control)"
    return declared


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("1", True), ("0", False), (" 0 ", False), ("TRUE", True)],
)
def test_xsd_boolean_reads_the_four_lexical_forms(text: str, value: bool) -> None:
    assert xsd_boolean(text) is value


@pytest.mark.parametrize("text", ["yes", "no", "2", "", "-1", "t"])
def test_xsd_boolean_knows_nothing_else(text: str) -> None:
    assert xsd_boolean(text) is None


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param("invoice/Allowance-example.xml", id="invoice-document-and-line-allowances-charges"),
        pytest.param("invoice/Vat-category-S.xml", id="invoice-vat-s"),
        pytest.param("order/Order_Example.xml", id="order"),
    ],
)
def test_charge_indicators_written_1_and_0_read_as_true_and_false(fixture: str) -> None:
    original = (FIXTURES / fixture).read_bytes()
    numeric = numeric_indicators(original)
    assert b"<cbc:ChargeIndicator>0</cbc:ChargeIndicator>" in numeric  # control: the rewrite happened
    assert b"<cbc:ChargeIndicator>1</cbc:ChargeIndicator>" in numeric

    as_words = read_document(original, name=fixture)
    as_digits = read_document(numeric, name=fixture)

    # Same allowances and charges, lines and totals, and no new findings: 0 is an
    # allowance and 1 a charge, exactly as false and true.
    assert to_json_shape(as_digits) == to_json_shape(as_words)
    assert [(line.allowances, line.charges) for line in as_digits.lines] == [
        (line.allowances, line.charges) for line in as_words.lines
    ]
    assert as_digits.model == as_words.model


def test_a_charge_indicator_that_is_not_a_boolean_names_the_element() -> None:
    data = (FIXTURES / "invoice" / "Allowance-example.xml").read_bytes()
    bad = data.replace(b"<cbc:ChargeIndicator>true<", b"<cbc:ChargeIndicator>yes<", 1)
    with pytest.raises(PeppolError) as caught:
        read_document(bad, name="Allowance-example.xml")
    assert caught.value.path is not None
    assert caught.value.path.endswith("cbc:ChargeIndicator")
    assert "expected true, false, 1 or 0, got 'yes'" in str(caught.value)


def test_an_order_line_with_receipt_required_0_needs_no_receipt() -> None:
    order = read_document(FIXTURES / "order" / "Order_sc1.xml").model
    assert isinstance(order, PurchaseOrder)
    trust = Party(name="Example NHS Trust", endpoint_id="5000000000000")
    written = write_order(order, buyer=trust, supplier=trust)
    assert b"<cbc:Value>true</cbc:Value>" in written  # control: the writer says true
    zero = written.replace(b"<cbc:Value>true</cbc:Value>", b"<cbc:Value>0</cbc:Value>")
    reread = read_document(zero, name="order.xml").model
    assert isinstance(reread, PurchaseOrder)
    assert reread.lines
    assert not any(line.receipt_required for line in reread.lines)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        pytest.param("bogus-enc", "declares encoding 'bogus-enc', which is unknown", id="unknown"),
        pytest.param("UTF-7", "declares encoding 'UTF-7', which is not supported", id="utf-7"),
        pytest.param("shift_jis", "declares encoding 'shift_jis', which is not supported", id="multi-byte"),
    ],
)
def test_a_declared_encoding_the_reader_cannot_use_is_one_error_naming_the_file(
    encoding: str, expected: str
) -> None:
    data = with_encoding(FIXTURES / "invoice" / "base-example.xml", encoding)
    with pytest.raises(PeppolError) as caught:
        read_document(data, name="supplier-invoice.xml")
    assert str(caught.value).startswith("supplier-invoice.xml: ")
    assert expected in str(caught.value)
    assert caught.value.path is None


def test_a_declared_single_byte_encoding_python_knows_still_reads() -> None:
    data = with_encoding(FIXTURES / "invoice" / "base-example.xml", "ISO-8859-1")
    assert read_document(data, name="latin1.xml").id == "Snippet1"


def test_peppol_read_of_an_unknown_encoding_exits_2_naming_the_file_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bogus.xml"
    bad.write_bytes(with_encoding(FIXTURES / "invoice" / "base-example.xml", "bogus-enc"))
    result = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "peppol", "read", str(bad), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"{bad}: declares encoding 'bogus-enc'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
