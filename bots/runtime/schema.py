"""The ledger's schema: item states, the work item and transition models, the tables and migrations.

:mod:`bots.runtime.ledger` is the store built on them (claims, leases, outcomes,
operator actions); this module holds what the database looks like, so the two
roles read apart. Every name here is also importable from :mod:`bots.runtime.ledger`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, PrivateAttr
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from bots.domain.evidence import Evidence

__all__ = [
    "ACTIVE_STATES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "ItemState",
    "Transition",
    "UTCDateTime",
    "WorkItem",
    "item_transitions",
    "metadata",
    "schema_version",
    "work_items",
]

SCHEMA_VERSION = 2

M = TypeVar("M", bound=BaseModel)


class _Checkpoints(Protocol):
    """What a work item writes its checkpoints to (the ledger)."""

    def checkpoint(self, item: WorkItem | int, name: str, value: str | None = None) -> None: ...


class ItemState(StrEnum):
    """Where a work item is in its life."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    BUSINESS_EXCEPTION = "business_exception"
    SYSTEM_EXCEPTION = "system_exception"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"


#: States in which a worker holds a lease on the item.
ACTIVE_STATES = frozenset({ItemState.IN_PROGRESS, ItemState.SYSTEM_EXCEPTION})
#: States no worker will pick up again without an operator's ``retry``.
TERMINAL_STATES = frozenset(
    {ItemState.DONE, ItemState.BUSINESS_EXCEPTION, ItemState.FAILED, ItemState.NEEDS_REVIEW}
)


class Transition(BaseModel):
    """One row of an item's history: a state change, a checkpoint or evidence."""

    id: int
    item_id: int
    at: datetime
    event: str
    from_state: str | None
    to_state: str
    owner: str | None
    attempt: int
    reason_code: str | None
    detail: str | None


class WorkItem(BaseModel):
    """One unit of robot work as stored in the ledger.

    The object a bot's ``process`` function receives is bound to its ledger and
    lease, so the bot can record checkpoints::

        if not item.done_step("po_created"):
            po_number = portal.find_po(item.idempotency_key) or portal.create_po(order)
            item.checkpoint("po_created", po_number)
    """

    id: int
    bot: str
    idempotency_key: str
    payload: dict[str, Any]
    state: ItemState
    attempts: int = 0
    lease_owner: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    lease_expiries: int = 0
    checkpoints: dict[str, str | None] = {}
    result: dict[str, Any] | None = None
    reason_code: str | None = None
    reason_message: str | None = None
    evidence: list[Evidence] = []
    created_at: datetime
    updated_at: datetime
    retry_requested_at: datetime | None = None
    """When an operator last retried the item or replaced its payload (None: never)."""

    _ledger: _Checkpoints | None = PrivateAttr(default=None)

    def payload_as(self, model: type[M]) -> M:
        """The payload validated as ``model`` (the bot's typed input).

        Example:
            >>> order = item.payload_as(PurchaseOrder)  # doctest: +SKIP
        """
        return model.model_validate(self.payload)

    def checkpoint(self, name: str, value: str | None = None) -> None:
        """Records that the side effect ``name`` happened (with its result), durably, now."""
        if self._ledger is None:
            raise RuntimeError(f"work item {self.id} is not bound to a ledger; claim it first")
        self._ledger.checkpoint(self, name, value)
        self.checkpoints[name] = value

    def done_step(self, name: str) -> str | None:
        """The recorded result of checkpoint ``name``, or None when it has not happened.

        A checkpoint recorded without a value reads back as ``""``, so the answer is
        truthy exactly when the step is done.
        """
        if name not in self.checkpoints:
            return None
        value = self.checkpoints[name]
        return "" if value is None else value

    def bind(self, ledger: _Checkpoints) -> WorkItem:
        """Attaches the ledger that ``checkpoint`` writes to; returns self."""
        self._ledger = ledger
        return self


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (as naive UTC text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text: naive UTC keeps that order right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)

work_items = Table(
    "work_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bot", String(100), nullable=False),
    Column("idempotency_key", String(400), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(200)),
    Column("lease_token", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("lease_expiries", Integer, nullable=False, default=0),
    Column("checkpoints", JSON, nullable=False),
    Column("result", JSON),
    Column("reason_code", String(100)),
    Column("reason_message", Text),
    Column("evidence", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # 0: an operator retried it (or its payload was replaced): claimed before the rest.
    Column("claim_rank", Integer, nullable=False, default=1, server_default=text("1")),
    Column("retry_requested_at", UTCDateTime),
    UniqueConstraint("bot", "idempotency_key", name="uq_work_items_bot_key"),
    Index("ix_work_items_claim_rank", "bot", "state", "claim_rank", "id"),
    Index("ix_work_items_lease", "state", "lease_expires_at"),
)

item_transitions = Table(
    "item_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("work_items.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(40), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("owner", String(200)),
    Column("attempt", Integer, nullable=False),
    Column("reason_code", String(100)),
    Column("detail", Text),
    Index("ix_item_transitions_item", "item_id", "id"),
)


def _migration_1(conn: Connection) -> None:
    """The first schema: items and their transitions."""
    metadata.create_all(conn, tables=[work_items, item_transitions], checkfirst=True)


def _migration_2(conn: Connection) -> None:
    """Retried items first: ``claim_rank`` and ``retry_requested_at``, and the claim index over them."""

    present = {c["name"] for c in inspect(conn).get_columns("work_items")}
    for name in ("claim_rank", "retry_requested_at"):
        if name not in present:  # a database made by schema 1 (new ones have them from step 1)
            column = work_items.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            extra = " NOT NULL DEFAULT 1" if name == "claim_rank" else ""
            conn.exec_driver_sql(f"ALTER TABLE work_items ADD COLUMN {name} {kind}{extra}")
    indexes = {i["name"] for i in inspect(conn).get_indexes("work_items")}
    if "ix_work_items_claim" in indexes:
        conn.exec_driver_sql("DROP INDEX ix_work_items_claim")
    if "ix_work_items_claim_rank" not in indexes:
        next(i for i in work_items.indexes if i.name == "ix_work_items_claim_rank").create(conn)


#: Ordered schema steps; a ledger opened on an older database applies the missing ones.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migration_1, 2: _migration_2}
