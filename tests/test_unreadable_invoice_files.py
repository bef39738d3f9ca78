"""An invoice file that cannot be read at all (here: a declared encoding the reader does not
know, or cannot decode) is one clear error naming the file, in `procbots match`, in
`procbots run invoice-matching` file mode and in the flow's file mode; the other files of
the batch are still decided, and the run exits 1 (some items ended in exceptions).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_match_cli import by_number, procbots, ubl
from tests.test_match_cli import files as files  # the fixture: orders, receipts, invoices

ENCODINGS = {"bogus.xml": "bogus-enc", "utf7.xml": "UTF-7"}


@pytest.fixture
def bad_files(tmp_path: Path) -> list[Path]:
    """Two otherwise good invoices whose declared encodings cannot be used."""
    made = []
    for name, encoding in ENCODINGS.items():
        text = ubl(f"INV-{name}", "2025-05-06", "PO-100", [("1", "1", "10.00")])
        declared = re.sub('encoding="UTF-8"', f'encoding="{encoding}"', text, count=1)
        assert declared != text  # control: the declaration was replaced
        path = tmp_path / name
        path.write_text(declared, encoding="utf-8")
        made.append(path)
    return made


def test_match_names_each_unreadable_file_and_decides_the_rest_exit_1(
    files: dict[str, Path], bad_files: list[Path]
) -> None:
    good = [files["invoices_a"], files["invoices_b"], files["credit"], files["rebill"]]
    args = ["match", "--orders", files["orders_csv"], "--receipts", files["receipts"], "--json"]
    alone = procbots(*args, "--invoices", *good)
    with_bad = procbots(*args, "--invoices", *bad_files[:1], *good, *bad_files[1:])

    assert with_bad.returncode == 1, with_bad.stderr
    assert "Traceback" not in with_bad.stderr
    assert f"{bad_files[0]}: declares encoding 'bogus-enc', which is unknown" in with_bad.stderr
    assert f"{bad_files[1]}: declares encoding 'UTF-7', which is not supported" in with_bad.stderr
    payload = json.loads(with_bad.stdout)
    # The good files are decided exactly as without the bad ones.
    assert by_number(payload) == by_number(json.loads(alone.stdout))
    assert len(payload["unreadable_files"]) == 2
    assert all(str(p) in " ".join(payload["unreadable_files"]) for p in bad_files)


def test_match_with_only_unreadable_invoice_files_is_bad_input_exit_2(
    files: dict[str, Path], bad_files: list[Path]
) -> None:
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"], "--invoices", *bad_files
    )
    assert result.returncode == 2
    assert "declares encoding 'bogus-enc'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_run_invoice_matching_file_mode_names_the_unreadable_file_and_decides_the_rest(
    files: dict[str, Path], bad_files: list[Path], tmp_path: Path
) -> None:
    result = procbots(
        "run", "invoice-matching", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], files["invoices_b"], *bad_files,
        "--out", tmp_path / "report.xlsx", "--json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["counts"] == {"approve": 1, "hold": 1, "reject": 0, "unreadable": 2}
    unreadable = [row for row in outcome["exceptions"] if row["decision"] == "unreadable"]
    assert [row["what_to_check"].split(": ")[0] for row in unreadable] == [str(p) for p in bad_files]
    assert "declares encoding 'UTF-7'" in unreadable[1]["what_to_check"]
    assert (tmp_path / "report.xlsx").is_file()
