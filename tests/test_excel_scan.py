"""The sheet XML scan finds hidden rows, formulas without values and merged ranges anywhere
in a sheet of many chunks, also where most chunks hold none of them (and no "f" or "h")."""

from __future__ import annotations

import zipfile
from pathlib import Path

from connectors.excel import scan_sheet

MEMBER = "xl/worksheets/sheet1.xml"


def _row(number: int, attrs: str = "", formula: str | None = None) -> str:
    cells = f'<c r="A{number}" t="inlineStr"><is><t>PO-{number:07d}</t></is></c><c r="B{number}"><v>1</v></c>'
    if formula is not None:
        cells += f'<c r="C{number}"><f>{formula}</f><v></v></c>'
    else:
        cells += f'<c r="C{number}" t="n"><v>{number}</v></c>'
    return f'<row r="{number}"{attrs}>{cells}</row>'


def test_scan_finds_what_lies_deep_in_a_multi_chunk_sheet(tmp_path: Path) -> None:
    """A hidden row, an uncached formula (plain and prefixed) and a merge past several MiB are all found."""
    rows = []
    for number in range(1, 40_001):
        if number == 25_000:
            rows.append(_row(number, ' hidden="1"'))
        elif number == 31_000:
            rows.append(_row(number, formula="B31000*2"))
        else:
            rows.append(_row(number))
    rows.append('<x:row r="40001" hidden="true"><x:c r="A40001"><x:f>SUM(A1:A2)</x:f></x:c></x:row>')
    xml = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<dimension ref="A1:C40001"/><sheetData>'
        + "".join(rows)
        + '</sheetData><mergeCells count="1"><mergeCell ref="A39998:C39999"/></mergeCells></worksheet>'
    )
    path = tmp_path / "orders.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, xml)
    assert len(xml) > 3 * 1024 * 1024, "the sheet spans several scan chunks"
    with zipfile.ZipFile(path) as archive:
        scan = scan_sheet(archive, MEMBER, path, "Orders")
    assert scan.dimension == "A1:C40001"
    assert scan.hidden_rows == {25_000, 40_001}
    assert scan.uncached_formulas == {(31_000, 3): "B31000*2", (40_001, 1): "SUM(A1:A2)"}
    assert scan.merged == [(39_998, 1, 39_999, 3)]
