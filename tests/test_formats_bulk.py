"""load_orders' bulk shortcuts (direct line building, grouped consistency check, the
collector left alone) give what the plain model path gives and leave the process as it was."""

from __future__ import annotations

import gc
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.models import POLine, PurchaseOrder
from connectors.formats import OrderRow, _po_line, load_orders
from connectors.rows import SpreadsheetError


def _orders_csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(
        "po_number,line_no,supplier_id,supplier_vat,requisition_ref,quantity,unit_price,vat_rate\n" + body,
        encoding="utf-8",
    )
    return path


def test_direct_po_line_equals_a_validated_line() -> None:
    """A line built from a validated order row is what POLine's own validation builds, fields set included."""
    row = OrderRow.model_validate(
        {
            "po_number": "PO-1",
            "line_no": 3,
            "supplier_id": "SUP-1",
            "item_code": "5012345678900",
            "description": "Gloves",
            "quantity": Decimal("2"),
            "unit_price": Decimal("4.50"),
            "vat_rate": Decimal("5"),
            "receipt_required": False,
        }
    )
    line = _po_line(row)
    expected = POLine.model_validate({name: getattr(row, name) for name in POLine.model_fields})
    assert line == expected
    assert list(line.__dict__) == list(expected.__dict__)
    assert line.model_fields_set == expected.model_fields_set
    assert line.model_fields_set is not _po_line(row).model_fields_set, "each line owns its fields set"


def test_each_differing_header_value_is_reported_once_at_its_row(tmp_path: Path) -> None:
    """Lines of one order that disagree on supplier, VAT number or requisition are reported per cell."""
    path = _orders_csv(
        tmp_path,
        "PO-1,1,SUP-1,GB980780684,REQ-1,1,1.00,20\n"
        "PO-1,2,SUP-1,GB980780684,REQ-1,1,1.00,20\n"
        "PO-1,3,SUP-2,GB980780684,REQ-2,1,1.00,20\n"
        "PO-2,1,SUP-3,,,1,1.00,20\n"
        "PO-2,2,SUP-3,GB980780684,,1,1.00,20\n"
        "PO-3,1,SUP-4,,,1,1.00,20\n"
        "PO-3,2,SUP-4,,,2,2.00,5\n",
    )
    orders, errors = load_orders(path)
    assert [(o.po_number, len(o.lines)) for o in orders] == [("PO-3", 2)]
    assert [(e.row, e.column, e.message) for e in errors] == [
        (4, "supplier_id", "purchase order PO-1: supplier_id differs from row 2 ('SUP-1')"),
        (4, "requisition_ref", "purchase order PO-1: requisition_ref differs from row 2 ('REQ-1')"),
        (6, "supplier_vat", "purchase order PO-2: supplier_vat differs from row 5 (None)"),
    ]
    for order in orders:
        assert PurchaseOrder.model_validate(order.model_dump()) == order


def test_bulk_load_leaves_the_collector_and_frozen_objects_as_they_were(tmp_path: Path) -> None:
    """The collector is on after a load (also a failing one); objects a caller froze stay frozen."""
    path = _orders_csv(tmp_path, "PO-1,1,SUP-1,,,1,1.00,20\n")
    assert gc.isenabled()
    assert len(load_orders(path)[0]) == 1
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0, "the load's own objects are not left frozen"
    with pytest.raises(SpreadsheetError):
        load_orders(tmp_path / "missing.csv")
    assert gc.isenabled()
    # A frozen object is in no generation until unfreeze() (the count of frozen objects
    # itself drifts: frozen objects may die by reference counting during the load).
    sentinel: list[object] = []

    def in_a_generation() -> bool:
        return any(o is sentinel for g in range(3) for o in gc.get_objects(generation=g))

    gc.freeze()
    try:
        load_orders(path)
        assert not in_a_generation(), "an object the caller froze was unfrozen by the load"
    finally:
        gc.unfreeze()
    assert in_a_generation(), "control: unfreeze() puts it back in a generation"
    gc.disable()
    try:
        load_orders(path)
        assert not gc.isenabled(), "a collector the caller paused stays paused"
    finally:
        gc.enable()
