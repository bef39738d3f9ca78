"""Benchmark: refusing a work-item input over the row limit, at Excel's maximum size.

Writes a requisition sheet of 1,048,575 data rows (Excel's most: 1,048,576 rows with the
header; 12 columns, 1.4 million shared strings, about 75 MB zipped) and times
``procbots run purchase-orders --input`` on it, process start to exit, with its peak
RSS: the run must refuse it before loading (exit 2, the ``limits.work_item_rows``
error). Before the limit, reading that sheet took 9.7 GB (issue 15). Reference in the
same run: the same command on a 100-row sheet (the fixed cost of the command: it reads
the sheet, starts Chromium and gives up on a portal that is not there, exit 1). Writes
``benchmarks/results/row_limit.json``.

Run: ``.venv/bin/python -m benchmarks.bench_row_limit [--rows N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "row_limit.json"
ROOT = Path(__file__).resolve().parents[1]
PROCBOTS = Path(sys.executable).with_name("procbots")
HEADER = [
    "Requisition Ref", "Line No", "Supplier ID", "Supplier VAT", "Item Code", "Description",
    "Quantity", "Unit Price", "VAT Rate", "Cost Centre", "Delivery Site", "Need By",
]  # fmt: skip
_COLUMNS = "ABCDEFGHIJKL"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
    '"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.'
    'main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/'
    'sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
    'sharedStrings+xml"/></Types>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships"><sheets><sheet name="Requisitions" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship '
    'Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)


class _Strings:
    """The shared strings table, as Excel writes text cells."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def cell(self, column: str, row: int, value: str | int) -> str:
        if isinstance(value, int):
            return f'<c r="{column}{row}"><v>{value}</v></c>'
        number = self.index.setdefault(value, len(self.index))
        return f'<c r="{column}{row}" t="s"><v>{number}</v></c>'

    def xml(self) -> bytes:
        head = '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
        head += f'spreadsheetml/2006/main" count="{len(self.index)}" uniqueCount="{len(self.index)}">'
        return (head + "".join(f"<si><t>{text}</t></si>" for text in self.index) + "</sst>").encode()


def write_requisitions(path: Path, rows: int) -> None:
    """A requisition sheet of ``rows`` data rows with a shared strings table, written as
    sheet XML directly (fast); Excel would write the same parts."""
    strings = _Strings()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
                b'spreadsheetml/2006/main"><dimension ref="A1:L%d"/><sheetData>' % (rows + 1)
            )
            head = "".join(strings.cell(c, 1, h) for c, h in zip(_COLUMNS, HEADER, strict=True))
            sheet.write(f'<row r="1">{head}</row>'.encode())
            batch: list[str] = []
            for n in range(rows):
                r = n + 2
                values: list[str | int] = [
                    f"REQ-2026-{n // 3:06d}", n % 3 + 1, f"SUP-{n % 500:04d}", "GB980780684",
                    f"50{n:011d}", f"Nitrile gloves {n % 997}", n % 50 + 1, 12, 20, f"CC{n % 90:03d}",
                    "RX1", "2026-09-30",
                ]  # fmt: skip
                cells = "".join(strings.cell(c, r, v) for c, v in zip(_COLUMNS, values, strict=True))
                batch.append(f'<row r="{r}">{cells}</row>')
                if len(batch) == 10_000:
                    sheet.write("".join(batch).encode())
                    batch.clear()
            sheet.write("".join(batch).encode())
            sheet.write(b"</sheetData></worksheet>")
        archive.writestr("xl/sharedStrings.xml", strings.xml())


def _run(sheet: Path, data_root: Path) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in MB, exit code, last stderr line) of one ``procbots run purchase-orders``."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", str(PROCBOTS), "run", "purchase-orders",
         "--input", str(sheet), "--portal", "http://127.0.0.1:9"],
        cwd=ROOT,
        env={
            **os.environ,
            "PROCBOTS_PATHS__ROOT": str(data_root),
            "PROCBOTS_RETRY__MAX_ATTEMPTS": "1",
            "PROCBOTS_PORTAL__PASSWORD": "not-a-real-password",
        },
        capture_output=True,
        text=True,
        timeout=1800,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    lines = result.stderr.strip().splitlines()
    rss_kb = next(int(line.split("=")[1]) for line in reversed(lines) if line.startswith("maxrss_kb="))
    message = next((line for line in lines if not line.startswith("maxrss_kb=")), "")
    return seconds, rss_kb // 1024, result.returncode, message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_048_575, help="data rows of the large sheet")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-row-limit-") as tmp:
        folder = Path(tmp)
        large, small = folder / "requisitions-large.xlsx", folder / "requisitions-small.xlsx"
        started = time.perf_counter()
        write_requisitions(large, args.rows)
        write_s = time.perf_counter() - started
        write_requisitions(small, 100)
        runs: dict[str, list[tuple[float, int, int, str]]] = {"large": [], "small (reference)": []}
        for _ in range(args.repeat):
            runs["large"].append(_run(large, folder / "var"))
            runs["small (reference)"].append(_run(small, folder / "var"))
        size_mb = round(large.stat().st_size / 1e6, 1)
    best = {name: min(r[0] for r in values) for name, values in runs.items()}
    rss = {name: max(r[1] for r in values) for name, values in runs.items()}
    result = {
        "benchmark": "work-item row limit",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "large_sheet": {"data_rows": args.rows, "zipped_mb": size_mb, "write_s": round(write_s, 1)},
        "best_s": {name: round(value, 3) for name, value in best.items()},
        "peak_rss_mb": rss,
        "exit_codes": {name: sorted({r[2] for r in values}) for name, values in runs.items()},
        "large_refused_with": runs["large"][0][3],
        "large_over_small_time": round(best["large"] / best["small (reference)"], 2),
        "before_the_limit": "9.7 GB peak to read the 1,048,575-row sheet (issue 15)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if result["exit_codes"]["large"] == [2] else 1


if __name__ == "__main__":
    sys.exit(main())
