"""Run the product engine beside the oracle and insist they agree, so a test written
about the rules states them for both engines at once."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest

from bots.domain.match_tables import match_documents
from bots.domain.matching import Decision, MatchingPolicy
from bots.domain.models import GoodsReceipt, Invoice, PurchaseOrder, ReceiptLine
from tests.oracle.matching import match_invoices


def match_both(
    orders: Iterable[PurchaseOrder],
    receipts: Iterable[GoodsReceipt | ReceiptLine],
    invoices: Iterable[Invoice],
    policy: MatchingPolicy | None = None,
) -> list[Decision]:
    """The oracle's decisions, after asserting that the product engine
    (:func:`bots.domain.match_tables.match_documents`) gives the very same list,
    messages and order included, or raises the same error."""
    orders, receipts, invoices = list(orders), list(receipts), list(invoices)
    try:
        expected = match_invoices(orders, receipts, invoices, policy)
    except ValueError as error:
        refusal = str(error)
        with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
            match_documents(orders, receipts, invoices, policy)
        raise
    found = match_documents(orders, receipts, invoices, policy)
    assert [d.to_dict() for d in found] == [d.to_dict() for d in expected]
    return expected
