"""Goods receipts from despatch advices and scans: reading, grouping and the business rules.

The despatch advices are the official PEPPOL BIS Despatch Advice 3 examples
(tests/fixtures/peppol/despatch/, provenance in tests/fixtures/peppol/README.md).
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.errors import BusinessError
from bots.domain.receipts import (
    GRN_MAX,
    RECEIPT_REASONS,
    PoLineState,
    Scan,
    check_receipt,
    from_scans,
    grn_number,
    same_item,
)
from connectors.receipt_inputs import receipt_drafts
from connectors.scans import load_scans

DESPATCH = Path(__file__).parent / "fixtures" / "peppol" / "despatch"
TODAY = dt.date(2026, 12, 7)
D = Decimal


def _po(*lines: tuple[int, str, str, str]) -> dict[int, PoLineState]:
    return {n: PoLineState(n, code, D(ordered), D(received)) for n, code, ordered, received in lines}


# The order UseCase1 despatches against: line 1 and 2 with the despatched items.
ORDER_4321 = _po((1, "7611104117056", "10", "0"), (2, "7622204117051", "25", "5"))


def _drafts(tmp_path: Path, *names: str) -> list:
    for name in names:
        shutil.copy(DESPATCH / name, tmp_path / name)
    drafts, errors = receipt_drafts(tmp_path.iterdir())
    assert errors == []
    return drafts


def test_each_official_despatch_advice_becomes_one_receipt_for_its_order(tmp_path: Path) -> None:
    drafts = _drafts(tmp_path, *sorted(p.name for p in DESPATCH.iterdir()))
    assert [(d.despatch_id, d.po_number, len(d.lines)) for d in drafts] == [
        ("1234", "4321", 2),
        ("1236", "4321", 5),
        ("1238", "4321", 4),
    ]
    first = drafts[0]
    assert first.grn_number == "DA-4321-1234"
    assert first.received_date == dt.date(2019, 3, 15)
    assert [(ln.po_line, ln.quantity, ln.gtin) for ln in first.lines] == [
        (1, D(10), "7611104117056"),
        (2, D(10), "7622204117051"),
    ]
    assert first.document == "despatch advice 1234 (DespatchAdvice_UseCase1.xml)"


def test_an_official_despatch_advice_checked_against_its_order_gives_the_lines_to_key(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase1.xml")
    assert check_receipt(draft, ORDER_4321, TODAY) == ((1, D(10)), (2, D(10)))


def test_the_portal_not_knowing_the_order_is_unknown_po_naming_the_document(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase2.xml")
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, None, TODAY)
    assert caught.value.code == "UNKNOWN_PO"
    assert caught.value.message == (
        "despatch advice 1236 (DespatchAdvice_UseCase2.xml): the portal has no purchase order 4321"
    )


def test_a_line_the_order_does_not_have_is_unknown_po_line_naming_the_line(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase2.xml")  # lines 1-5 against a 2-line order
    order = _po((1, "7611104117056", "10", "0"), (2, "7611104117054", "6", "0"))
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, order, TODAY)
    assert caught.value.code == "UNKNOWN_PO_LINE"
    assert (
        caught.value.message
        == "despatch advice 1236 (DespatchAdvice_UseCase2.xml) line 3: 4321 has no line 3"
    )


def test_a_despatched_gtin_that_is_not_the_lines_item_is_a_gtin_mismatch(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase1.xml")
    order = _po((1, "7611104117056", "10", "0"), (2, "5012345678900", "25", "0"))
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, order, TODAY)
    assert caught.value.code == "GTIN_MISMATCH"
    assert caught.value.message == (
        "despatch advice 1234 (DespatchAdvice_UseCase1.xml) line 2: GTIN 7622204117051 is not the item "
        "of 4321 line 2 (5012345678900)"
    )


def test_receiving_more_than_is_left_to_receive_is_an_over_receipt(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase1.xml")
    order = _po((1, "7611104117056", "10", "1"), (2, "7622204117051", "25", "0"))
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, order, TODAY)
    assert caught.value.code == "OVER_RECEIPT"
    assert caught.value.message == (
        "despatch advice 1234 (DespatchAdvice_UseCase1.xml) line 1: 10 more would take 4321 line 1 "
        "to 11 received of 10 ordered"
    )


def test_a_received_date_after_today_is_date_in_future(tmp_path: Path) -> None:
    (draft,) = _drafts(tmp_path, "DespatchAdvice_UseCase1.xml")
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, ORDER_4321, dt.date(2019, 3, 14))
    assert caught.value.code == "DATE_IN_FUTURE"
    assert "received date 2019-03-15 is after today (2019-03-14)" in caught.value.message
    assert check_receipt(draft, ORDER_4321, dt.date(2019, 3, 15))  # the same day is fine


def test_the_same_despatch_advice_sent_twice_is_a_duplicate_despatch_the_second_time(tmp_path: Path) -> None:
    shutil.copy(DESPATCH / "DespatchAdvice_UseCase1.xml", tmp_path / "a-first.xml")
    shutil.copy(DESPATCH / "DespatchAdvice_UseCase1.xml", tmp_path / "b-again.xml")
    first, again = receipt_drafts(tmp_path.iterdir())[0]
    assert first.duplicate_of is None
    assert check_receipt(first, ORDER_4321, TODAY)
    assert again.key != first.key
    assert again.grn_number == first.grn_number
    with pytest.raises(BusinessError) as caught:
        check_receipt(again, ORDER_4321, TODAY)
    assert caught.value.code == "DUPLICATE_DESPATCH"
    assert caught.value.message == (
        "despatch advice 1234 (b-again.xml): despatch advice 1234 was already sent in "
        "despatch advice 1234 (a-first.xml)"
    )


def test_every_reason_code_the_rules_raise_is_listed() -> None:
    assert set(RECEIPT_REASONS) == {
        "UNKNOWN_PO",
        "UNKNOWN_PO_LINE",
        "OVER_RECEIPT",
        "DATE_IN_FUTURE",
        "GTIN_MISMATCH",
        "DUPLICATE_DESPATCH",
    }


def _scan(gtin: str, po: str, line: int | None, qty: str, at: str, row: int) -> Scan:
    return Scan(
        gtin=gtin,
        po_number=po,
        po_line=line,
        quantity=D(qty),
        scanned_at=dt.datetime.fromisoformat(at),
        row=row,
    )


def test_scans_group_into_one_receipt_per_order_and_london_day() -> None:
    scans = [
        _scan("5085060000073", "PO-000001", 1, "2", "2026-06-30T10:00:00+00:00", 2),
        _scan("5085060000073", "PO-000001", 1, "3", "2026-06-30T22:59:00+00:00", 3),  # 23:59 BST
        _scan("5085060000073", "PO-000001", 1, "1", "2026-06-30T23:30:00+00:00", 4),  # 1 July in London
        _scan("5085060000035", "po-000002", None, "4", "2026-06-30T11:00:00+00:00", 5),
    ]
    drafts = from_scans(scans, "ward7.csv")
    assert [
        (d.po_number, d.received_date, [(ln.po_line, ln.quantity, ln.ref) for ln in d.lines]) for d in drafts
    ] == [
        ("PO-000001", dt.date(2026, 6, 30), [(1, D(5), "rows 2, 3")]),
        ("PO-000001", dt.date(2026, 7, 1), [(1, D(1), "row 4")]),
        ("PO-000002", dt.date(2026, 6, 30), [(None, D(4), "row 5")]),
    ]
    assert len({d.grn_number for d in drafts}) == 3
    assert len({d.key for d in drafts}) == 3
    # Another export scanning the same order on the same day is another receipt.
    assert from_scans(scans[:1], "ward8.csv")[0].grn_number != drafts[0].grn_number


def test_a_scan_without_a_po_line_is_keyed_on_the_line_of_its_item() -> None:
    order = _po((1, "SVC-04200", "2", "0"), (2, "5085060000035", "10", "4"))
    (draft,) = from_scans(
        [_scan("05085060000035", "PO-000002", None, "6", "2026-12-01T10:00:00+00:00", 2)], "s.csv"
    )
    assert check_receipt(draft, order, TODAY) == ((2, D(6)),)
    (stray,) = from_scans(
        [_scan("5085060000073", "PO-000002", None, "1", "2026-12-01T10:00:00+00:00", 9)], "s.csv"
    )
    with pytest.raises(BusinessError) as caught:
        check_receipt(stray, order, TODAY)
    assert caught.value.code == "GTIN_MISMATCH"
    assert caught.value.message == (
        "scan export s.csv, PO-000002 on 2026-12-01 row 9: GTIN 5085060000073 is on no line of PO-000002"
    )


def test_two_receipt_lines_on_one_po_line_count_together_for_over_receipt() -> None:
    order = _po((1, "5085060000073", "5", "0"))
    (draft,) = from_scans(
        [
            _scan("5085060000073", "PO-000001", 1, "3", "2026-12-01T10:00:00+00:00", 2),
            _scan("5085060000073", "PO-000001", None, "3", "2026-12-01T11:00:00+00:00", 3),
        ],
        "s.csv",
    )
    with pytest.raises(BusinessError) as caught:
        check_receipt(draft, order, TODAY)
    assert caught.value.code == "OVER_RECEIPT"
    assert (
        "row 2 and row 3: 6 more would take PO-000001 line 1 to 6 received of 5 ordered"
        in caught.value.message
    )


def test_gtins_compare_as_fourteen_digits_and_other_item_codes_are_not_compared() -> None:
    assert same_item("05085060000035", "5085060000035")
    assert not same_item("5085060000042", "5085060000035")
    assert same_item("5085060000042", "SVC-04200")


def test_grn_numbers_stay_within_the_portals_forty_characters_and_characters() -> None:
    assert grn_number("DA", "PO-000001", "DESP 77/1") == "DA-PO-000001-DESP_77_1"
    long_a = grn_number("DA", "PO-000001", "X" * 60)
    long_b = grn_number("DA", "PO-000001", "X" * 59 + "Y")
    assert len(long_a) == GRN_MAX
    assert long_a != long_b


def test_a_scan_export_with_bad_rows_names_file_row_and_column_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "ward-7.csv"
    path.write_text(
        "Barcode,PO Number,PO line,Qty,Scan time,Ward\n"
        "5085060000073,PO-000001,1,2,2026-12-01 09:00,W7\n"
        "5085060000074,PO-000001,1,2,2026-12-01 09:05,W7\n"
        "5085060000073,PO-000001,,abc,2026-12-01 09:10,W7\n"
        "5085060000035,PO-000001,,1,2026-12-01 09:15,W7\n",
        encoding="utf-8",
    )
    scans, errors = load_scans(path)
    assert [(s.row, s.po_line, s.quantity, s.location) for s in scans] == [
        (2, 1, D(2), "W7"),
        (5, None, D(1), "W7"),
    ]
    assert scans[0].scanned_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # GMT in December
    assert [str(e) for e in errors] == [
        "ward-7.csv row 3, column 'Barcode' ('5085060000074'): "
        "GTIN '5085060000074': check digit does not match",
        "ward-7.csv row 4, column 'Qty' ('abc'): expected a number, e.g. 12 or £1,234.50",
    ]


def test_files_that_are_not_despatch_advices_or_scan_exports_are_one_error_each(tmp_path: Path) -> None:
    shutil.copy(DESPATCH / "DespatchAdvice_UseCase1.xml", tmp_path / "good.xml")
    order = Path(__file__).parent / "fixtures" / "peppol" / "order"
    shutil.copy(next(iter(sorted(order.iterdir()))), tmp_path / "an-order.xml")
    (tmp_path / "broken.xml").write_text("<DespatchAdvice", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    drafts, errors = receipt_drafts(tmp_path.iterdir())
    assert [d.despatch_id for d in drafts] == ["1234"]
    messages = sorted(str(e) for e in errors)
    assert messages[0] == "an-order.xml: is a PEPPOL order, not a despatch advice"
    assert messages[1].startswith("broken.xml: ")
    assert messages[2] == "notes.txt: is not a despatch advice (.xml) or scan export (.csv, .xlsx)"
