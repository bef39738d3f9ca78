"""The column-wise matcher (``bots.domain.match_tables``) gives exactly the decisions of the
reference engine (the oracle, ``tests/oracle/matching.py``), messages and order included: on
every named scenario, on generated order books and invoice runs, on bulk columns, and
on values too large or too fine for its integer columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.bench_matching import generate, to_models
from bots.domain.match_tables import MatchResult, MatchTables, match_tables
from bots.domain.matching import MatchingPolicy, summarise
from bots.domain.models import Invoice
from tests.matching_builders import SUPPLIER_B, invoice, order, receipt
from tests.oracle.matching import match_invoices
from tests.test_matching import SCENARIOS, Scenario
from tests.test_matching_properties import World, worlds

D = Decimal
KINDS = ("approve", "hold", "reject")


def _both(
    orders: Any, receipts: Any, invoices: list[Invoice], policy: MatchingPolicy | None = None
) -> MatchResult:
    expected = [d.to_dict() for d in match_invoices(orders, receipts, invoices, policy)]
    result = match_tables(MatchTables.from_models(orders, receipts, invoices), policy)
    assert [d.to_dict() for d in result.decisions()] == expected
    # The decision column (input order) says the same as the full decisions.
    by_number = {(d["invoice_number"], d["document_type"], d["source"]): d["decision"] for d in expected}
    for i, doc in enumerate(invoices):
        if sum(1 for other in invoices if other.invoice_number == doc.invoice_number) == 1:
            assert KINDS[result.decision[i]] == by_number[(doc.invoice_number, doc.document_type, doc.source)]
    assert result.counts() == {k: sum(1 for d in expected if d["decision"] == k) for k in KINDS}
    # The column-wise summary is summarise() of the decisions, key for key.
    assert result.summary() == summarise(result.decisions())
    return result


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_named_scenario_decides_as_the_reference_engine(scenario: Scenario) -> None:
    _both(scenario.orders, scenario.receipts, scenario.invoices, scenario.policy)


def test_named_scenarios_exercise_both_paths() -> None:
    """Most scenarios are decided column-wise; the dependent ones by the sequential pass."""
    column_wise = sequential = 0
    for param in SCENARIOS:
        scenario = param.values[0]
        assert isinstance(scenario, Scenario)
        result = match_tables(
            MatchTables.from_models(scenario.orders, scenario.receipts, scenario.invoices), scenario.policy
        )
        sequential += result.sequential_documents
        column_wise += len(scenario.invoices) - result.sequential_documents
    assert column_wise >= 25, column_wise
    assert sequential >= 25, sequential


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_generated_runs_decide_as_the_reference_engine(world: World) -> None:
    _both(world.orders, world.receipts, world.invoices)


def test_clean_independent_invoices_are_decided_column_wise_with_their_holds() -> None:
    orders = [
        order("PO-1", [(1, "10", "10.00", "20", True)]),
        order("PO-2", [(1, "10", "10.00", "20", True)]),
        order("PO-3", [(1, "4", "2.50", "20", False)], vat=SUPPLIER_B),
    ]
    receipts = [receipt("PO-1", 1, "10"), receipt("PO-2", 1, "5")]
    invoices = [
        invoice("INV-1", po="PO-1"),
        invoice("INV-2", po="PO-2", lines=[("1", "8", "10.00", "20")]),  # over received
        invoice("INV-3", po="PO-3", lines=[("1", "4", "2.60", "20")], vat=SUPPLIER_B),  # over tolerance
    ]
    result = _both(orders, receipts, invoices)
    assert result.sequential_documents == 0
    assert [KINDS[k] for k in result.decision] == ["approve", "hold", "hold"]
    assert result.core_counts["QTY_OVER_RECEIVED"] == 1
    assert result.core_counts["PRICE_OVER_TOLERANCE"] == 1


def test_amounts_beyond_the_integer_columns_go_to_the_sequential_pass() -> None:
    """A sixth decimal place, or a quantity of billions, cannot be held exactly as
    10^-4 integers: those documents are decided (identically) by the sequential pass."""
    orders = [
        order("PO-1", [(1, "1000", "0.123456", "20", False)]),
        order("PO-2", [(1, "5000000000", "1.00", "20", False)]),
        order("PO-3", [(1, "10", "10.00", "20", False)], vat=SUPPLIER_B),
    ]
    invoices = [
        invoice("INV-1", po="PO-1", lines=[("1", "1000", "0.123457", "20")]),
        invoice("INV-2", po="PO-2", lines=[("1", "5000000000", "1.00", "20")]),
        # Another supplier: its possible-duplicate buckets are known, so column-wise.
        invoice("INV-3", po="PO-3", lines=[("1", "10", "10.00", "20")], vat=SUPPLIER_B),
    ]
    result = _both(orders, [], invoices)
    assert result.sequential_documents == 2


def test_supplier_overrides_and_shared_orders_decide_as_the_oracle() -> None:
    override = {"price_tolerance_pct": "10", "price_tolerance_abs": "50"}
    policy = MatchingPolicy(suppliers={SUPPLIER_B: override})
    orders = [
        order("PO-1", [(1, "10", "10.00", "20", False)]),
        order("PO-2", [(1, "10", "10.00", "20", False)], vat=SUPPLIER_B),
    ]
    invoices = [
        # Two invoices on PO-1: the first held, so the second may bill the full quantity.
        invoice("INV-1", dt.date(2025, 5, 1), po="PO-1", lines=[("1", "10", "11.00", "20")]),
        invoice("INV-2", dt.date(2025, 5, 2), po="PO-1", lines=[("1", "10", "10.00", "20")]),
        invoice("INV-3", po="PO-2", lines=[("1", "10", "10.80", "20")], vat=SUPPLIER_B),
    ]
    result = _both(orders, [], invoices, policy)
    assert [KINDS[k] for k in result.decision] == ["hold", "approve", "approve"]
    assert result.sequential_documents == 3


def test_bulk_columns_decide_as_models_do() -> None:
    """``from_columns`` (no model per row) gives the decisions ``from_models`` gives, on
    the benchmark's generated region (2,000 invoice lines with every core exception)."""
    data = generate(2_000, seed=11)
    orders, receipts, invoices = to_models(data)
    expected = [d.to_dict() for d in match_invoices(orders, receipts, invoices)]
    tables = MatchTables.from_columns(**columns_of(data))
    result = match_tables(tables)
    assert [d.to_dict() for d in result.decisions()] == expected
    assert sum(result.core_counts.values()) > 0


def columns_of(data: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """The benchmark's generated columns in :meth:`MatchTables.from_columns` form."""
    from benchmarks.bench_matching import match_columns

    return match_columns(data)


def test_from_columns_names_a_missing_or_ragged_column() -> None:
    columns = columns_of(generate(40))
    del columns["invoice_lines"]["vat_category"]
    with pytest.raises(ValueError, match=r"invoice_lines: missing column\(s\) \['vat_category'\]"):
        MatchTables.from_columns(**columns)
    columns = columns_of(generate(40))
    columns["documents"]["tax"].append(D(0))
    with pytest.raises(ValueError, match="documents: columns differ in length"):
        MatchTables.from_columns(**columns)


def test_a_po_number_on_two_orders_is_an_error_as_in_the_reference_engine() -> None:
    orders = [order("PO-1"), order("PO-2"), order("PO-1")]
    with pytest.raises(ValueError, match="purchase order PO-1 appears more than once"):
        MatchTables.from_models(orders, [], [invoice()])
    with pytest.raises(ValueError, match="purchase order PO-1 appears more than once"):
        match_invoices(orders, [], [invoice()])


def test_the_same_invoice_object_twice_is_two_documents_as_in_the_reference_engine() -> None:
    first = invoice("INV-1")
    result = _both([order()], [receipt()], [first, first, invoice("INV-2", po="PO-1")])
    assert sorted(KINDS[k] for k in result.decision) == ["approve", "hold", "reject"]


def test_financial_years_column_wise_equal_the_date_by_date_rule() -> None:
    import numpy as np

    from bots.domain.match_tables import _financial_years
    from bots.domain.matching import financial_year

    days = [dt.date(1899, 3, 31) + dt.timedelta(days=k) for k in range(0, 80_000, 7)]
    days += [dt.date(2025, 3, 31), dt.date(2025, 4, 1), dt.date(1969, 12, 31), dt.date(1970, 1, 1)]
    ordinals = np.array([d.toordinal() for d in days], dtype=np.int64)
    assert _financial_years(ordinals).tolist() == [financial_year(d) for d in days]


def test_match_documents_is_match_invoices_on_every_named_scenario() -> None:
    """What procbots match, the flow and the inbox bot call returns the oracle's list."""
    from bots.domain.match_tables import match_documents

    for param in SCENARIOS:
        scenario = param.values[0]
        assert isinstance(scenario, Scenario)
        args = (scenario.orders, scenario.receipts, scenario.invoices, scenario.policy)
        assert match_documents(*args) == match_invoices(*args)
