"""The console's one door to the ledger: read the queue, and a person's actions on an item.

Every call the console makes on the work-item ledger goes through
:class:`WorkQueue`, so the pages never touch the database. Actions are the
ledger's operator actions, under the person's name (:class:`Operator`, e.g.
``Jane Smith (jsmith)``) and with their reason: the item's history and the
audit record (``workitem.requeued``, ``workitem.released``, ``workitem.resolved``,
``workitem.payload_replaced`` with the old and new payload) both name them.

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
from sqlalchemy import func, select

from bots.runtime.ledger import ItemState, Ledger, Transition, WorkItem, work_items

__all__ = [
    "ACTIONABLE_STATES",
    "PAYLOAD_MODELS",
    "Operator",
    "QueueRow",
    "WorkQueue",
    "actionable",
    "payload_model",
]

#: The payload model of each bot (``module:Class``), to check a corrected payload before it is stored.
PAYLOAD_MODELS = {
    "purchase_orders": "bots.purchase_orders:Requisition",
    "invoice_matching": "bots.invoices:InvoiceTask",
    "contract_uploads": "bots.contracts:ContractJob",
    "goods_receipts": "bots.goods_receipts:ReceiptDraft",
}
#: States in which a person may retry, resolve or replace an item's data (and a system
#: exception whose worker's lease ran out).
ACTIONABLE_STATES = frozenset({ItemState.BUSINESS_EXCEPTION, ItemState.FAILED, ItemState.NEEDS_REVIEW})


def actionable(item: WorkItem, now: datetime | None = None) -> bool:
    """Whether a person may retry, resolve or replace the data of ``item`` now."""
    if item.state in ACTIONABLE_STATES:
        return True
    expires = item.lease_expires_at
    return item.state is ItemState.SYSTEM_EXCEPTION and (
        expires is None or expires <= (now or datetime.now(UTC))
    )


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
    """The person acting: sign-in name and full name."""

    username: str
    name: str

    @property
    def audit_name(self) -> str:
        """How the ledger and the audit log name them: ``Jane Smith (jsmith)``."""
        return f"{self.name} ({self.username})"


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

    # -- a person's actions (the ledger records each under the operator, with the reason) -------

    def retry(self, item_id: int, operator: Operator, reason: str) -> WorkItem:
        """Back to ``pending``, first in line: the bot's next run (of any input) takes it."""
        return self.ledger.retry(item_id, reason, operator=operator.audit_name)

    def release(self, item_id: int, operator: Operator, reason: str) -> WorkItem:
        """Frees an item stuck in progress (its worker died) so the next run claims it."""
        return self.ledger.release(item_id, reason, operator=operator.audit_name)

    def resolve(self, item_id: int, operator: Operator, note: str) -> WorkItem:
        """Marks an exception handled by a person (``done``, with the note); the bot leaves it."""
        return self.ledger.resolve(item_id, note, operator=operator.audit_name)

    def replace_and_retry(
        self, item_id: int, operator: Operator, payload: Mapping[str, Any], reason: str
    ) -> WorkItem:
        """Stores a corrected payload (checked against the bot's model) and retries the item.

        The ledger's audit record keeps the old and the new payload; the history
        says which fields changed, after the person's reason.

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
        old = current.payload
        changed = "; ".join(
            f"{k} {_short(old.get(k))} -> {_short(new.get(k))}"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        )
        said = f"{reason} (changed: {changed or 'nothing'})"
        return self.ledger.replace_payload_and_retry(item_id, new, said, operator=operator.audit_name)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
