"""A bot's work-item input over the row limit (setting ``limits.work_item_rows``) is refused
before it is loaded, with one error naming the file, its row count and the setting; the
bulk matching inputs have their own, larger limit (``limits.bulk_rows``).

The limits are set low here (50 rows) so the files stay small; what is checked is the
same code path a 1,048,575-row sheet takes.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from pydantic import BaseModel

from connectors import csvfiles, excel
from connectors.limits import RowLimit, TooManyRowsError
from connectors.rows import SpreadsheetError

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 50
REQUISITION_HEADER = [
    "Requisition Ref", "Line No", "Supplier ID", "Supplier VAT", "Item Code", "Description",
    "Quantity", "Unit Price", "VAT Rate", "Cost Centre", "Delivery Site", "Need By",
]  # fmt: skip


class Line(BaseModel):
    """A small row model: the limit is about rows, not what they hold."""

    item: str
    quantity: int


@pytest.fixture
def low_limits(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from config.settings import get_settings

    monkeypatch.setenv("PROCBOTS_LIMITS__WORK_ITEM_ROWS", str(LIMIT))
    monkeypatch.setenv("PROCBOTS_LIMITS__BULK_ROWS", str(LIMIT * 4))
    get_settings.cache_clear()
    yield settings_env
    get_settings.cache_clear()


def workbook(path: Path, header: list[str], rows: int) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Lines"
    ws.append(header)
    for n in range(rows):
        ws.append([f"ITEM-{n}", n + 1, *([None] * (len(header) - 2))])
    wb.save(path)
    return path


def rewrite_sheet(path: Path, change: object) -> Path:
    """The workbook with its first sheet's XML passed through ``change`` (bytes -> bytes)."""
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            members[info.filename] = archive.read(info)
    sheet = "xl/worksheets/sheet1.xml"
    changed = change(members[sheet])  # type: ignore[operator]
    assert changed != members[sheet], "the sheet XML was not changed (control)"
    members[sheet] = changed
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_sheet_over_the_work_item_limit_is_refused_naming_file_rows_and_setting(
    low_limits: Path, tmp_path: Path
) -> None:
    path = workbook(tmp_path / "lines.xlsx", ["item", "quantity"], LIMIT + 10)
    with pytest.raises(TooManyRowsError) as caught:
        excel.read_rows(path, Line)
    message = str(caught.value)
    assert message.startswith("lines.xlsx!Lines: has 60 data rows")
    assert "by its declared dimension A1:B61" in message
    assert "over the limit of 50 (setting limits.work_item_rows)" in message


def test_a_sheet_at_the_work_item_limit_is_read(low_limits: Path, tmp_path: Path) -> None:
    path = workbook(tmp_path / "lines.xlsx", ["item", "quantity"], LIMIT)
    result = excel.read_rows(path, Line)
    assert len(result.rows) == LIMIT
    assert result.errors == []


def test_the_sheet_is_refused_before_it_is_loaded(low_limits: Path, tmp_path: Path) -> None:
    """The cell data is broken past the header: loading it would fail otherwise, so the row
    limit's error shows that the file was refused before it was loaded."""
    path = workbook(tmp_path / "lines.xlsx", ["item", "quantity"], LIMIT + 10)
    broken = rewrite_sheet(
        path, lambda xml: re.sub(rb"(<row r=\"3\".*)</sheetData>", rb"<row r=\"3\"><c", xml, flags=re.S)
    )
    with pytest.raises(SpreadsheetError) as loaded:
        excel.read_rows(broken, Line, row_limit=RowLimit(10_000, "a large limit"))
    assert not isinstance(loaded.value, TooManyRowsError)  # control: loading it fails
    with pytest.raises(TooManyRowsError, match="has 60 data rows"):
        excel.read_rows(broken, Line)


@pytest.mark.parametrize(
    "dimension",
    [
        pytest.param(b"", id="no-dimension"),
        pytest.param(b'<dimension ref="A1"/>', id="single-cell-dimension"),
    ],
)
def test_a_sheet_that_does_not_declare_its_size_has_its_rows_counted(
    low_limits: Path, tmp_path: Path, dimension: bytes
) -> None:
    path = workbook(tmp_path / "lines.xlsx", ["item", "quantity"], LIMIT + 1)
    rewritten = rewrite_sheet(path, lambda xml: re.sub(rb"<dimension [^>]*/>", dimension, xml))
    with pytest.raises(TooManyRowsError) as caught:
        excel.read_rows(rewritten, Line)
    assert "has 51 data rows (counting its rows)" in str(caught.value)
    at_limit = rewrite_sheet(
        workbook(tmp_path / "ok.xlsx", ["item", "quantity"], LIMIT),
        lambda xml: re.sub(rb"<dimension [^>]*/>", dimension, xml),
    )
    assert len(excel.read_rows(at_limit, Line).rows) == LIMIT


def test_a_csv_over_the_work_item_limit_is_refused(low_limits: Path, tmp_path: Path) -> None:
    path = tmp_path / "scan.csv"
    path.write_text("item,quantity\n" + "".join(f"ITEM-{n},{n + 1}\n" for n in range(LIMIT + 1)))
    with pytest.raises(TooManyRowsError) as caught:
        csvfiles.read_rows(path, Line)
    assert str(caught.value) == (
        "scan.csv: has 51 data rows, over the limit of 50 (setting limits.work_item_rows); "
        "split the file, or raise the setting"
    )


def test_a_csv_with_old_mac_line_ends_is_counted_too(low_limits: Path, tmp_path: Path) -> None:
    path = tmp_path / "scan.csv"
    path.write_bytes(b"item,quantity\r" + b"".join(b"ITEM-%d,%d\r" % (n, n + 1) for n in range(LIMIT + 1)))
    assert b"\n" not in path.read_bytes()  # control: CR alone ends the lines
    with pytest.raises(TooManyRowsError, match="has 51 data rows"):
        csvfiles.read_rows(path, Line)


def test_a_csv_whose_quoted_line_breaks_pass_the_limit_in_lines_but_not_in_rows_is_read(
    low_limits: Path, tmp_path: Path
) -> None:
    path = tmp_path / "scan.csv"
    path.write_text("item,quantity\n" + "".join(f'"ITEM\n{n}",{n + 1}\n' for n in range(LIMIT)))
    assert path.read_text().count("\n") > LIMIT * 2  # control: lines are well over the limit
    assert len(csvfiles.read_rows(path, Line).rows) == LIMIT


def test_bulk_matching_inputs_use_the_bulk_limit(low_limits: Path, tmp_path: Path) -> None:
    from connectors.formats import load_receipts

    header = "GRN Number,PO Number,Line No,Quantity Received,Received Date\n"
    within = tmp_path / "receipts.csv"
    within.write_text(header + "".join(f"GRN-{n},PO-{n},1,1,28/04/2025\n" for n in range(LIMIT * 2)))
    receipts, errors = load_receipts(within)
    assert errors == []
    assert len(receipts) == LIMIT * 2  # over the work-item limit, within the bulk one
    over = tmp_path / "receipts-big.csv"
    over.write_text(header + "".join(f"GRN-{n},PO-{n},1,1,28/04/2025\n" for n in range(LIMIT * 4 + 1)))
    with pytest.raises(
        TooManyRowsError, match=r"201 data rows, over the limit of 200 \(setting limits.bulk_rows\)"
    ):
        load_receipts(over)


def test_a_scan_file_is_a_work_item_input_bounded_by_the_work_item_limit(
    low_limits: Path, tmp_path: Path
) -> None:
    from connectors.scans import load_scans

    header = "GTIN,PO Number,Quantity,Scanned At\n"
    row = "05012345678900,PO-1,1,2026-05-01T10:00:00Z\n"
    within = tmp_path / "ward-7-scans.csv"
    within.write_text(header + row * LIMIT)
    scans, errors = load_scans(within)
    assert (len(scans), errors) == (LIMIT, [])  # control: at the limit it reads
    over = tmp_path / "ward-8-scans.csv"
    over.write_text(header + row * (LIMIT + 1))
    with pytest.raises(TooManyRowsError) as caught:
        load_scans(over)
    assert str(caught.value).startswith("ward-8-scans.csv: has 51 data rows, over the limit of 50")
    assert "(setting limits.work_item_rows)" in str(caught.value)


def test_a_contract_metadata_workbook_over_the_limit_is_rejected_as_unreadable(
    low_limits: Path, tmp_path: Path
) -> None:
    from bots.contracts import ContractRejected, read_metadata_file

    path = workbook(tmp_path / "metadata.xlsx", ["contract_id", "title"], LIMIT + 5)
    with pytest.raises(ContractRejected) as caught:
        read_metadata_file(path)
    assert "METADATA_UNREADABLE" in str(caught.value.problems[0].code)
    assert "has 55 data rows" in caught.value.problems[0].message
    assert "limits.work_item_rows" in caught.value.problems[0].message


def test_procbots_run_purchase_orders_refuses_a_requisition_sheet_over_the_limit_exit_2(
    tmp_path: Path,
) -> None:
    path = workbook(tmp_path / "requisitions.xlsx", REQUISITION_HEADER, LIMIT + 1)
    result = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "run", "purchase-orders",
         "--input", str(path), "--portal", "http://127.0.0.1:9"],
        cwd=ROOT,
        env={**os.environ, "PROCBOTS_PATHS__ROOT": str(tmp_path / "var"),
             "PROCBOTS_LIMITS__WORK_ITEM_ROWS": str(LIMIT)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "requisitions.xlsx!Lines: has 51 data rows" in result.stderr
    assert "over the limit of 50 (setting limits.work_item_rows)" in result.stderr
    assert "Traceback" not in result.stderr
