"""Malformed and hostile PEPPOL XML (tests/fixtures/bad/peppol-*.xml): each gives a clear
error naming the file and the element, in bounded time and memory, and a drop-folder
loop quarantines each with a reason; the command line exits 2 without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.audit import AuditLog, verify_audit
from connectors.dropfolder import REASON_SUFFIX, DropFolder
from connectors.peppol import PeppolError, read_document, to_json_shape
from flows.cli import app as procbots_app

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "fixtures" / "bad"
GOOD = Path(__file__).parent / "fixtures" / "peppol"

# file -> (element path, or None for the whole file; words the reason must contain)
CORPUS = {
    "peppol-xxe-file.xml": ("<!DOCTYPE Invoice>", "DTD) are refused"),
    "peppol-xxe-parameter-entity.xml": ("<!DOCTYPE Invoice>", "DTD) are refused"),
    "peppol-billion-laughs.xml": ("<!DOCTYPE Invoice>", "entity expansion"),
    "peppol-external-dtd.xml": ("<!DOCTYPE Invoice>", "external entities"),
    "peppol-wrong-root.xml": ("/ApplicationResponse", "expected a UBL 2.1 Invoice, CreditNote, Order or"),
    "peppol-missing-id.xml": ("/Invoice/cbc:ID", "missing mandatory element"),
    "peppol-missing-issue-date.xml": ("/Invoice/cbc:IssueDate", "missing mandatory element"),
    "peppol-text-in-quantity.xml": (
        "/Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity",
        "expected a number, got 'x'",
    ),
    "peppol-text-in-amount.xml": (
        "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount",
        "expected a number, got '£1,656.25'",
    ),
    "peppol-bad-date.xml": ("/Invoice/cbc:IssueDate", "expected a date (YYYY-MM-DD), got '13/11/2017'"),
    "peppol-truncated.xml": ("/Invoice/cac:LegalMonetaryTotal", "malformed XML at line 141"),
    "peppol-non-utf8-garbage.xml": (
        "/Invoice/cac:AccountingSupplierParty/cac:Party/cac:PartyName/cbc:Name",
        "malformed XML at line 21",
    ),
    "peppol-not-xml.xml": (None, "malformed XML at line 1"),
    "peppol-empty.xml": (None, "no element found"),
    "peppol-namespace-less-invoice.xml": ("/Invoice", "has no namespace"),
    "peppol-no-lines.xml": ("/Invoice/cac:InvoiceLine", "missing mandatory element (no lines)"),
    "peppol-creditnote-with-invoice-lines.xml": (
        "/CreditNote/cac:CreditNoteLine",
        "missing mandatory element",
    ),
    "peppol-order-line-id-not-a-number.xml": (
        "/Order/cac:OrderLine[2]/cac:LineItem/cbc:ID",
        "expected a whole line number",
    ),
    "peppol-order-zero-quantity.xml": ("/Order/cac:OrderLine[2]/cac:LineItem/cbc:Quantity", "greater than 0"),
    "peppol-huge-element-count.xml": ("/Invoice/a[200000]", "more than 200,000 XML elements"),
}


def test_corpus_is_complete() -> None:
    """Every peppol-*.xml in the bad corpus has an expectation, and there are at least 10."""
    assert sorted(p.name for p in BAD.glob("peppol-*.xml")) == sorted(CORPUS)
    assert len(CORPUS) >= 10


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(CORPUS), ids=lambda n: n.removeprefix("peppol-").removesuffix(".xml"))
def test_bad_document_gives_a_clear_error_naming_file_and_element(name: str) -> None:
    """The error is `file: element: reason`, raised well within the time limit."""
    path, words = CORPUS[name]
    with pytest.raises(PeppolError) as info:
        read_document(BAD / name)
    error = info.value
    assert error.source == name
    assert error.path == path
    assert words in error.reason
    assert str(error).startswith(f"{name}: {path}: " if path else f"{name}: ")


def test_entity_expansion_never_happens() -> None:
    """Billion laughs is refused at the DOCTYPE: memory stays small (no 10^9 'lol's)."""
    tracemalloc.start()
    try:
        with pytest.raises(PeppolError):
            read_document(BAD / "peppol-billion-laughs.xml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


# Peak resident memory of this process image: VmHWM from /proc (getrusage's ru_maxrss
# keeps the forking parent's high-water mark across exec, so it measures pytest).
_PEAK_RSS = """
import sys
from connectors.peppol import PeppolError, read_document
try:
    read_document(sys.argv[1])
except PeppolError as exc:
    print(exc.reason, file=sys.stderr)
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
def test_huge_element_count_is_bounded_in_memory() -> None:
    """200,001 elements are refused with the whole process staying under 250 MB resident."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(BAD / "peppol-huge-element-count.xml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "more than 200,000 XML elements" in result.stderr
    peak_kib = int(result.stdout.strip())
    assert peak_kib < 250 * 1024


def _quarantine_loop(drop: DropFolder) -> list[str]:
    """What an inbound-document bot does: read each file, quarantine what cannot be read."""
    read = []
    for claimed in drop:
        try:
            read_document(claimed.path, name=claimed.original_name)
        except PeppolError as exc:
            claimed.quarantine(
                "MALFORMED_DOCUMENT", str(exc), errors=[{"element": exc.path, "reason": exc.reason}]
            )
        else:
            claimed.done()
            read.append(claimed.original_name)
    return read


@pytest.mark.slow
def test_drop_folder_loop_quarantines_every_bad_document_with_a_reason(tmp_path: Path) -> None:
    """Bad and good documents through one drop folder: the bad ones quarantined with a
    .reason.json naming file and element, the good ones done, nothing lost."""
    audit_path = tmp_path / "audit.jsonl"
    drop = DropFolder(tmp_path / "einvoicing", stable_for_s=0.01, audit=AuditLog(audit_path).append)
    for name in CORPUS:
        drop.deposit(BAD / name, name)
    good = ["base-example.xml", "base-creditnote-correction.xml"]
    for name in good:
        drop.deposit(GOOD / "invoice" / name, name)

    assert sorted(_quarantine_loop(drop)) == sorted(good)

    quarantine = drop.root / "quarantine"
    assert sorted(p.name for p in quarantine.glob("*.xml")) == sorted(CORPUS)
    for name, (path, words) in CORPUS.items():
        sidecar = json.loads((quarantine / f"{name}{REASON_SUFFIX}").read_text(encoding="utf-8"))
        assert sidecar["reason"] == "MALFORMED_DOCUMENT"
        assert sidecar["message"].startswith(f"{name}: ")
        assert words in sidecar["message"]
        assert sidecar["errors"] == [{"element": path, "reason": sidecar["message"].split(": ", 2)[-1]}] or (
            path is None and sidecar["errors"][0]["element"] is None
        )
        assert sidecar["original_name"] == name
        assert (quarantine / name).read_bytes() == (BAD / name).read_bytes()  # kept unchanged
    assert sorted(p.name for p in (drop.root / "done").iterdir()) == sorted(good)
    assert list(drop.inbox.iterdir()) == []
    assert list(drop.processing.iterdir()) == []
    assert verify_audit(audit_path).ok


# --- the command line -------------------------------------------------------------------------


def test_cli_json_prints_the_documented_shape() -> None:
    """`procbots peppol read FILE --json` prints to_json_shape of the document."""
    path = GOOD / "invoice" / "Allowance-example.xml"
    result = CliRunner().invoke(procbots_app, ["peppol", "read", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == to_json_shape(read_document(path))


def test_cli_table_shows_lines_totals_and_findings() -> None:
    """Without --json, people get tables: id, lines, totals, and the findings."""
    result = CliRunner().invoke(
        procbots_app, ["peppol", "read", str(GOOD / "invoice" / "vat-category-Z.xml")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for text in ("Invoice Vat-Z", "Test item, category Z", "1200.00", "INVALID_GB_VAT", "GB928741974"):
        assert text in result.stdout


def test_cli_exits_2_with_a_clear_message_and_no_traceback_on_a_bad_file() -> None:
    """A real `procbots peppol read` on a bad file: exit 2, file and element named, no traceback."""
    bad = BAD / "peppol-text-in-quantity.xml"
    result = subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", "peppol", "read", str(bad), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        f"{bad}: /Invoice/cac:InvoiceLine[2]/cbc:InvoicedQuantity: expected a number, got 'x'"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    """A path that does not exist is exit 2 with its name."""
    result = CliRunner().invoke(procbots_app, ["peppol", "read", str(tmp_path / "nope.xml")])
    assert result.exit_code == 2
    assert "nope.xml: no such file" in result.output
