"""The purchase-order bot's pure half: reading requisitions, checking them, comparing with the portal.

No browser here: real .xlsx and .csv files written to a temporary folder, read back
through the connectors, and the checks a requisition must pass.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from bots.purchase_orders import (
    STATUS_BUSINESS,
    STATUS_RAISED,
    Problem,
    PurchaseOrderRun,
    Requisition,
    RequisitionLine,
    RequisitionResult,
    check_requisition,
    compare_with_portal,
    read_requisitions,
    to_purchase_order,
    write_results_workbook,
)
from connectors.rows import SpreadsheetError

TODAY = dt.date(2026, 11, 23)
RATES = [Decimal("20"), Decimal("5"), Decimal("0")]
HEADER = [
    "requisition_ref", "supplier_id", "supplier_vat", "cost_centre", "delivery_site", "need_by",
    "item_code", "description", "quantity", "unit_price", "vat_rate",
]  # fmt: skip
GOOD_VAT = "GB980780684"
GOOD_GTIN = "5012345678900"


def line(row: int = 2, **changes: object) -> RequisitionLine:
    values: dict[str, object] = {
        "row": row, "item_code": GOOD_GTIN, "description": "Nitrile gloves, box of 100",
        "quantity": Decimal("10"), "unit_price": Decimal("4.50"), "vat_rate": Decimal("20"),
    }  # fmt: skip
    values.update(changes)
    return RequisitionLine.model_validate(values)


def requisition(lines: list[RequisitionLine] | None = None, **changes: object) -> Requisition:
    values: dict[str, object] = {
        "requisition_ref": "REQ-1", "source": "reqs.xlsx", "supplier_id": "SUP-00001",
        "supplier_vat": GOOD_VAT, "cost_centre": "CC4100", "delivery_site": "RX101",
        "need_by": TODAY + dt.timedelta(days=14), "lines": lines or [line()],
    }  # fmt: skip
    values.update(changes)
    return Requisition.model_validate(values)


def write_xlsx(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def row(ref: str = "REQ-1", **changes: object) -> list[object]:
    values: dict[str, object] = {
        "requisition_ref": ref, "supplier_id": "SUP-00001", "supplier_vat": GOOD_VAT,
        "cost_centre": "CC4100", "delivery_site": "RX101", "need_by": dt.datetime(2026, 12, 31),
        "item_code": GOOD_GTIN, "description": "Gloves", "quantity": 10, "unit_price": 4.5, "vat_rate": 20,
    }  # fmt: skip
    values.update(changes)
    return [values[name] for name in HEADER]


# --- reading ----------------------------------------------------------------------------------


def test_rows_sharing_a_reference_become_one_requisition_in_file_order(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "reqs.xlsx",
        [row("REQ-2"), row("REQ-1"), row("REQ-2", item_code="SVC-00101", quantity=2, unit_price="£1,234.50")],
    )
    batch = read_requisitions(path)
    assert [r.requisition_ref for r in batch.requisitions] == ["REQ-2", "REQ-1"]
    first = batch.requisitions[0]
    assert first.rows == [2, 4]
    assert first.need_by == dt.date(2026, 12, 31)
    assert first.lines[1].unit_price == Decimal("1234.50")
    assert first.lines[0].unit_price == Decimal("4.5")  # the float cell 4.5, exactly
    assert not batch.orphan_rows


def test_a_bad_cell_stays_with_its_requisition_naming_row_and_field(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "reqs.xlsx", [row(), row(quantity="lots")])
    (req,) = read_requisitions(path).requisitions
    problems = check_requisition(req, today=TODAY, vat_rates=RATES)
    assert [(p.code, p.row, p.field) for p in problems] == [("UNREADABLE_VALUE", 3, "quantity")]
    assert "row 3, quantity ('lots')" in str(problems[0])


def test_csv_with_other_header_spellings_reads_through_the_aliases(tmp_path: Path) -> None:
    path = tmp_path / "reqs.csv"
    path.write_text(
        "Req Ref,Supplier,VAT Number,Cost Centre,Site,Required By,GTIN,Description,Qty,Price,VAT %\n"
        f"REQ-9,SUP-00001,{GOOD_VAT},CC4100,rx101,31/12/2026,{GOOD_GTIN},Gloves,3,2.50,20%\n",
        encoding="utf-8",
    )
    (req,) = read_requisitions(path).requisitions
    assert (req.requisition_ref, req.delivery_site, req.need_by) == ("REQ-9", "RX101", dt.date(2026, 12, 31))
    assert req.lines[0].vat_rate == Decimal("20")


def test_rows_without_a_reference_are_reported_not_raised(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "reqs.xlsx", [row(), row(ref=None)])  # type: ignore[arg-type]
    batch = read_requisitions(path)
    assert len(batch.requisitions) == 1
    assert batch.orphan_rows == ["row 3: requisition_ref is empty, so the row belongs to no requisition"]


def test_header_fields_that_differ_within_a_requisition_are_a_problem(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "reqs.xlsx", [row(), row(supplier_id="SUP-00002")])
    (req,) = read_requisitions(path).requisitions
    problems = check_requisition(req, today=TODAY, vat_rates=RATES)
    assert [(p.code, p.row, p.field) for p in problems] == [("INCONSISTENT_REQUISITION", 3, "supplier_id")]
    assert "differs from SUP-00001 on row 2" in problems[0].message


def test_a_file_without_the_requisition_columns_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "orders.xlsx", [["PO-1", 1]], header=["po_number", "line_no"])
    with pytest.raises(SpreadsheetError, match=r"orders\.xlsx.*missing: requisition_ref"):
        read_requisitions(path)


# --- checking -----------------------------------------------------------------------------------


def test_a_good_requisition_has_no_problems_and_becomes_an_order() -> None:
    req = requisition([line(2), line(3, item_code="SVC-00101", vat_rate=Decimal("0"))])
    assert check_requisition(req, today=TODAY, vat_rates=RATES, suppliers={"SUP-00001": GOOD_VAT}) == []
    order = to_purchase_order(req)
    assert [ln.line_no for ln in order.lines] == [1, 2]
    assert order.gross_total == Decimal("99.00")


@pytest.mark.parametrize(
    ("req", "code", "field", "words"),
    [
        pytest.param(requisition(supplier_vat="GB980780685"), "INVALID_VAT_NUMBER", "supplier_vat", "check",
                     id="vat-check-digits"),
        pytest.param(requisition([line(item_code="5012345678901")]), "INVALID_GTIN", "item_code",
                     "check digit", id="gtin-check-digit"),
        pytest.param(requisition([line(quantity=Decimal("0"))]), "INVALID_QUANTITY", "quantity",
                     "more than 0", id="quantity-zero"),
        pytest.param(requisition([line(unit_price=Decimal("-1"))]), "INVALID_PRICE", "unit_price",
                     "must not be negative", id="negative-price"),
        pytest.param(requisition([line(vat_rate=Decimal("17.5"))]), "VAT_RATE_NOT_ALLOWED", "vat_rate",
                     "17.5% is not allowed (allowed: 0%, 5%, 20%)", id="vat-rate"),
        pytest.param(requisition(delivery_site="RX1-AB"), "INVALID_DELIVERY_SITE", "delivery_site", "ODS",
                     id="ods-shape"),
        pytest.param(requisition(need_by=TODAY - dt.timedelta(days=1)), "NEED_BY_IN_PAST", "need_by",
                     "before today (23/11/2026)", id="need-by-past"),
        pytest.param(requisition(supplier_id="SUP-99999"), "UNKNOWN_SUPPLIER", "supplier_id",
                     "not known to the portal", id="unknown-supplier"),
        pytest.param(requisition(supplier_vat="GB339967984"), "SUPPLIER_VAT_MISMATCH", "supplier_vat",
                     "the portal has VAT number GB980780684", id="vat-mismatch"),
    ],
)  # fmt: skip
def test_each_rule_names_its_code_field_and_reason(
    req: Requisition, code: str, field: str, words: str
) -> None:
    problems = check_requisition(req, today=TODAY, vat_rates=RATES, suppliers={"SUP-00001": GOOD_VAT})
    assert [(p.code, p.field) for p in problems] == [(code, field)]
    assert words in problems[0].message
    assert str(problems[0]).startswith("row 2, " + field)


def test_need_by_today_is_allowed() -> None:
    assert check_requisition(requisition(need_by=TODAY), today=TODAY, vat_rates=RATES) == []


def test_every_problem_of_a_requisition_is_listed_not_just_the_first() -> None:
    req = requisition([line(2, quantity=Decimal("-1")), line(3, unit_price=Decimal("-2"))], delivery_site="")
    codes = [p.code for p in check_requisition(req, today=TODAY, vat_rates=RATES)]
    assert codes == ["INVALID_DELIVERY_SITE", "INVALID_QUANTITY", "INVALID_PRICE"]


def test_problem_text_reads_as_a_place_and_a_message() -> None:
    problem = Problem(
        code="INVALID_QUANTITY", field="quantity", row=7, value="-3", message="must be more than 0"
    )
    assert str(problem) == "row 7, quantity ('-3'): must be more than 0"


# --- comparing with the portal --------------------------------------------------------------------


def test_an_order_equal_to_the_requisition_has_no_differences() -> None:
    order = to_purchase_order(requisition())
    shown = order.model_copy(update={"po_number": "PO-1", "supplier_name": "Acme"})
    assert compare_with_portal(order, shown, net_total=Decimal("45.00"), vat_total=Decimal("9.00"),
                               gross_total=Decimal("54.00")) == []  # fmt: skip


def test_differences_in_supplier_lines_and_totals_are_each_named() -> None:
    order = to_purchase_order(requisition([line(2), line(3)]))
    shown = order.model_copy(
        update={
            "supplier_id": "SUP-00002",
            "lines": [
                order.lines[0].model_copy(update={"quantity": Decimal("11"), "unit_price": Decimal("4.504")})
            ],
        }
    )
    found = compare_with_portal(
        order, shown, net_total=Decimal("49.50"), vat_total=Decimal("9.90"), gross_total=Decimal("59.40")
    )
    assert "supplier: requisition has SUP-00001, portal shows SUP-00002" in found
    assert "number of lines: requisition has 2, portal shows 1" in found
    assert "line 1 quantity: requisition has 10, portal shows 11" in found
    assert not any("unit price" in d for d in found)  # 4.504 shows as £4.50: the portal's display precision
    assert "gross total: requisition has £108.00, portal shows £59.40" in found


# --- the results workbook --------------------------------------------------------------------------


def test_results_workbook_has_a_row_per_requisition_with_links_and_reasons(tmp_path: Path) -> None:
    run = PurchaseOrderRun(
        run_id="r1",
        source=tmp_path / "reqs.xlsx",
        results=[
            RequisitionResult(requisition_ref="REQ-1", rows="2-3", supplier_id="SUP-00001", lines=2,
                              gross_total=Decimal("54.00"), status=STATUS_RAISED, po_number="PO-000061",
                              link="http://127.0.0.1:8765/purchase-orders/PO-000061", attempts=1, item_id=1),
            RequisitionResult(requisition_ref="REQ-2", rows="4", status=STATUS_BUSINESS,
                              reason_code="INVALID_GTIN", reason="=HYPERLINK(\"x\") row 4: bad GTIN"),
        ],
    )  # fmt: skip
    path = write_results_workbook(run, tmp_path / "out" / "results.xlsx")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Requisitions"]
    ws = wb["Requisitions"]
    header = [c.value for c in ws[1]]
    values = dict(zip(header, ws[2], strict=True))
    assert values["PO number"].value == "PO-000061"
    assert values["PO in portal"].hyperlink.target == "http://127.0.0.1:8765/purchase-orders/PO-000061"
    assert values["Gross total"].value == Decimal("54.00") or values["Gross total"].value == 54
    second = {h: c.value for h, c in zip(header, ws[3], strict=True)}
    assert second["Status"] == STATUS_BUSINESS
    assert second["Reason"].startswith("=HYPERLINK")
    assert ws.cell(3, header.index("Reason") + 1).data_type == "s"  # text, never a formula
    assert ws.freeze_panes == "A2"
