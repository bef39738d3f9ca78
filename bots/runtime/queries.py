"""The ledger's reading queries: items by id, key, state and bot; counts; history; runs' items.

:class:`LedgerQueries` is a mixin of :class:`bots.runtime.ledger.Ledger` (which provides
the engine and the row helpers); call these as ``ledger.list(...)``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.engine import RowMapping

from bots.runtime.schema import ItemState, Transition, UTCDateTime, WorkItem, item_transitions, work_items
from bots.runtime.statements import ITEM_BY_KEY

__all__ = ["LedgerQueries"]


class LedgerQueries:
    """Reading the ledger (a mixin of :class:`~bots.runtime.ledger.Ledger`)."""

    engine: Engine
    _row: Callable[..., RowMapping]
    _item: Callable[[Mapping[Any, Any]], WorkItem]

    def retried_since(self, bot: str, since: datetime) -> builtins.list[WorkItem]:
        """Items of ``bot`` an operator retried (or re-filed) that were claimed at or after ``since``.

        A run passes its start time to list, in its report, the retried items it
        processed, whatever input it was started for.

        Example:
            >>> ledger.retried_since("purchase_orders", run_started_at)  # doctest: +SKIP
            [WorkItem(id=7, idempotency_key='REQ-0007', state=<ItemState.DONE: 'done'>, ...)]
        """
        claimed = (
            select(item_transitions.c.item_id)
            .where(
                item_transitions.c.event == "claimed",
                item_transitions.c.at >= bindparam("w_since", type_=UTCDateTime),
                item_transitions.c.at >= work_items.c.retry_requested_at,
                item_transitions.c.item_id == work_items.c.id,
            )
            .exists()
        )
        query = (
            select(work_items)
            .where(work_items.c.bot == bot, work_items.c.retry_requested_at.is_not(None), claimed)
            .order_by(work_items.c.retry_requested_at, work_items.c.id)
        )
        with self.engine.connect() as conn:
            return [self._item(row) for row in conn.execute(query, {"w_since": since}).mappings()]

    def left_failed_by_run(self, bot: str, run_id_suffix: str) -> builtins.list[WorkItem]:
        """Items of ``bot`` left ``failed`` or ``needs_review`` by a run whose id ends in ``-<suffix>``.

        That is, their last claim was by such a run (see :meth:`claim`'s ``run_id``). The
        run ids of one Prefect flow run share its suffix (:func:`bots.registry.new_run_id`),
        so a retried flow run finds what its earlier attempts left failed. Business
        exceptions are not among them: their data needs a person first.

        Example:
            >>> ledger.left_failed_by_run("purchase_orders", "1a2b3c4d")  # doctest: +SKIP
            [WorkItem(id=7, idempotency_key='REQ-0007', state=<ItemState.FAILED: 'failed'>, ...)]
        """
        last_claim = (
            select(item_transitions.c.detail)
            .where(item_transitions.c.item_id == work_items.c.id, item_transitions.c.event == "claimed")
            .order_by(item_transitions.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = (
            select(work_items)
            .where(
                work_items.c.bot == bot,
                work_items.c.state.in_([ItemState.FAILED.value, ItemState.NEEDS_REVIEW.value]),
                last_claim.like(bindparam("w_pattern")),
            )
            .order_by(work_items.c.id)
        )
        if not run_id_suffix.isalnum():  # no LIKE wildcards: a suffix is letters and digits
            raise ValueError(f"run id suffix {run_id_suffix!r}: expected letters and digits only")
        pattern = f"run %-{run_id_suffix}"
        with self.engine.connect() as conn:
            return [self._item(row) for row in conn.execute(query, {"w_pattern": pattern}).mappings()]

    def get(self, item_id: int) -> WorkItem:
        """The item with this id (``LookupError`` when there is none)."""
        with self.engine.connect() as conn:
            return self._item(self._row(conn, item_id))

    def find(self, bot: str, idempotency_key: str) -> WorkItem | None:
        """The item of ``bot`` with this idempotency key, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(ITEM_BY_KEY, {"w_bot": bot, "w_key": idempotency_key}).mappings().first()
            return self._item(row) if row is not None else None

    def find_many(self, bot: str, idempotency_keys: Iterable[str]) -> dict[str, WorkItem]:
        """The items of ``bot`` with these idempotency keys, by key in the order given.

        Keys with no item are left out; a key given twice appears once.

        One query per 500 keys (under every database's bound-parameter limit), so
        reading back a batch filed with :meth:`add_many` costs a few queries, not
        one per item.

        Example:
            >>> ledger.add_many("invoice_matching", [("GB1/INV1", {}), ("GB1/INV2", {})])  # doctest: +SKIP
            >>> ledger.find_many("invoice_matching", ["GB1/INV1", "GB1/INV9"])  # doctest: +SKIP
            {'GB1/INV1': WorkItem(...)}
        """
        keys = builtins.list(dict.fromkeys(idempotency_keys))
        found: dict[str, WorkItem] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = select(work_items).where(
                    work_items.c.bot == bot, work_items.c.idempotency_key.in_(chunk)
                )
                for row in conn.execute(query).mappings():
                    found[row["idempotency_key"]] = self._item(row)
        return {key: found[key] for key in keys if key in found}

    def list(
        self,
        state: ItemState | str | None = None,
        bot: str | None = None,
        limit: int | None = None,
        *,
        states: Iterable[ItemState | str] | None = None,
        updated_since: datetime | None = None,
    ) -> builtins.list[WorkItem]:
        """Items, oldest first, optionally of one state (or any of ``states``), bot, changed since."""
        query = select(work_items).order_by(work_items.c.id)
        if state is not None:
            query = query.where(work_items.c.state == ItemState(state).value)
        if states is not None:
            query = query.where(work_items.c.state.in_([ItemState(s).value for s in states]))
        if updated_since is not None:
            query = query.where(work_items.c.updated_at >= updated_since)
        if bot is not None:
            query = query.where(work_items.c.bot == bot)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [self._item(row) for row in conn.execute(query).mappings()]

    def counts(self, bot: str | None = None) -> dict[str, int]:
        """How many items are in each state (every state listed, zeros included)."""
        query = select(work_items.c.state, func.count()).group_by(work_items.c.state)
        if bot is not None:
            query = query.where(work_items.c.bot == bot)
        result = {s.value: 0 for s in ItemState}
        with self.engine.connect() as conn:
            for state, count in conn.execute(query):
                result[state] = int(count)
        return result

    def history(self, item_id: int) -> builtins.list[Transition]:
        """Every transition, checkpoint and evidence record of an item, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(item_transitions)
                .where(item_transitions.c.item_id == item_id)
                .order_by(item_transitions.c.id)
            ).mappings()
            return [Transition.model_validate(dict(row)) for row in rows]
