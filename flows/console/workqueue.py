"""The console's one door to the ledger: read the queue, and a person's actions on an item.

Every call the console makes on the work-item ledger goes through
:class:`WorkQueue`, so the pages never touch the database. Actions name the
person (:class:`Operator`) and their reason; each is one audit record
(``operator.retry``, ``operator.release``, ``operator.resolve``,
``operator.replace_payload``) with the person's sign-in name and full name, next to
the ledger's own ``workitem.*`` record of the state change.

Example:
    >>> queue = WorkQueue(Ledger.from_settings())  # doctest: +SKIP
    >>> queue.retry(42, Operator("jsmith", "Jane Smith"), "supplier fixed its VAT number")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, insert, select, update

from bots.runtime.ledger import ItemState, Ledger, Transition, WorkItem, item_transitions, work_items
from connectors.audit import audit_event

__all__ = [
    "ACTIONABLE_STATES",
    "PAYLOAD_MODELS",
    "Operator",
    "QueueRow",
    "WorkQueue",
    "payload_model",
]

#: The payload model of each bot (``module:Class``), to check a corrected payload before it is stored.
PAYLOAD_MODELS = {
    "purchase_orders": "bots.purchase_orders:Requisition",
    "invoice_matching": "bots.invoices:InvoiceTask",
    "contract_uploads": "bots.contracts:ContractJob",
}
#: States in which a person may retry, resolve or replace an item's data.
ACTIONABLE_STATES = frozenset({ItemState.BUSINESS_EXCEPTION, ItemState.FAILED, ItemState.NEEDS_REVIEW})


def payload_model(bot: str) -> type[BaseModel] | None:
    """The pydantic model of ``bot``'s payload, or ``None`` when procbots does not know it."""
    target = PAYLOAD_MODELS.get(bot)
    if target is None:
        return None
    module, name = target.split(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), name)
    return model


@dataclass(frozen=True)
class Operator:
    """The person acting: sign-in name and full name (both go to the audit log)."""

    username: str
    name: str


@dataclass(frozen=True)
class QueueRow:
    """How many items of a bot are in one state with one reason code."""

    bot: str
    state: str
    reason_code: str | None
    count: int


class WorkQueue:
    """Reads and actions on the ledger, for people."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # -- reading ------------------------------------------------------------

    def summary(self, bot: str | None = None) -> list[QueueRow]:
        """Item counts by bot, state and reason code."""
        query = select(work_items.c.bot, work_items.c.state, work_items.c.reason_code, func.count()).group_by(
            work_items.c.bot, work_items.c.state, work_items.c.reason_code
        )
        if bot is not None:
            query = query.where(work_items.c.bot == bot)
        with self.ledger.engine.connect() as conn:
            rows = [QueueRow(b, s, r, int(n)) for b, s, r, n in conn.execute(query)]
        return sorted(
            rows, key=lambda r: (r.bot, list(ItemState).index(ItemState(r.state)), r.reason_code or "")
        )

    def items(
        self, bot: str, state: str | None = None, reason_code: str | None = None, limit: int = 200
    ) -> list[WorkItem]:
        """A bot's items, newest first, optionally of one state and reason code."""
        query = select(work_items.c.id).where(work_items.c.bot == bot)
        if state:
            query = query.where(work_items.c.state == ItemState(state).value)
        if reason_code:
            query = query.where(work_items.c.reason_code == reason_code)
        with self.ledger.engine.connect() as conn:
            ids = list(conn.execute(query.order_by(work_items.c.id.desc()).limit(limit)).scalars())
        return [self.ledger.get(item_id) for item_id in ids]

    def item(self, item_id: int) -> WorkItem:
        """One item (``LookupError`` when there is none)."""
        return self.ledger.get(item_id)

    def history(self, item_id: int) -> list[Transition]:
        """The item's transitions, oldest first."""
        return self.ledger.history(item_id)

    # -- a person's actions -------------------------------------------------

    def retry(self, item_id: int, operator: Operator, reason: str) -> WorkItem:
        """Back to ``pending``: the bot's next run (of any input) picks it up."""
        item = self.ledger.retry(item_id, reason=f"{reason} (by {operator.name})")
        self._audit("retry", item, operator, reason)
        return item

    def release(self, item_id: int, operator: Operator, reason: str) -> WorkItem:
        """Frees an item stuck in progress (its worker died) so the next run claims it."""
        holder = self.ledger.get(item_id).lease_owner
        item = self.ledger.release(item_id, reason=f"{reason} (by {operator.name})")
        self._audit("release", item, operator, reason, lease_owner=holder)
        return item

    def resolve(self, item_id: int, operator: Operator, note: str) -> WorkItem:
        """Marks an exception handled by a person (``done``, with the note); the bot leaves it."""
        if not note.strip():
            raise ValueError("a note saying how the item was resolved is required")
        now = datetime.now(UTC)
        with self.ledger.engine.begin() as conn:
            row = self._actionable(conn, item_id, "resolve")
            result = {"resolved_by": operator.name, "resolved_by_user": operator.username, "note": note}
            conn.execute(
                update(work_items)
                .where(work_items.c.id == item_id)
                .values(state=ItemState.DONE.value, result=result, updated_at=now)
            )
            self._transition(conn, row, "resolved", ItemState.DONE.value, operator, note, now)
        item = self.ledger.get(item_id)
        self._audit("resolve", item, operator, note, from_state=row["state"])
        return item

    def replace_and_retry(
        self, item_id: int, operator: Operator, payload: Mapping[str, Any], reason: str
    ) -> WorkItem:
        """Stores a corrected payload (checked against the bot's model) and retries the item.

        The old and new payloads both go to the audit record; the item's history
        names the fields that changed.

        Raises:
            pydantic.ValidationError: the payload does not fit the bot's model.
            ValueError: the item is not in a state a person may change.
        """
        current = self.ledger.get(item_id)
        model = payload_model(current.bot)
        new = (
            model.model_validate(dict(payload)).model_dump(mode="json")
            if model is not None
            else json.loads(json.dumps(dict(payload)))
        )
        now = datetime.now(UTC)
        with self.ledger.engine.begin() as conn:
            row = self._actionable(conn, item_id, "replace the data of")
            old = dict(row["payload"])
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            conn.execute(
                update(work_items).where(work_items.c.id == item_id).values(payload=new, updated_at=now)
            )
            detail = "payload replaced: " + (
                "; ".join(f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in changed) or "no change"
            )
            self._transition(conn, row, "payload_replaced", row["state"], operator, detail, now)
        self._audit(
            "replace_payload", current, operator, reason, changed=changed, old_payload=old, new_payload=new
        )
        return self.retry(item_id, operator, reason)

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _actionable(conn: Any, item_id: int, what: str) -> Any:
        row = conn.execute(select(work_items).where(work_items.c.id == item_id)).mappings().first()
        if row is None:
            raise LookupError(f"no work item with id {item_id}")
        if ItemState(row["state"]) not in ACTIONABLE_STATES:
            raise ValueError(
                f"work item {item_id} is {row['state']}: a person can only {what} an item that is "
                + ", ".join(sorted(s.value for s in ACTIONABLE_STATES))
            )
        return row

    @staticmethod
    def _transition(
        conn: Any, row: Any, event: str, to_state: str, operator: Operator, detail: str, now: datetime
    ) -> None:
        conn.execute(
            insert(item_transitions).values(
                item_id=row["id"],
                at=now,
                event=event,
                from_state=row["state"],
                to_state=to_state,
                owner=f"console:{operator.username}",
                attempt=row["attempts"],
                reason_code=row["reason_code"],
                detail=detail,
            )
        )

    @staticmethod
    def _audit(action: str, item: WorkItem, operator: Operator, reason: str, **fields: Any) -> None:
        audit_event(
            f"operator.{action}",
            item_id=item.id,
            bot=item.bot,
            idempotency_key=item.idempotency_key,
            operator=operator.username,
            operator_name=operator.name,
            reason=reason,
            to_state=str(item.state),
            **fields,
        )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
