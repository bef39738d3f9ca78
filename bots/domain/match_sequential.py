"""The sequential rules of the product matching engine: the documents whose decision
depends on other documents, decided one by one in the fixed processing order.

:func:`bots.domain.match_tables.match_tables` decides every independent document
column-wise and hands the rest here (credit notes, documents sharing a duplicate key,
documents on a PO whose cumulative quantities matter, and the rare documents the
integer columns cannot hold exactly; ~230 of 333k documents at a million lines). They
are closed under shared state, so deciding them apart from the others changes nothing.

What is sequential here: approved-only cumulative quantities per PO line against
ordered and received, credit notes reducing invoiced quantities
(``CREDIT_EXCEEDS_INVOICED``, ``CREDIT_NOTE_NO_REFERENCE``, the PO taken from the
billing reference), exact duplicates in the same UK financial year
(``DUPLICATE_INVOICE``), possible duplicates (``POSSIBLE_DUPLICATE``), and full credit
reversals (an invoice reversed in full is passed over; a rebill gets the
``REBILL_AFTER_CREDIT`` note). Each document's own rules (PO header, line on PO, line
arithmetic, VAT, price, totals) are applied on its model in the same pass, with the
sentences of :mod:`bots.domain.match_messages`.

Pure domain logic, no I/O. Public entry: :func:`decide_in_order`; :func:`content_key`
orders documents whose coarse keys tie.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bots.domain import match_messages
from bots.domain.matching import (
    REJECT_CODES,
    ZERO_CATEGORIES,
    Decision,
    DecisionKind,
    MatchingPolicy,
    Reason,
    financial_year,
    normalise_invoice_number,
    normalise_vat,
    one_edit_apart,
)
from bots.domain.models import GoodsReceipt, Invoice, InvoiceLine, POLine, PurchaseOrder, ReceiptLine

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_PENNY = Decimal("0.01")
_TENTH = Decimal("0.1")
_ZERO_CATEGORIES = ZERO_CATEGORIES


def _deletion_keys(value: str) -> set[str]:
    """The string and every string one deletion away: two strings one edit apart
    always share at least one key, so candidates are found by hashing."""
    keys = {value}
    keys.update(value[:i] + value[i + 1 :] for i in range(len(value)))
    return keys


# --- message formatting: the sentences' amounts, dates and years (bots.domain.match_messages)

_money = match_messages.money
_unit_price = match_messages.unit_price
_number = match_messages.number


# --- the engine ----------------------------------------------------------------------


@dataclass(slots=True)
class _SimilarBucket:
    """Earlier documents of one supplier with one gross amount (possible duplicates)."""

    last_date: dt.date
    last_number: str
    numbers: dict[str, tuple[str, dt.date]] = field(default_factory=dict)
    index: dict[str, list[str]] | None = None

    def similar(self, key: str) -> tuple[str, dt.date] | None:
        if self.index is None:
            for other, seen in self.numbers.items():
                if one_edit_apart(key, other):
                    return seen
            return None
        for probe in _deletion_keys(key):
            for other in self.index.get(probe, ()):
                if one_edit_apart(key, other):
                    return self.numbers[other]
        return None

    def add(self, key: str, number: str, day: dt.date) -> None:
        self.last_date, self.last_number = day, number
        if key in self.numbers:
            return
        self.numbers[key] = (number, day)
        if self.index is not None:
            for probe in _deletion_keys(key):
                self.index.setdefault(probe, []).append(key)
        elif len(self.numbers) > 16:
            # Linear scans stay cheap for the usual handful; index a busy bucket
            # (a supplier billing one fixed amount often) so it never goes quadratic.
            self.index = {}
            for other in self.numbers:
                for probe in _deletion_keys(other):
                    self.index.setdefault(probe, []).append(other)


def _line_label(line: InvoiceLine, position: int) -> int:
    line_id = line.line_id
    return int(line_id) if line_id.isdigit() else position


def _order_line_no(reference: str | None) -> int | None:
    if reference is None:
        return None
    reference = reference.strip()
    if reference.isdigit():
        return int(reference)
    # Some suppliers quote "PO-123/2" or "2.0"; the PO line number is the last digits.
    match = re.search(r"(\d+)(?:\.0+)?$", reference)
    return int(match.group(1)) if match else None


class _Engine:
    """Indexes of orders and receipts plus the running state of one matching run."""

    def __init__(
        self,
        orders: Iterable[PurchaseOrder],
        receipts: Iterable[GoodsReceipt | ReceiptLine],
        policy: MatchingPolicy,
    ) -> None:
        self.policy = policy
        self.headers: dict[str, tuple[str, str, str | None]] = {}
        self.lines: dict[tuple[str, int], POLine] = {}
        self.orders: dict[str, PurchaseOrder] = {}
        vat_keys: dict[str | None, str] = {}
        for order in orders:
            po = order.po_number
            if not po:
                continue
            if po in self.headers:
                raise ValueError(f"purchase order {po} appears more than once in the orders")
            self.orders[po] = order
            vat = order.supplier_vat
            vat_key = vat_keys.get(vat)
            if vat_key is None:
                vat_key = vat_keys[vat] = normalise_vat(vat)
            self.headers[po] = (vat_key, order.currency, vat)
            lines = self.lines
            for line in order.lines:
                lines[(po, line.line_no)] = line
        received: defaultdict[tuple[str, int], Decimal] = defaultdict(Decimal)
        for receipt in receipts:
            if isinstance(receipt, GoodsReceipt):
                for rline in receipt.lines:
                    received[(rline.po_number, rline.line_no)] += rline.quantity_received
            else:
                received[(receipt.po_number, receipt.line_no)] += receipt.quantity_received
        self.received: dict[tuple[str, int], Decimal] = dict(received)
        # Quantity invoiced so far per PO line by approved documents.
        self.invoiced: dict[tuple[str, int], Decimal] = {}
        self.exact_seen: dict[tuple[str, str, str, int], tuple[str, dt.date]] = {}
        self.similar: dict[tuple[str, str, Decimal], _SimilarBucket | tuple[dt.date, str, str]] = {}
        # Approved or held invoices by (supplier, normalised number): credit notes
        # find their PO and the amount they may credit through the billing reference.
        self.known_invoices: dict[tuple[str, str], tuple[str | None, Decimal, str]] = {}
        self.policies: dict[str, tuple[MatchingPolicy, frozenset[Decimal]]] = {}
        # Full reversals: credits approved per invoice, the invoices reversed in full and
        # not yet billed again (number, date, credit note), and every reversed invoice
        # (supplier, number key, date), which the possible-duplicate rule passes over.
        self.credited: dict[tuple[str, str], Decimal] = {}
        self.invoice_dates: dict[tuple[str, str], dt.date] = {}
        self.reversed: dict[tuple[str, str], tuple[str, dt.date, str]] = {}
        self.cancelled: set[tuple[str, str, dt.date]] = set()
        self.item_index: dict[str, dict[str, int]] = {}

    def policy_for(self, vat_key: str) -> tuple[MatchingPolicy, frozenset[Decimal]]:
        """A supplier's policy and its accepted VAT rates as a set (Decimal hashes by value)."""
        found = self.policies.get(vat_key)
        if found is None:
            policy = self.policy.for_supplier(vat_key)
            found = self.policies[vat_key] = (policy, frozenset(policy.vat_rates))
        return found

    def line_by_item(self, po: str, line: InvoiceLine) -> int | None:
        """The PO line a reference-less invoice line bills, by item code (GTIN or
        supplier's code), or the only line of a one-line order."""
        index = self.item_index.get(po)
        if index is None:
            order = self.orders[po]
            counts = Counter(pl.item_code for pl in order.lines if pl.item_code)
            index = {
                pl.item_code: pl.line_no for pl in order.lines if pl.item_code and counts[pl.item_code] == 1
            }
            if len(order.lines) == 1:
                index[""] = order.lines[0].line_no
            self.item_index[po] = index
        for code in (line.gtin, line.seller_item_id):
            if code and code in index:
                return index[code]
        return index.get("")

    def decide(self, doc: Invoice, vat_key: str, number_key: str) -> Decision:
        """Decide one document; commits its quantities when it is approved."""
        policy, rate_set = self.policy_for(vat_key)
        currency = doc.currency
        is_credit = doc.document_type == "credit_note"
        kind = "credit note" if is_credit else "invoice"
        reasons: list[Reason] = []
        notes: list[Reason] = []

        # The purchase order (a credit note may name it only through the invoice it credits).
        po = doc.po_number
        credited: tuple[str | None, Decimal, str] | None = None
        if is_credit:
            po, credited = self._credit_reference(doc, vat_key, po, reasons, notes)
        check_lines = False
        if not po:
            reasons.append(Reason("NO_PO", None, match_messages.no_po(kind)))
        elif po not in self.headers:
            reasons.append(Reason("PO_NOT_FOUND", None, match_messages.po_not_found(po)))
        else:
            po_vat_key, po_currency, po_vat = self.headers[po]
            if po_vat_key and po_vat_key != vat_key:
                reasons.append(
                    Reason(
                        "SUPPLIER_MISMATCH",
                        None,
                        match_messages.supplier_mismatch(doc.supplier.vat_number, po, po_vat),
                    )
                )
            elif po_currency != currency:
                reasons.append(
                    Reason(
                        "CURRENCY_MISMATCH",
                        None,
                        match_messages.currency_mismatch(kind, currency, po, po_currency),
                    )
                )
            elif not doc.lines:
                reasons.append(Reason("LINE_NOT_ON_PO", None, match_messages.no_lines(kind, po)))
            else:
                check_lines = True

        # One pass over the lines: arithmetic, VAT, and (when the PO fits) the 2/3-way
        # match. This is the hot loop of a million-line run: comparisons only, messages
        # are built by helpers on the rare exception path.
        po_lines = self.lines
        received_by_line = self.received
        invoiced = self.invoiced
        pending: dict[tuple[str, int], Decimal] = {}
        qty_factor = 1 + policy.qty_tolerance_pct / _HUNDRED
        header_tol = policy.header_tolerance
        net_sum = _ZERO
        groups: dict[Decimal, Decimal] = {}
        for position, line in enumerate(doc.lines, 1):
            qty = line.quantity
            price = line.unit_price
            net = line.net_amount
            rate = line.vat_rate
            net_sum += net
            groups[rate] = groups.get(rate, _ZERO) + net
            if net != qty * price:
                self._line_arithmetic(line, position, currency, header_tol, reasons, notes)
            if rate not in rate_set or (rate == 0) != (line.vat_category in _ZERO_CATEGORIES):
                self._vat_category(line, position, policy, reasons)
            if not check_lines:
                continue
            assert po is not None
            ref = line.order_line_reference
            key = (po, int(ref)) if ref is not None and ref.isdigit() else self._resolve_line(po, line)
            po_line = po_lines.get(key) if key is not None else None
            if po_line is None or key is None:
                self._not_on_po(line, position, po, key, reasons)
                continue
            if price != po_line.unit_price and not is_credit:
                self._price(line, position, po_line, policy, currency, reasons, notes)
            if rate != po_line.vat_rate:
                label = _line_label(line, position)
                reasons.append(
                    Reason(
                        "VAT_RATE_MISMATCH",
                        label,
                        f"Line {label}: VAT rate {_number(rate)}% differs from the PO line's "
                        f"{_number(po_line.vat_rate)}%",
                    )
                )
            before = pending.get(key)
            if before is None:
                before = invoiced.get(key, _ZERO)
            delta = -qty if is_credit else qty
            total = pending[key] = before + delta
            if delta < 0:
                if total < 0:
                    label = _line_label(line, position)
                    reasons.append(
                        Reason(
                            "CREDIT_EXCEEDS_INVOICED",
                            label,
                            match_messages.credit_exceeds_line(label, po_line.line_no, -delta, before),
                        )
                    )
                continue
            if total > po_line.quantity * qty_factor:
                self._quantity(line, position, po_line, "QTY_OVER_ORDERED", total, before, kind, reasons)
            if po_line.receipt_required:
                received = received_by_line.get(key, _ZERO)
                if received <= 0 or total > received * qty_factor:
                    code = "NOT_RECEIVED" if received <= 0 else "QTY_OVER_RECEIVED"
                    self._quantity(line, position, po_line, code, total, before, kind, reasons, received)

        # Totals and VAT per rate group.
        vat_computed = sum(
            (
                (net * rate / _HUNDRED).quantize(_PENNY, rounding=ROUND_HALF_UP)
                for rate, net in groups.items()
            ),
            _ZERO,
        )
        totals = doc.totals
        stated_net = totals.line_extension or totals.tax_exclusive
        tax, inclusive, payable = totals.tax, totals.tax_inclusive, totals.payable
        if stated_net or tax or inclusive or payable:
            # Most documents add up exactly: three comparisons, no call.
            if not (
                stated_net == net_sum
                and tax == vat_computed
                and (not inclusive or not totals.tax_exclusive or inclusive == totals.tax_exclusive + tax)
            ):
                self._check_totals(doc, net_sum, vat_computed, groups, policy, reasons, notes)
            gross = payable or inclusive or (totals.tax_exclusive or net_sum) + tax
        else:
            gross = net_sum + vat_computed
        if credited is not None and gross > credited[1]:
            reasons.append(
                Reason(
                    "CREDIT_EXCEEDS_INVOICED",
                    None,
                    match_messages.credit_exceeds_invoice(gross, credited[2], credited[1], currency),
                )
            )

        # Duplicates: an exact one is rejected whatever else is wrong with it. An invoice
        # a credit note reversed in full takes no part (a rebill after a full credit).
        fy = financial_year(doc.issue_date)
        exact_key = (vat_key, doc.document_type, number_key, fy)
        earlier = self.exact_seen.get(exact_key)
        reversal = None if is_credit else self.reversed.get((vat_key, number_key))
        if reversal is not None and (earlier is None or earlier == reversal[:2]):
            earlier = None
            notes.append(
                Reason(
                    "REBILL_AFTER_CREDIT",
                    None,
                    match_messages.rebill_after_credit(reversal[0], reversal[1], reversal[2], kind),
                )
            )
            del self.reversed[(vat_key, number_key)]
        if earlier is not None:
            duplicate = Reason(
                "DUPLICATE_INVOICE", None, match_messages.duplicate(kind, earlier[0], earlier[1], fy)
            )
            return self._decision(doc, "reject", [duplicate], notes, po, gross)
        self.exact_seen[exact_key] = (doc.invoice_number, doc.issue_date)
        self._possible_duplicate(doc, vat_key, number_key, gross, policy, kind, reasons)

        decision: DecisionKind = "hold" if reasons else "approve"
        if decision == "approve":
            invoiced.update(pending)
            if credited is not None:
                self._credit(doc, vat_key, gross)
        if not is_credit:
            if reversal is not None:
                self.known_invoices.pop((vat_key, number_key), None)
                self.credited.pop((vat_key, number_key), None)
            self.known_invoices.setdefault((vat_key, number_key), (po, gross, doc.invoice_number))
            self.invoice_dates.setdefault((vat_key, number_key), doc.issue_date)
        return self._decision(doc, decision, reasons, notes, po, gross)

    def _credit(self, doc: Invoice, vat_key: str, gross: Decimal) -> None:
        """Record an approved credit note against the invoice it references; one that
        (with the earlier ones) reverses it in full takes it out of the duplicate rules."""
        key = (vat_key, normalise_invoice_number(doc.billing_reference or ""))
        known = self.known_invoices.get(key)
        if known is None:
            return
        total = self.credited[key] = self.credited.get(key, _ZERO) + gross
        if total >= known[1]:
            day = self.invoice_dates[key]
            self.reversed[key] = (known[2], day, doc.invoice_number)
            self.cancelled.add((vat_key, key[1], day))

    # --- the exception path: message builders -------------------------------------------

    def _credit_reference(
        self, doc: Invoice, vat_key: str, po: str | None, reasons: list[Reason], notes: list[Reason]
    ) -> tuple[str | None, tuple[str | None, Decimal, str] | None]:
        reference = doc.billing_reference
        if not reference:
            reasons.append(Reason("CREDIT_NOTE_NO_REFERENCE", None, match_messages.credit_no_reference()))
            return po, None
        credited = self.known_invoices.get((vat_key, normalise_invoice_number(reference)))
        if credited is None:
            notes.append(
                Reason("CREDIT_REFERENCE_UNKNOWN", None, match_messages.credit_reference_unknown(reference))
            )
        elif not po and credited[0]:
            po = credited[0]
            notes.append(
                Reason(
                    "PO_FROM_BILLING_REFERENCE",
                    None,
                    match_messages.po_from_billing_reference(po, credited[2]),
                )
            )
        return po, credited

    def _resolve_line(self, po: str, line: InvoiceLine) -> tuple[str, int] | None:
        ref = line.order_line_reference
        line_no = _order_line_no(ref) if ref is not None else self.line_by_item(po, line)
        return (po, line_no) if line_no is not None else None

    @staticmethod
    def _not_on_po(
        line: InvoiceLine, position: int, po: str, key: tuple[str, int] | None, reasons: list[Reason]
    ) -> None:
        label = _line_label(line, position)
        ref = line.order_line_reference
        if ref is None and key is None:
            text = f"Line {label} does not say which line of purchase order {po} it bills"
        else:
            text = f"Line {label}: purchase order {po} has no line {ref if ref is not None else key}"
        reasons.append(Reason("LINE_NOT_ON_PO", label, text))

    @staticmethod
    def _line_arithmetic(
        line: InvoiceLine,
        position: int,
        currency: str,
        tolerance: Decimal,
        reasons: list[Reason],
        notes: list[Reason],
    ) -> None:
        net = line.net_amount
        expected = line.quantity * line.unit_price
        # A net below quantity × price is a line allowance (discount) in UBL, which the
        # line model does not carry; only a net above it bills more than the price
        # says, so only that can hold the invoice.
        excess = abs(net) - abs(expected)
        if -_PENNY <= excess <= _PENNY:
            return
        label = _line_label(line, position)
        text = (
            f"Line {label}: net amount {_money(net, currency)} is not quantity "
            f"{_number(line.quantity)} × {_unit_price(line.unit_price, currency)} = "
            f"{_money(expected, currency)}"
        )
        if excess > tolerance:
            text += f", {_money(excess, currency)} more (tolerance {_money(tolerance, currency)})"
            reasons.append(Reason("TOTALS_ARITHMETIC", label, text))
        elif excess > 0:
            notes.append(Reason("LINE_ROUNDING", label, text + "; within tolerance, accepted"))
        else:
            notes.append(Reason("LINE_DISCOUNT", label, text + "; a line discount, accepted"))

    @staticmethod
    def _vat_category(
        line: InvoiceLine, position: int, policy: MatchingPolicy, reasons: list[Reason]
    ) -> None:
        label = _line_label(line, position)
        rate = line.vat_rate
        if rate not in policy.vat_rates:
            accepted = ", ".join(_number(r) + "%" for r in policy.vat_rates)
            text = (
                f"Line {label}: VAT rate {_number(rate)}% is not a UK VAT rate "
                f"this policy accepts ({accepted})"
            )
        else:
            text = f"Line {label}: VAT category {line.vat_category} does not fit VAT rate {_number(rate)}%"
        reasons.append(Reason("VAT_RATE_MISMATCH", label, text))

    @staticmethod
    def _price(
        line: InvoiceLine,
        position: int,
        po_line: POLine,
        policy: MatchingPolicy,
        currency: str,
        reasons: list[Reason],
        notes: list[Reason],
    ) -> None:
        price, po_price = line.unit_price, po_line.unit_price
        label = _line_label(line, position)
        where = f"Line {label}" if label == po_line.line_no else f"Line {label} (PO line {po_line.line_no})"
        if price < po_price:
            notes.append(
                Reason(
                    "PRICE_UNDER_PO",
                    label,
                    f"{where}: unit price {_unit_price(price, currency)} is below the PO price "
                    f"{_unit_price(po_price, currency)}; accepted",
                )
            )
            return
        pct, abs_tol = policy.price_tolerance_pct, policy.price_tolerance_abs
        over = price - po_price
        # The stricter of the two: a percentage alone lets big-ticket items drift by
        # pounds, an amount alone lets cheap consumables drift by half their price.
        tolerance = min(po_price * pct / _HUNDRED, abs_tol)
        share = (
            f"{(over * _HUNDRED / po_price).quantize(_TENTH, rounding=ROUND_HALF_UP)}% over"
            if po_price
            else f"{_unit_price(over, currency)} over"
        )
        text = (
            f"{where}: unit price {_unit_price(price, currency)} is {share} the PO price "
            f"{_unit_price(po_price, currency)} (tolerance {_number(pct)}% / {_money(abs_tol, currency)})"
        )
        if over > tolerance:
            reasons.append(Reason("PRICE_OVER_TOLERANCE", label, text))
        else:
            notes.append(Reason("PRICE_WITHIN_TOLERANCE", label, text + "; within tolerance, accepted"))

    @staticmethod
    def _quantity(
        line: InvoiceLine,
        position: int,
        po_line: POLine,
        code: str,
        total: Decimal,
        before: Decimal,
        kind: str,
        reasons: list[Reason],
        received: Decimal = _ZERO,
    ) -> None:
        label = _line_label(line, position)
        already = f" (already invoiced {_number(before)})" if before else ""
        if code == "QTY_OVER_ORDERED":
            text = (
                f"Line {label}: {kind}d quantity would reach {_number(total)} on PO line {po_line.line_no} "
                f"but only {_number(po_line.quantity)} was ordered{already}"
            )
        elif code == "NOT_RECEIVED":
            text = (
                f"Line {label}: no goods receipt is recorded for PO line {po_line.line_no}; "
                "ask the requester to receipt the goods"
            )
        else:
            text = (
                f"Line {label}: invoiced quantity would reach {_number(total)} on PO line {po_line.line_no} "
                f"but only {_number(received)} has been received{already}"
            )
        reasons.append(Reason(code, label, text))

    def _possible_duplicate(
        self,
        doc: Invoice,
        vat_key: str,
        number_key: str,
        gross: Decimal,
        policy: MatchingPolicy,
        kind: str,
        reasons: list[Reason],
    ) -> None:
        bucket_key = (vat_key, doc.document_type, gross)
        found = self.similar.get(bucket_key)
        if found is None:
            # Most amounts occur once: a tuple, upgraded to a bucket on a second sighting.
            self.similar[bucket_key] = (doc.issue_date, doc.invoice_number, number_key)
            return
        if isinstance(found, tuple):
            bucket = self.similar[bucket_key] = _SimilarBucket(found[0], found[1])
            bucket.add(found[2], found[1], found[0])
        else:
            bucket = found
        currency = doc.currency
        days = (doc.issue_date - bucket.last_date).days
        last_cancelled = (
            vat_key,
            normalise_invoice_number(bucket.last_number),
            bucket.last_date,
        ) in self.cancelled
        if days <= policy.duplicate_days and not last_cancelled:
            reasons.append(
                Reason(
                    "POSSIBLE_DUPLICATE",
                    None,
                    match_messages.possible_duplicate_days(
                        kind, bucket.last_number, bucket.last_date, gross, currency, days
                    ),
                )
            )
        elif policy.similar_numbers:
            similar = bucket.similar(number_key)
            if similar is not None and (
                (vat_key, normalise_invoice_number(similar[0]), similar[1]) not in self.cancelled
            ):
                reasons.append(
                    Reason(
                        "POSSIBLE_DUPLICATE",
                        None,
                        match_messages.possible_duplicate_number(
                            kind, similar[0], similar[1], gross, currency
                        ),
                    )
                )
        bucket.add(number_key, doc.invoice_number, doc.issue_date)

    def _check_totals(
        self,
        doc: Invoice,
        net_sum: Decimal,
        vat_computed: Decimal,
        groups: Mapping[Decimal, Decimal],
        policy: MatchingPolicy,
        reasons: list[Reason],
        notes: list[Reason],
    ) -> None:
        totals = doc.totals
        currency = doc.currency
        tolerance = policy.header_tolerance
        stated_net = totals.line_extension or totals.tax_exclusive
        if stated_net:
            gap = stated_net - net_sum
            if gap:
                text = (
                    f"Sum of lines {_money(net_sum, currency)} differs from the stated net total "
                    f"{_money(stated_net, currency)} by {_money(abs(gap), currency)}"
                )
                if abs(gap) > tolerance:
                    reasons.append(
                        Reason("TOTALS_ARITHMETIC", None, text + f" (tolerance {_money(tolerance)})")
                    )
                else:
                    notes.append(Reason("TOTALS_ROUNDING", None, text + "; within tolerance, accepted"))
        # Tax on the document-level allowances and charges is not known per rate; only
        # check the VAT when there are none, or the comparison would be noise.
        if not totals.allowances and not totals.charges:
            gap = totals.tax - vat_computed
            if gap:
                rates = ", ".join(
                    f"{_number(rate)}% on {_money(net, currency)}"
                    for rate, net in sorted(groups.items(), reverse=True)
                )
                text = (
                    f"Stated VAT {_money(totals.tax, currency)} differs from VAT recomputed per rate "
                    f"({rates}) = {_money(vat_computed, currency)} by {_money(abs(gap), currency)}"
                )
                if abs(gap) > policy.vat_tolerance:
                    reasons.append(
                        Reason("VAT_ARITHMETIC", None, text + f" (tolerance {_money(policy.vat_tolerance)})")
                    )
                else:
                    notes.append(Reason("VAT_ROUNDING", None, text + "; within tolerance, accepted"))
        if totals.tax_inclusive and totals.tax_exclusive:
            gap = totals.tax_inclusive - totals.tax_exclusive - totals.tax
            if abs(gap) > tolerance:
                reasons.append(
                    Reason(
                        "TOTALS_ARITHMETIC",
                        None,
                        f"Gross total {_money(totals.tax_inclusive, currency)} is not net "
                        f"{_money(totals.tax_exclusive, currency)} plus VAT {_money(totals.tax, currency)}",
                    )
                )

    @staticmethod
    def _decision(
        doc: Invoice,
        decision: DecisionKind,
        reasons: list[Reason],
        notes: list[Reason],
        po: str | None,
        gross: Decimal,
    ) -> Decision:
        if any(reason.code in REJECT_CODES for reason in reasons):
            decision = "reject"
        return Decision(
            invoice_number=doc.invoice_number,
            supplier_vat=doc.supplier.vat_number,
            document_type=doc.document_type,
            decision=decision,
            reasons=tuple(reasons),
            po_number=po,
            gross_amount=gross.quantize(_PENNY, rounding=ROUND_HALF_UP),
            notes=tuple(notes),
            issue_date=doc.issue_date,
            currency=doc.currency,
            source=doc.source,
        )


def content_key(doc: Invoice) -> tuple[Any, ...]:
    """A full content key, used only to order documents whose coarse keys tie."""
    return (
        doc.currency,
        doc.billing_reference or "",
        tuple(doc.totals.model_dump().values()),
        tuple(
            (
                ln.line_id,
                ln.order_line_reference or "",
                ln.quantity,
                ln.unit_price,
                ln.net_amount,
                ln.vat_rate,
            )
            for ln in doc.lines
        ),
        doc.supplier.vat_number or "",
        doc.source or "",
    )


def decide_in_order(
    orders: Iterable[PurchaseOrder],
    receipts: Iterable[GoodsReceipt | ReceiptLine],
    invoices: Iterable[Invoice],
    policy: MatchingPolicy | None,
) -> list[tuple[Invoice, Decision]]:
    """Decide ``invoices`` one by one in the fixed processing order (issue date,
    normalised supplier VAT, normalised invoice number, then the raw number and
    content); each approved document commits its quantities before the next.

    Returns:
        ``(document, decision)`` pairs in processing order.

    Raises:
        ValueError: a PO number appears on more than one order.
    """
    engine = _Engine(orders, receipts, policy or MatchingPolicy())
    vat_keys: dict[str | None, str] = {}
    keyed: list[tuple[tuple[Any, ...], str, str, Invoice]] = []
    for doc in invoices:
        vat = doc.supplier.vat_number
        vat_key = vat_keys.get(vat)
        if vat_key is None:
            vat_key = vat_keys[vat] = normalise_vat(vat)
        number_key = normalise_invoice_number(doc.invoice_number)
        coarse = (
            doc.issue_date,
            vat_key,
            number_key,
            doc.invoice_number,
            doc.document_type,
            doc.po_number or "",
            doc.totals.payable,
            len(doc.lines),
        )
        keyed.append((coarse, vat_key, number_key, doc))
    keyed.sort(key=lambda item: item[0])
    _break_ties(keyed)
    return [(doc, engine.decide(doc, vat_key, number_key)) for _, vat_key, number_key, doc in keyed]


def _break_ties(keyed: list[tuple[tuple[Any, ...], str, str, Invoice]]) -> None:
    """Order runs of equal coarse keys by full content (rare: near-identical documents)."""
    start = 0
    count = len(keyed)
    while start < count:
        end = start + 1
        coarse = keyed[start][0]
        while end < count and keyed[end][0] == coarse:
            end += 1
        if end - start > 1:
            keyed[start:end] = sorted(keyed[start:end], key=lambda item: content_key(item[3]))
        start = end


__all__ = ["content_key", "decide_in_order"]
