"""The ledger's prebuilt SQL: the few statement shapes its hot path runs for every item.

Building a Core statement afresh costs more than SQLite's own work (coercion and a
new cache key each time); statements built once keep their cache key memoised, so
SQLAlchemy goes straight to its compiled-statement cache. Used by
:class:`bots.runtime.ledger.Ledger` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter

from bots.runtime.schema import ACTIVE_STATES, ItemState, UTCDateTime, item_transitions, work_items

__all__ = [
    "CLAIM",
    "EXPIRED",
    "EXPIRED_OF_BOT",
    "EXPIRY_PROBE",
    "HEARTBEAT",
    "INSERT_TRANSITION",
    "ITEM_BY_ID",
    "ITEM_BY_ID_LOCKED",
    "ITEM_BY_KEY",
    "OUT_OF_ATTEMPTS",
    "UPDATES",
    "claim_statement",
    "param",
    "set_values",
    "update_statement",
]


def param(name: str) -> BindParameter[Any]:
    """The bound parameter ``v_<column>`` carrying the column's type (JSON, UTC datetimes)."""
    return bindparam(f"v_{name}", type_=work_items.c[name].type)


ITEM_BY_ID = select(work_items).where(work_items.c.id == bindparam("w_id"))
ITEM_BY_ID_LOCKED = ITEM_BY_ID.with_for_update()
ITEM_BY_KEY = select(work_items).where(
    work_items.c.bot == bindparam("w_bot"), work_items.c.idempotency_key == bindparam("w_key")
)
INSERT_TRANSITION = insert(item_transitions)
EXPIRED = (
    select(work_items)
    .where(
        work_items.c.state.in_([s.value for s in ACTIVE_STATES]),
        work_items.c.lease_expires_at < bindparam("w_now", type_=UTCDateTime),
    )
    .with_for_update(skip_locked=True)
)
# {is SQLite: the probe's text}; the driver's own placeholder style (qmark, format).
EXPIRY_PROBE = {
    dialect_is_sqlite: (
        "SELECT 1 FROM work_items WHERE bot = {p} AND state IN ('in_progress', 'system_exception') "
        "AND lease_expires_at < {p} LIMIT 1"
    ).format(p="?" if dialect_is_sqlite else "%s")
    for dialect_is_sqlite in (True, False)
}
EXPIRED_OF_BOT = EXPIRED.where(work_items.c.bot == bindparam("w_bot"))
OUT_OF_ATTEMPTS = (
    select(work_items)
    .where(
        work_items.c.bot == bindparam("w_bot"),
        work_items.c.state == ItemState.PENDING.value,
        work_items.c.attempts >= bindparam("w_max_attempts"),
    )
    .order_by(work_items.c.id)
    .with_for_update(skip_locked=True)
)


def claim_statement(bounded: bool) -> Update:
    """One ``UPDATE ... RETURNING`` that leases the next pending item of a bot.

    Next means: items an operator retried first (``claim_rank`` 0), then the oldest.

    On PostgreSQL the subselect is ``FOR UPDATE SKIP LOCKED``, so concurrent
    claimers take different rows without waiting; on SQLite the transaction
    already holds the write lock (``BEGIN IMMEDIATE``).
    """
    pick = (
        select(work_items.c.id)
        .where(work_items.c.bot == bindparam("w_bot"), work_items.c.state == ItemState.PENDING.value)
        .order_by(work_items.c.claim_rank, work_items.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if bounded:
        pick = pick.where(work_items.c.attempts < bindparam("w_max_attempts"))
    return (
        update(work_items)
        .where(work_items.c.id == pick.scalar_subquery(), work_items.c.state == ItemState.PENDING.value)
        .values(
            state=ItemState.IN_PROGRESS.value,
            attempts=work_items.c.attempts + 1,
            lease_owner=param("lease_owner"),
            lease_token=param("lease_token"),
            lease_expires_at=param("lease_expires_at"),
            heartbeat_at=param("heartbeat_at"),
            updated_at=param("updated_at"),
        )
        .returning(*work_items.c)
    )


CLAIM = {False: claim_statement(False), True: claim_statement(True)}
HEARTBEAT = (
    update(work_items)
    .where(
        work_items.c.id == bindparam("w_id"),
        work_items.c.lease_token == bindparam("w_token"),
        work_items.c.state.in_([s.value for s in ACTIVE_STATES]),
    )
    .values(lease_expires_at=param("lease_expires_at"), heartbeat_at=param("heartbeat_at"))
)
UPDATES: dict[tuple[tuple[str, ...], bool, bool], Update] = {}


def update_statement(names: tuple[str, ...], *, fenced: bool = False, add_attempts: bool = False) -> Update:
    """``UPDATE work_items SET <names> WHERE id = :w_id [fence] RETURNING *``, built once per shape.

    ``fenced`` adds the lease fence: the row must still carry the caller's token,
    owner and state (``w_token``, ``w_owner``, ``w_from``), so a write after the
    lease was taken back changes nothing. ``add_attempts`` sets
    ``attempts = attempts + :v_attempts``.
    """
    shape = (names, fenced, add_attempts)
    statement = UPDATES.get(shape)
    if statement is None:
        values: dict[str, Any] = {name: param(name) for name in names}
        if add_attempts:
            values["attempts"] = work_items.c.attempts + param("attempts")
        statement = update(work_items).where(work_items.c.id == bindparam("w_id"))
        if fenced:
            statement = statement.where(
                work_items.c.lease_token == bindparam("w_token"),
                work_items.c.lease_owner == bindparam("w_owner"),
                work_items.c.state == bindparam("w_from"),
            )
        statement = statement.values(values).returning(*work_items.c)
        UPDATES[shape] = statement
    return statement


def set_values(conn: Connection, item_id: int, values: Mapping[str, Any]) -> RowMapping:
    """Updates columns of one item by id; returns the row as written."""
    names = tuple(sorted(values))
    params = {f"v_{name}": value for name, value in values.items()}
    params["w_id"] = item_id
    return conn.execute(update_statement(names), params).mappings().one()
