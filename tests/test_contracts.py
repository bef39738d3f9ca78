"""Contract upload bot without a browser: validation reasons, pairing of details with files,
odd and hostile names, the register comparison and the report workbook.

The builders here (:func:`build_drop`) also make the 20-contract drop of the end-to-end tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from pypdf import PdfWriter

from bots.contracts import (
    BatchFile,
    ContractOutcome,
    ContractRejected,
    ContractRunResult,
    check_job,
    compare_register_details,
    plan_batch,
    read_metadata_file,
    register_form,
    validate_contract,
    write_contracts_report,
)
from bots.domain.identifiers import gb_vat_check_digits
from sandbox.pdf import text_pdf

TODAY = dt.date(2026, 5, 1)


def vat(seven: str) -> str:
    return f"GB{seven}{gb_vat_check_digits(seven)}"


def good_details(contract_id: str = "CT-2026-0001", **changes: Any) -> dict[str, Any]:
    details: dict[str, Any] = {
        "contract_id": contract_id,
        "title": "Supply of examination gloves",
        "supplier_name": "Medisupply Ltd",
        "supplier_vat": vat("1234567"),
        "companies_house": "01234567",
        "buyer_ods": "RX1",
        "cpv_codes": "33141420-0",
        "procedure": "open",
        "value_net": "120000.00",
        "value_gross": "144000.00",
        "start_date": "2026-04-01",
        "end_date": "2028-03-31",
        "max_end_date": "2029-03-31",
        "kpis": "On-time delivery; Fill rate",
        "sme": "yes",
    }
    details.update(changes)
    return {k: v for k, v in details.items() if v is not None}


def reject(details: dict[str, Any], document: str | None = "CT.pdf") -> ContractRejected:
    with pytest.raises(ContractRejected) as caught:
        validate_contract(details, document_name=document, source="metadata.xlsx!Contracts row 7")
    return caught.value


# --- validation -----------------------------------------------------------------------------------


def test_the_pure_contract_rules_read_cells_only_through_the_readers_they_are_given() -> None:
    from bots.domain.contracts import CellReaders, check_contract_details

    def no_amounts(text: str) -> Decimal | None:
        return None

    readers = CellReaders(date=dt.date.fromisoformat, amount=no_amounts, flag=lambda text: text == "yes")
    with pytest.raises(ContractRejected) as caught:
        check_contract_details(good_details(), read=readers, document_name="CT.pdf", source="row 2")
    assert [(p.code, p.field) for p in caught.value.problems] == [
        ("INVALID_VALUE", "value_net"),
        ("INVALID_VALUE", "value_gross"),
    ]
    with_amounts = CellReaders(date=dt.date.fromisoformat, amount=Decimal, flag=lambda text: text == "yes")
    contract = check_contract_details(
        good_details(), read=with_amounts, document_name="CT.pdf", source="row 2"
    )
    assert contract.value_gross == Decimal("144000.00")
    assert contract.sme is True


def test_good_details_become_a_contract_with_typed_values() -> None:
    contract = validate_contract(
        good_details(value_net="£120,000.00", start_date="01/04/2026", cpv_codes="33141420-0, 33140000-3"),
        document_name="CT-2026-0001.pdf",
        source="x",
    )

    assert contract.value_net == Decimal("120000.00")
    assert contract.start_date == dt.date(2026, 4, 1)
    assert contract.cpv_codes == ["33141420-0", "33140000-3"]
    assert contract.kpis == ["On-time delivery", "Fill rate"]
    assert contract.sme is True
    assert contract.document == "CT-2026-0001.pdf"


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        pytest.param({"title": None}, "MISSING_FIELD", "contract title is missing", id="no-title"),
        pytest.param(
            {"end_date": "2026-01-31"}, "DATES_INCONSISTENT", "before the start date", id="end-before-start"
        ),
        pytest.param(
            {"max_end_date": "2027-01-01"},
            "DATES_INCONSISTENT",
            "maximum end date 01/01/2027",
            id="max-end-early",
        ),
        pytest.param(
            {"value_gross": "100"}, "VALUE_INCONSISTENT", "less than the value excluding", id="gross<net"
        ),
        pytest.param(
            {"value_net": "5000000", "value_gross": "6000000"},
            "HIGH_VALUE_KPIS",
            "at least 3 KPIs",
            id="5m-kpis",
        ),
        pytest.param({"supplier_vat": "GB123456789"}, "SUPPLIER_ID_INVALID", "check digits", id="vat-digits"),
        pytest.param({"companies_house": "ABC"}, "SUPPLIER_ID_INVALID", "Companies House", id="ch-shape"),
        pytest.param(
            {"supplier_vat": None, "companies_house": None},
            "SUPPLIER_ID_MISSING",
            "neither",
            id="no-supplier-id",
        ),
        pytest.param({"start_date": "31/02/2026"}, "INVALID_VALUE", "not a date", id="bad-date"),
        pytest.param({"value_net": "lots"}, "INVALID_VALUE", "not an amount", id="bad-amount"),
        pytest.param({"procedure": "handshake"}, "INVALID_VALUE", "not one of", id="bad-procedure"),
        pytest.param({"cpv_codes": "gloves"}, "INVALID_VALUE", "CPV code 'gloves'", id="bad-cpv"),
        pytest.param({"buyer_ods": "R"}, "INVALID_VALUE", "ODS code", id="bad-ods"),
        pytest.param({"contract_id": "CT 1 <script>"}, "INVALID_VALUE", "up to 64 letters", id="bad-id"),
        pytest.param({"sme": "perhaps"}, "INVALID_VALUE", "yes or no", id="bad-flag"),
    ],
)
def test_each_problem_has_its_reason_code_and_a_readable_message(
    changes: dict[str, Any], code: str, words: str
) -> None:
    details = good_details()
    for key, value in changes.items():
        if value is None:
            details.pop(key, None)
        else:
            details[key] = value

    rejected = reject(details)

    assert code in [p.code for p in rejected.problems]
    assert words in rejected.message
    assert rejected.message.startswith("metadata.xlsx!Contracts row 7: ")


def test_every_problem_is_reported_at_once_and_the_first_gives_the_code() -> None:
    rejected = reject(good_details(title=None, end_date="2025-01-01", supplier_vat="GB000000001"))

    assert [p.code for p in rejected.problems] == [
        "MISSING_FIELD",
        "DATES_INCONSISTENT",
        "SUPPLIER_ID_INVALID",
    ]
    assert rejected.code == "MISSING_FIELD"
    assert rejected.message.count(";") == 2


def test_over_five_million_with_vat_needs_three_kpis_and_the_document() -> None:
    big = good_details(value_net="4500000", value_gross="5400000", kpis="A; B; C")
    assert validate_contract(big, document_name="big.pdf", source="x").kpis == ["A", "B", "C"]

    rejected = reject(big, document=None)
    assert [p.code for p in rejected.problems] == ["FILE_MISSING"]
    assert "must publish its document" in rejected.message
    # Exactly £5m is not "over" £5m.
    assert validate_contract(
        good_details(value_net="5000000", value_gross="5000000", kpis=""), document_name="a.pdf", source="x"
    )


def test_a_kpi_count_column_stands_in_for_kpi_names() -> None:
    contract = validate_contract(good_details(kpis=None, kpi_count="4"), document_name="a.pdf", source="x")
    assert len(contract.kpis) == 4


def test_a_kpi_count_beside_kpi_names_must_agree_with_them() -> None:
    agreeing = good_details(kpis="On-time delivery; Fill rate", kpi_count="2")
    assert validate_contract(agreeing, document_name="a.pdf", source="x").kpis == [
        "On-time delivery",
        "Fill rate",
    ]

    rejected = reject(good_details(kpis="On-time delivery; Fill rate", kpi_count="3"))
    assert [(p.code, p.field) for p in rejected.problems] == [("INVALID_VALUE", "kpi_count")]
    assert "does not match the 2 KPI names" in rejected.message


def test_a_kpi_name_is_one_line_with_single_spaces_as_the_register_lists_it() -> None:
    contract = validate_contract(
        good_details(kpis="On-time\u2028delivery;  Fill   rate "), document_name="a.pdf", source="x"
    )
    assert contract.kpis == ["On-time delivery", "Fill rate"]
    assert register_form(contract)["kpis"] == "On-time delivery\nFill rate"


# --- building a drop ------------------------------------------------------------------------------


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class Drop:
    """A folder of contracts as staff would drop it, and what should become of each."""

    folder: Path
    valid: dict[str, bytes] = field(default_factory=dict)
    """contract ID -> document bytes of the contracts that must reach the register."""
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    """contract ID -> the reason code it must be rejected with."""
    kpis: dict[str, list[str]] = field(default_factory=dict)
    """contract ID -> the KPI names the register must list, in order."""


KPI_SETS: tuple[tuple[str, list[str]], ...] = (
    ("On-time delivery; Fill rate", ["On-time delivery", "Fill rate"]),
    (
        "Deliveries to Café Müller ward by 07:00 | Stock-outs < 1% & fill rate ≥ 98%",
        ["Deliveries to Café Müller ward by 07:00", "Stock-outs < 1% & fill rate ≥ 98%"],
    ),
    ("", []),
    (
        "Response time: 4 hours\n“Right first time”  deliveries\nSocial value: 2 apprenticeships",
        [
            "Response time: 4 hours",
            "“Right first time” deliveries",
            "Social value: 2 apprenticeships",
        ],
    ),
)
"""KPIs as a sheet or sidecar gives them (``;``, ``|`` or line breaks) -> the names the register keeps."""


UNICODE_NAME = "Contrat signé – Café Müller CT-0013.pdf"
LONG_NAME = "CT-0014 " + "signed framework call-off agreement " * 6 + ".pdf"

METADATA_HEADER = [
    "File",
    "Contract ID",
    "Contract title",
    "Supplier",
    "Supplier VAT number",
    "Companies House number",
    "Buyer ODS code",
    "CPV codes",
    "Procedure",
    "Value excluding VAT",
    "Value including VAT",
    "Start date",
    "End date",
    "Maximum end date",
    "KPIs",
    "SME",
]


def build_drop(folder: Path, prefix: str = "CT-T") -> Drop:
    """20 contracts: 14 good (2 with JSON sidecars, one unicode and one very long file name),
    4 with bad details, 1 encrypted PDF, 1 not a PDF; plus a metadata row with no file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    drop = Drop(folder)
    rows: list[list[Any]] = []
    for n in range(1, 21):
        cid = f"{prefix}-{n:04d}"
        start = TODAY - dt.timedelta(days=30 * n)
        end = TODAY + dt.timedelta(days=20 * n)  # some end within 90 days, some within 180, some later
        details = good_details(
            cid,
            title=f"Supply of ward consumables, lot {n}",
            supplier_name=f"Supplier {n} Ltd",
            supplier_vat=vat(f"{1000000 + n * 7919:07d}"),
            value_net=str(Decimal(50000 * n)),
            value_gross=str(Decimal(60000 * n)),
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            max_end_date=(end + dt.timedelta(days=365)).isoformat(),
            kpis=KPI_SETS[n % len(KPI_SETS)][0],
            sme="yes" if n % 3 == 0 else "no",
        )
        drop.kpis[cid] = KPI_SETS[n % len(KPI_SETS)][1]
        name = f"{cid}.pdf"
        document = text_pdf([f"Contract {cid}", details["title"]], title=cid)
        if n == 13:
            name = UNICODE_NAME
        elif n == 14:
            name = LONG_NAME
        elif n == 15:
            details["end_date"] = (start - dt.timedelta(days=1)).isoformat()
            drop.rejected[cid] = "DATES_INCONSISTENT"
        elif n == 16:
            details.update(value_net="4800000", value_gross="5760000", kpis="Availability; Response time")
            drop.rejected[cid] = "HIGH_VALUE_KPIS"
        elif n == 17:
            details["supplier_vat"] = "GB123456789"
            drop.rejected[cid] = "SUPPLIER_ID_INVALID"
        elif n == 18:
            details.pop("title")
            drop.rejected[cid] = "MISSING_FIELD"
        elif n == 19:
            document = encrypted_pdf()
            drop.rejected[cid] = "PDF_ENCRYPTED"
        elif n == 20:
            document = b"PK\x03\x04" + b"word/document.xml" + bytes(200)
            drop.rejected[cid] = "NOT_A_PDF"
        (folder / name).write_bytes(document)
        if cid not in drop.rejected:
            drop.valid[cid] = document
        drop.details[cid] = details
        if n in (5, 13):  # a JSON sidecar instead of a metadata row
            sidecar = {**details, "document": name}
            (folder / f"{Path(name).stem}.json").write_text(json.dumps(sidecar, ensure_ascii=False), "utf-8")
            continue
        rows.append(
            [
                name,
                cid,
                details.get("title"),
                details["supplier_name"],
                details["supplier_vat"],
                details["companies_house"],
                details["buyer_ods"],
                details["cpv_codes"],
                details["procedure"],
                float(details["value_net"]),
                float(details["value_gross"]),
                dt.date.fromisoformat(details["start_date"]),
                dt.date.fromisoformat(details["end_date"]),
                dt.date.fromisoformat(details["max_end_date"]),
                details["kpis"],
                details["sme"],
            ]
        )
    missing = f"{prefix}-0099"
    no_file = [
        f"{missing}.pdf",
        missing,
        "Agency staff",
        "Staffing Ltd",
        vat("7654321"),
        "",
        "RX1",
        "79620000-6",
    ]
    rows.append([*no_file, "direct_award", 1000, 1200, TODAY, TODAY, None, "", "no"])
    drop.rejected[missing] = "FILE_MISSING"
    wb = Workbook()
    ws = wb.active
    ws.title = "Contracts"
    ws.append(["Contracts signed in April"])  # a title row above the header, as people write them
    ws.append(METADATA_HEADER)
    for row in rows:
        ws.append(row)
    wb.save(folder / "metadata.xlsx")
    return drop


def files_of(folder: Path) -> list[BatchFile]:
    return [BatchFile(p.name, p) for p in sorted(folder.iterdir()) if p.is_file()]


def test_a_drop_pairs_rows_and_sidecars_with_their_files(tmp_path: Path) -> None:
    drop = build_drop(tmp_path / "drop")

    plan = plan_batch(files_of(drop.folder))

    assert not plan.unreadable
    by_id = {job.contract_id: job for job in plan.jobs}
    assert set(by_id) == set(drop.details) | {"CT-T-0099"}
    assert by_id["CT-T-0013"].source == "Contrat signé – Café Müller CT-0013.json"
    assert by_id["CT-T-0013"].document_name == UNICODE_NAME
    assert by_id["CT-T-0014"].document_name == LONG_NAME
    assert by_id["CT-T-0002"].source == "metadata.xlsx!Contracts row 4"
    assert by_id["CT-T-0099"].problems[0]["code"] == "FILE_MISSING"
    outcomes: dict[str, str] = {}
    for job in plan.jobs:
        try:
            contract, sha256 = check_job(job)
        except ContractRejected as exc:
            outcomes[job.contract_id] = exc.code
        else:
            assert sha256 == hashlib.sha256(drop.valid[contract.contract_id]).hexdigest()
    assert outcomes == drop.rejected


def test_the_same_drop_gives_the_same_keys_and_a_changed_detail_a_new_one(tmp_path: Path) -> None:
    drop = build_drop(tmp_path / "a")
    keys = {job.contract_id: job.key for job in plan_batch(files_of(drop.folder)).jobs}
    again = {job.contract_id: job.key for job in plan_batch(files_of(drop.folder)).jobs}
    assert keys == again
    assert keys["CT-T-0001"].startswith("CT-T-0001@")

    sidecar = drop.folder / "CT-T-0005.json"
    data = json.loads(sidecar.read_text("utf-8"))
    sidecar.write_text(json.dumps({**data, "title": "Corrected title"}), "utf-8")
    changed = {job.contract_id: job.key for job in plan_batch(files_of(drop.folder)).jobs}
    assert changed["CT-T-0005"] != keys["CT-T-0005"]
    assert changed["CT-T-0001"] == keys["CT-T-0001"]


@pytest.mark.parametrize(
    "name",
    ["../x.pdf", "../../etc/passwd", "/etc/passwd", "sub/CT.pdf", "..\\x.pdf", "C:x.pdf"],
)
def test_a_document_name_that_is_a_path_is_refused_and_nothing_outside_is_touched(
    tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "x.pdf"
    outside.write_bytes(text_pdf(["not yours"]))
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "CT-1.json").write_text(json.dumps(good_details("CT-1", document=name)), "utf-8")

    plan = plan_batch(files_of(folder))

    (job,) = plan.jobs
    assert job.problems[0]["code"] == "UNSAFE_FILE_NAME"
    assert job.document_path is None
    assert job.files == [str(folder / "CT-1.json")]
    with pytest.raises(ContractRejected) as caught:
        check_job(job)
    assert caught.value.code == "UNSAFE_FILE_NAME"
    assert outside.read_bytes().startswith(b"%PDF")


def test_files_without_details_duplicates_and_bad_sidecars_are_each_explained(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    pdf = text_pdf(["x"])
    for name in ("CT-1.pdf", "CT-2.pdf", "stray.pdf", "broken.pdf"):
        (folder / name).write_bytes(pdf)
    (folder / "CT-1.json").write_text(json.dumps(good_details("CT-1")), "utf-8")
    (folder / "CT-2.json").write_text(json.dumps(good_details("CT-1", document="CT-2.pdf")), "utf-8")
    (folder / "broken.json").write_text("{not json", "utf-8")
    (folder / "list.json").write_text("[1, 2]", "utf-8")

    plan = plan_batch(files_of(folder))

    codes = {job.source: [p["code"] for p in job.problems] for job in plan.jobs}
    assert codes == {
        "CT-1.json": [],
        "CT-2.json": ["DUPLICATE_CONTRACT_ID"],
        "broken.json": ["METADATA_UNREADABLE"],
        "list.json": ["METADATA_UNREADABLE", "FILE_MISSING"],
        "stray.pdf": ["METADATA_MISSING"],
    }
    stray = next(job for job in plan.jobs if job.source == "stray.pdf")
    assert stray.files == [str(folder / "stray.pdf")]


def test_an_unreadable_metadata_workbook_is_reported_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "metadata.xlsx").write_bytes(b"this is not a workbook")
    (folder / "CT-1.pdf").write_bytes(text_pdf(["x"]))

    plan = plan_batch(files_of(folder))

    (problem,) = plan.unreadable.values()
    assert problem.code == "METADATA_UNREADABLE"
    assert [job.problems[0]["code"] for job in plan.jobs] == ["METADATA_MISSING"]


def test_the_sandbox_sample_metadata_sheet_reads(tmp_path: Path) -> None:
    from sandbox.datafiles import write_input_files

    write_input_files(tmp_path, seed=1, orders=10)
    folder = tmp_path / "contracts"

    plan = plan_batch(files_of(folder))

    assert len(plan.jobs) == 8
    for job in plan.jobs:
        contract, _ = check_job(job)
        assert contract.document == f"{contract.contract_id}.pdf"


def test_csv_metadata_reads_like_the_workbook(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    details = good_details()
    path.write_text(",".join(details) + "\n" + ",".join(f'"{v}"' for v in details.values()) + "\n", "utf-8")

    ((source, row),) = read_metadata_file(path)

    assert source == "metadata.csv row 2"
    assert validate_contract(row, document_name="a.pdf", source=source).contract_id == "CT-2026-0001"


# --- the register comparison ------------------------------------------------------------------------


def shown_for(details: dict[str, Any]) -> dict[str, str]:
    contract = validate_contract(details, document_name="a.pdf", source="x")
    form = register_form(contract)
    return {
        "Contract ID": str(form["contract_id"]),
        "Contract title": str(form["title"]),
        "Supplier name": str(form["supplier_name"]),
        "Supplier VAT number": str(form["supplier_vat"]),
        "Companies House number": str(form["companies_house"]),
        "Buyer ODS code": str(form["buyer_ods"]),
        "CPV codes": str(form["cpv_codes"]).replace(" ", ""),
        "Procedure": "Open procedure",
        "Contract value excluding VAT": f"£{contract.value_net:,.2f}",
        "Contract value including VAT": f"£{contract.value_gross:,.2f}",
        "Start date": str(form["start_date"]),
        "End date": str(form["end_date"]),
        "Maximum end date": str(form["max_end_date"]),
        "Number of KPIs": str(len(contract.kpis)),
        "KPIs": str(form["kpis"]),
        "SME supplier": "Yes",
    }


def test_the_register_comparison_accepts_what_the_portal_shows_and_names_each_difference() -> None:
    details = good_details()
    contract = validate_contract(details, document_name="a.pdf", source="x")
    shown = shown_for(details)
    assert compare_register_details(contract, shown) == []

    shown.update(
        {
            "Contract value excluding VAT": "£120,000.01",
            "End date": "2028-04-01",
            "SME supplier": "No",
            "KPIs": "Fill rate\nOn-time delivery",
        }
    )
    del shown["Contract title"]
    differences = compare_register_details(contract, shown)

    assert len(differences) == 5
    shown_kpis = "'Fill rate\\nOn-time delivery'"
    assert f"KPIs: the register shows {shown_kpis}, expected 'On-time delivery; Fill rate'" in differences
    assert "Contract title: not shown by the register" in differences
    assert any(
        d.startswith("Contract value excluding VAT: the register shows '£120,000.01'") for d in differences
    )


# --- the report -------------------------------------------------------------------------------------


def test_the_report_has_uploaded_rejected_and_ending_soon_with_a_chart_by_month(tmp_path: Path) -> None:
    def known(cid: str, days: int) -> dict[str, Any]:
        return {"contract_id": cid, "title": cid, "supplier_name": "S", "value_gross": "1200.00",
                "end_date": (TODAY + dt.timedelta(days=days)).isoformat(), "max_end_date": None}  # fmt: skip

    result = ContractRunResult(
        outcomes=[
            ContractOutcome(
                "CT-1",
                "metadata.xlsx row 2",
                "CT-1.pdf",
                "uploaded",
                sha256="ab" * 32,
                details={**known("CT-1", 10), "value_net": "1000.00", "start_date": "2026-01-01"},
            ),
            ContractOutcome(
                "CT-2",
                "CT-2.json",
                "CT-2.pdf",
                "rejected",
                "DATES_INCONSISTENT",
                "CT-2.json: two things",
                [
                    {"code": "DATES_INCONSISTENT", "field": "end_date", "message": "end before start"},
                    {"code": "MISSING_FIELD", "field": "title", "message": "the contract title is missing"},
                ],
            ),
        ]
    )
    ending = [known("CT-1", 10), known("CT-3", 80), known("CT-4", 120), known("CT-5", 400), known("CT-6", -5)]

    path = write_contracts_report(tmp_path / "contracts.xlsx", result, ending, TODAY)

    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Uploaded", "Rejected", "Ending soon"]
    figures = {
        row[0]: row[1] for row in wb["Summary"].iter_rows(min_row=3, max_col=2, values_only=True) if row[0]
    }
    assert figures["Uploaded"] == 1
    assert figures["Rejected"] == 1
    assert figures["Contracts ending within 90 days"] == 2
    assert figures["Contracts ending within 180 days"] == 3
    assert len(wb["Summary"]._charts) == 1
    rejected = list(wb["Rejected"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[2], r[3]) for r in rejected] == [
        ("CT-2", "DATES_INCONSISTENT", "end_date"),
        ("CT-2", "MISSING_FIELD", "title"),
    ]
    ending_rows = list(wb["Ending soon"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[6], r[7]) for r in ending_rows] == [
        ("CT-1", 10, "within 90 days"),
        ("CT-3", 80, "within 90 days"),
        ("CT-4", 120, "within 180 days"),
    ]
    uploaded = list(wb["Uploaded"].iter_rows(min_row=2, values_only=True))
    assert uploaded[0][0] == "CT-1"
    assert uploaded[0][4] == 1000


# --- dry run and the command line (no browser) ----------------------------------------------------


def test_a_dry_run_validates_and_reports_but_moves_nothing(settings_env: Path, tmp_path: Path) -> None:
    from bots.contracts import run_contract_uploads

    drop = build_drop(tmp_path / "drop")
    before = sorted(p.name for p in drop.folder.iterdir())

    result = run_contract_uploads(drop.folder, dry_run=True, today=TODAY)

    assert sorted(p.name for p in drop.folder.iterdir()) == before
    assert {o.contract_id for o in result.outcomes if o.outcome == "validated"} == set(drop.valid)
    assert {o.contract_id: o.reason_code for o in result.outcomes if o.outcome == "rejected"} == drop.rejected
    assert result.report is not None
    assert result.report.parent == settings_env / "outbox"
    assert load_workbook(result.report)["Summary"]["A1"].value == "Contract uploads (dry run)"


def test_the_command_line_reports_json_and_exits_1_when_some_are_rejected(
    settings_env: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    drop = build_drop(tmp_path / "drop")

    outcome = CliRunner().invoke(
        app, ["run", "contract-uploads", "--folder", str(drop.folder), "--dry-run", "--json"]
    )

    assert outcome.exit_code == 1, outcome.output
    data = json.loads(outcome.stdout)
    assert data["counts"]["validated"] == 14
    assert data["counts"]["rejected"] == 7
    rows = {row["contract_id"]: row for row in data["contracts"]}
    assert rows["CT-T-0019"]["reason_code"] == "PDF_ENCRYPTED"
    assert Path(data["report"]).is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["--folder", "/no/such/folder"], "no such folder", id="missing-folder"),
        pytest.param(["--folder", ".", "--portal", "ftp://x"], "expected an http", id="bad-portal"),
        pytest.param(["--folder", "{tmp}"], "portal.password is not set", id="no-password"),
    ],
)
def test_the_command_line_exits_2_on_bad_usage_or_configuration_before_touching_files(
    settings_env: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "CT-1.pdf").write_bytes(text_pdf(["x"]))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]

    outcome = CliRunner().invoke(app, ["run", "contract-uploads", *args])

    assert outcome.exit_code == 2, outcome.output
    assert words in outcome.stderr
    assert (tmp_path / "CT-1.pdf").is_file()


def test_a_name_written_in_another_unicode_form_or_case_still_finds_its_file(tmp_path: Path) -> None:
    import unicodedata

    folder = tmp_path / "drop"
    folder.mkdir()
    on_disk = unicodedata.normalize("NFD", "Contrat signé Café.PDF")  # as a Mac writes it
    (folder / on_disk).write_bytes(text_pdf(["x"]))
    in_sheet = unicodedata.normalize("NFC", "contrat signé café.pdf")
    (folder / "CT-1.json").write_text(json.dumps(good_details("CT-1", document=in_sheet)), "utf-8")

    (job,) = plan_batch(files_of(folder)).jobs

    assert job.problems == []
    assert job.document_path == str(folder / on_disk)


def test_a_run_with_only_hostile_names_quarantines_them_and_touches_nothing_outside(
    settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Symlinks out of the folder, a sidecar pointing at ``../``, an odd and a very long name:
    all end in quarantine with reasons; nothing outside the folder is read or moved; no portal."""
    from bots.contracts import run_contract_uploads
    from config.settings import get_settings

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", "not-used")
    monkeypatch.setenv("PROCBOTS_PORTAL__URL", "http://127.0.0.1:9")  # nothing listens: must not be needed
    get_settings.cache_clear()
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(text_pdf(["confidential"]))
    root = tmp_path / "contracts"
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "linked.pdf").symlink_to(outside)
    (inbox / "CT-1.json").write_text(json.dumps(good_details("CT-1", document="../secret.pdf")), "utf-8")
    odd = "CT-2 ☃ <draft> \u202e.pdf"
    (inbox / odd).write_bytes(text_pdf(["odd"]))
    long_name = "x" * 240 + ".pdf"
    (inbox / long_name).write_bytes(text_pdf(["long"]))

    result = run_contract_uploads(root, stable_for_s=0, today=TODAY)

    assert outside.read_bytes().startswith(b"%PDF")
    assert not outside.is_symlink()
    codes = {o.source: o.reason_code for o in result.outcomes}
    assert codes == {"CT-1.json": "UNSAFE_FILE_NAME", odd: "METADATA_MISSING", long_name: "METADATA_MISSING"}
    quarantined = {}
    for sidecar in (root / "quarantine").glob("*.reason.json"):
        record = json.loads(sidecar.read_text("utf-8"))
        quarantined[record["original_name"]] = record["reason"]
        assert len(sidecar.name.encode()) < 255
    assert quarantined == {
        "linked.pdf": "NOT_A_REGULAR_FILE",
        "CT-1.json": "UNSAFE_FILE_NAME",
        odd: "METADATA_MISSING",
        long_name: "METADATA_MISSING",
    }
    assert [p for sub in ("inbox", "processing", "done") for p in (root / sub).iterdir()] == []
    assert result.exit_code == 1
