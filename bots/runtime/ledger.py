"""Work items and the ledger that holds them: the exactly-once backbone of procbots.

A :class:`WorkItem` is one unit of robot work (a requisition to key, an invoice
to match, a contract to upload) with an idempotency key, a typed payload, a
state, a lease and named checkpoints. The :class:`Ledger` keeps items in a
database through SQLAlchemy 2: a SQLite file (WAL, busy timeout, every write
transaction ``BEGIN IMMEDIATE``) by default, or PostgreSQL by URL, where claims
use ``SELECT ... FOR UPDATE SKIP LOCKED`` so several machines can share a queue.

States::

    pending -> in_progress -> done
                           -> business_exception            (never retried)
                           -> system_exception -> in_progress (retry)
                                               -> failed      (attempts exhausted)
    in_progress/system_exception --lease expired--> pending | needs_review

Guarantees:

* Adding the same ``(bot, idempotency_key)`` twice returns the first item. When
  that item is not done and not being worked on, and the new payload differs (a
  corrected file was dropped), its payload is replaced (the old one is kept in the
  audit record) and an exception goes back to the queue.
* Items an operator retried (or whose payload was replaced) are claimed before
  the other pending items of their bot (``claim_rank`` 0, ``retry_requested_at``);
  :meth:`Ledger.retried_since` lists those a run picked up, for its report.
* Operator actions (:meth:`Ledger.retry`, :meth:`Ledger.release`,
  :meth:`Ledger.resolve`, :meth:`Ledger.replace_payload_and_retry`) record the
  operator (the OS user unless given, e.g. the console's signed-in person) and
  their reason, in the history and the audit log; never the lease holder's id.
* A claim hands an item to one worker with a lease (owner, token, expiry).
  Every write by a worker is fenced by the lease token: once a lease expired and
  the item was taken back, the old worker's ``complete`` raises
  :class:`~bots.domain.errors.LeaseLost` instead of completing the item twice.
* An expired lease returns the item to ``pending`` (the worker crashed or hung),
  or to ``needs_review`` after ``max_lease_expiries`` expiries, so one poisonous
  item cannot crash workers forever; ``max_attempts`` bounds claims the same way.
* Checkpoints (``po_created -> PO-000123``) persist at once, so a retried item
  resumes after its last completed side effect.
* Every transition is written to the ``item_transitions`` table and, after the
  commit, to the audit log (``connectors.audit.audit_event`` unless given).

Time comes from an injectable ``clock`` so tests can expire leases without sleeping.

The models and tables are in :mod:`bots.runtime.schema`, the prebuilt SQL of the hot
path in :mod:`bots.runtime.statements`, the operator's actions in
:mod:`bots.runtime.operator` and the reading queries in :mod:`bots.runtime.queries`
(mixins of :class:`Ledger`); this module is the store that uses them.

Example:
    >>> ledger = Ledger("sqlite:///var/ledger.db")  # doctest: +SKIP
    >>> ledger.add("purchase_orders", "REQ-0001", Requisition(...))  # doctest: +SKIP
    >>> item = ledger.claim("purchase_orders", owner="host-1:pid-42", lease_s=120)  # doctest: +SKIP
    >>> item.checkpoint("po_created", "PO-000123")  # doctest: +SKIP
    >>> ledger.complete(item, result={"po_number": "PO-000123"})  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import (
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, RowMapping, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from bots.domain.errors import LeaseLost
from bots.domain.evidence import Evidence
from bots.runtime.operator import (
    REQUEUE,
    OperatorActions,
    os_user,
    payload_json,
    payload_sha256,
    redact_text,
)
from bots.runtime.queries import LedgerQueries
from bots.runtime.schema import (
    ACTIVE_STATES,
    MIGRATIONS,
    SCHEMA_VERSION,
    TERMINAL_STATES,
    ItemState,
    Transition,
    UTCDateTime,
    WorkItem,
    item_transitions,
    metadata,
    schema_version,
    work_items,
)
from bots.runtime.statements import (
    CLAIM,
    EXPIRED,
    EXPIRED_OF_BOT,
    EXPIRY_PROBE,
    HEARTBEAT,
    INSERT_TRANSITION,
    ITEM_BY_ID,
    ITEM_BY_ID_LOCKED,
    ITEM_BY_KEY,
    OUT_OF_ATTEMPTS,
    set_values,
    update_statement,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "ACTIVE_STATES",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "AuditHook",
    "Evidence",
    "ItemState",
    "Ledger",
    "Transition",
    "WorkItem",
    "os_user",
    "payload_sha256",
    "work_items",
]


AuditHook = Callable[..., Any]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger(OperatorActions, LedgerQueries):
    """The work-item store: add, claim, record, inspect.

    Args:
        url: SQLAlchemy URL. ``sqlite:///path/ledger.db`` (the default kind; the
            folder is created), ``sqlite://`` (in memory, one connection, tests),
            or ``postgresql://user@host/db`` (psycopg 3).
        max_lease_expiries: expiries after which an item goes to ``needs_review``.
        max_attempts: claims after which an item is ``failed`` instead of claimed
            again (a bound across crashes); None = no bound beyond the expiries.
        lease_s: default lease length of :meth:`claim` and :meth:`heartbeat`.
        clock: returns the current aware datetime (inject a fake one in tests).
        audit: called as ``audit(event, **fields)`` after each committed
            transition; default ``connectors.audit.audit_event``; ``False`` = none.
    """

    def __init__(
        self,
        url: str,
        *,
        max_lease_expiries: int = 3,
        max_attempts: int | None = None,
        lease_s: float = 120.0,
        clock: Clock | None = None,
        audit: AuditHook | bool | None = None,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.max_lease_expiries = max_lease_expiries
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.clock: Clock = clock or _utc_now
        self._audit_hook = audit
        self.engine = self._make_engine(url, echo)
        self.dialect = self.engine.dialect.name
        self._lease_bind = work_items.c.lease_expires_at.type._cached_bind_processor(self.engine.dialect)
        self._expiry_probe = EXPIRY_PROBE[self.dialect == "sqlite"]
        self._migrate()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Ledger:
        """The ledger configured by procbots settings (URL, lease, expiries, attempts)."""
        if settings is None:
            from config.settings import get_settings

            settings = get_settings()
        options: dict[str, Any] = {
            "max_lease_expiries": settings.ledger.max_lease_expiries,
            "max_attempts": None,
            "lease_s": settings.ledger.lease_s,
        }
        options.update(overrides)
        return cls(settings.ledger_url, **options)

    # -- engine and schema -------------------------------------------------

    @staticmethod
    def _make_engine(url: str, echo: bool) -> Engine:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            in_memory = database in ("", ":memory:")
            if not in_memory:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                parsed,
                echo=echo,
                connect_args={"timeout": 60, "check_same_thread": False},
                poolclass=StaticPool if in_memory else None,
            )

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
                # We issue BEGIN ourselves (IMMEDIATE), so the driver must not.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    # NORMAL in WAL mode survives a process crash (SIGKILL); a power
                    # cut may lose the last commits, which the bots' search-before-
                    # create makes harmless.
                    cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=60000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                # Take the write lock at the start: a claim's read and its update
                # are one atomic step, and no deadlock-prone lock upgrade happens.
                # Straight on the driver: a full SQLAlchemy execution per transaction
                # would cost more than the BEGIN itself.
                driver: Any = conn.connection.driver_connection
                driver.execute("BEGIN IMMEDIATE")

            return engine
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True)

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two workers starting on an empty database must not both create tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(7251001)"))
            metadata.create_all(conn, tables=[schema_version], checkfirst=True)
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"ledger {self.engine.url.render_as_string(hide_password=True)} has schema "
                    f"version {current}, newer than this procbots ({SCHEMA_VERSION}); upgrade procbots"
                )
            for version in sorted(v for v in MIGRATIONS if v > current):
                MIGRATIONS[version](conn)
                conn.execute(insert(schema_version).values(version=version, applied_at=self.clock()))

    def schema_version(self) -> int:
        """The schema version of the database."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    def close(self) -> None:
        """Closes the database connections."""
        self.engine.dispose()

    # -- helpers ------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[tuple[Connection, builtins.list[tuple[str, dict[str, Any]]]]]:
        """A write transaction; audit events queued in it are written after the commit."""
        events: builtins.list[tuple[str, dict[str, Any]]] = []
        with self.engine.begin() as conn:
            yield conn, events
        for name, fields in events:
            self._audit(name, **fields)

    def _audit(self, event_name: str, **fields: Any) -> None:
        hook = self._audit_hook
        if hook is False:
            return
        if hook is None or hook is True:
            from connectors.audit import audit_event

            hook = audit_event
        hook(event_name, **fields)

    def _item(self, row: Mapping[Any, Any]) -> WorkItem:
        # The row comes from our own typed columns, so pydantic's validation would
        # only re-check what the schema guarantees; construct skips it (hot path).
        item = WorkItem.model_construct(
            id=row["id"],
            bot=row["bot"],
            idempotency_key=row["idempotency_key"],
            payload=row["payload"],
            state=ItemState(row["state"]),
            attempts=row["attempts"],
            lease_owner=row["lease_owner"],
            lease_token=row["lease_token"],
            lease_expires_at=row["lease_expires_at"],
            heartbeat_at=row["heartbeat_at"],
            lease_expiries=row["lease_expiries"],
            checkpoints=row["checkpoints"] or {},
            result=row["result"],
            reason_code=row["reason_code"],
            reason_message=row["reason_message"],
            evidence=[Evidence.model_construct(**e) for e in row["evidence"] or []],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            retry_requested_at=row["retry_requested_at"],
        )
        return item.bind(self)

    def _row(self, conn: Connection, item_id: int, *, lock: bool = False) -> RowMapping:
        query = ITEM_BY_ID_LOCKED if lock else ITEM_BY_ID
        row = conn.execute(query, {"w_id": item_id}).mappings().first()
        if row is None:
            raise LookupError(f"no work item with id {item_id}")
        return row

    def _transition(
        self,
        conn: Connection,
        events: builtins.list[tuple[str, dict[str, Any]]],
        row: RowMapping,
        event_name: str,
        to_state: str,
        *,
        now: datetime,
        owner: str | None = None,
        attempt: int | None = None,
        reason_code: str | None = None,
        detail: str | None = None,
        from_state: str | None = None,
        audit_fields: Mapping[str, Any] | None = None,
    ) -> None:
        source = row["state"] if from_state is None else from_state
        conn.execute(
            INSERT_TRANSITION,
            {
                "item_id": row["id"],
                "at": now,
                "event": event_name,
                "from_state": source,
                "to_state": to_state,
                "owner": owner,
                "attempt": row["attempts"] if attempt is None else attempt,
                "reason_code": reason_code,
                "detail": detail,
            },
        )
        fields: dict[str, Any] = {
            "item_id": row["id"],
            "bot": row["bot"],
            "idempotency_key": row["idempotency_key"],
            "from_state": source,
            "to_state": to_state,
            "owner": owner,
            "attempt": row["attempts"] if attempt is None else attempt,
        }
        if reason_code is not None:
            fields["reason_code"] = reason_code
        if detail is not None:
            fields["detail"] = detail
        fields.update(audit_fields or {})
        events.append((f"workitem.{event_name}", fields))

    def _fenced_row(self, conn: Connection, item: WorkItem) -> RowMapping:
        """The item's row, locked, when ``item``'s lease is still the current one."""
        row = self._row(conn, item.id, lock=True)
        if (
            item.lease_token is None
            or row["lease_token"] != item.lease_token
            or row["state"] not in ACTIVE_STATES
        ):
            raise LeaseLost(
                "LEASE_LOST",
                f"work item {item.id} ({item.idempotency_key}) is no longer leased to "
                f"{item.lease_owner}: it is {row['state']} and held by {row['lease_owner'] or 'nobody'}",
            )
        return row

    # -- adding -------------------------------------------------------------

    def add(self, bot: str, idempotency_key: str, payload: BaseModel | Mapping[str, Any]) -> WorkItem:
        """Adds a pending item; the same ``(bot, idempotency_key)`` again returns the first one.

        Example:
            >>> ledger.add("invoice_matching", "GB123456789:INV-1001", invoice)  # doctest: +SKIP
        """
        if not idempotency_key:
            raise ValueError(f"work item for bot {bot!r}: the idempotency key must not be empty")
        body = payload_json(payload)
        for last_try in (False, True):
            try:
                with self._tx() as (conn, events):
                    self._insert_many(conn, events, bot, [(idempotency_key, body)])
                    key = {"w_bot": bot, "w_key": idempotency_key}
                    return self._item(conn.execute(ITEM_BY_KEY, key).mappings().one())
            except IntegrityError:
                # Another process added the same key between our look and our insert
                # (PostgreSQL, read committed): the second pass finds its row.
                if last_try:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def add_many(self, bot: str, items: Iterable[tuple[str, BaseModel | Mapping[str, Any]]]) -> int:
        """Adds many pending items in one transaction; returns how many were new."""
        bodies = []
        for key, payload in items:
            if not key:
                raise ValueError(f"work item for bot {bot!r}: the idempotency key must not be empty")
            bodies.append((key, payload_json(payload)))
        for last_try in (False, True):
            try:
                with self._tx() as (conn, events):
                    return self._insert_many(conn, events, bot, bodies)
            except IntegrityError:
                # Another process filed some of these keys meanwhile (see add): skip them now.
                if last_try:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_many(
        self,
        conn: Connection,
        events: builtins.list[tuple[str, dict[str, Any]]],
        bot: str,
        bodies: builtins.list[tuple[str, dict[str, Any]]],
    ) -> int:
        now = self.clock()
        keys = [key for key, _ in bodies]
        existing: dict[str, RowMapping] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for row in conn.execute(
                select(work_items)
                .where(work_items.c.bot == bot, work_items.c.idempotency_key.in_(chunk))
                .with_for_update()
            ).mappings():
                existing[row["idempotency_key"]] = row
        fresh: dict[str, dict[str, Any]] = {}
        latest: dict[str, dict[str, Any]] = {}  # the last payload given per existing key
        for key, body in bodies:
            if key in existing:
                latest[key] = body
            elif key not in fresh:
                fresh[key] = body
        if latest:
            self._replace_changed(conn, events, bot, existing, latest, now)
        if not fresh:
            return 0
        rows = [
            {
                "bot": bot,
                "idempotency_key": key,
                "payload": body,
                "state": ItemState.PENDING.value,
                "attempts": 0,
                "lease_expiries": 0,
                "checkpoints": {},
                "evidence": [],
                "created_at": now,
                "updated_at": now,
            }
            for key, body in fresh.items()
        ]
        conn.execute(insert(work_items), rows)
        ids: dict[str, int] = {}
        fresh_keys = list(fresh)
        for start in range(0, len(fresh_keys), 500):
            chunk = fresh_keys[start : start + 500]
            for item_id, key in conn.execute(
                select(work_items.c.id, work_items.c.idempotency_key).where(
                    work_items.c.bot == bot, work_items.c.idempotency_key.in_(chunk)
                )
            ):
                ids[key] = item_id
        conn.execute(
            insert(item_transitions),
            [
                {
                    "item_id": ids[key],
                    "at": now,
                    "event": "added",
                    "from_state": None,
                    "to_state": ItemState.PENDING.value,
                    "owner": None,
                    "attempt": 0,
                    "reason_code": None,
                    "detail": None,
                }
                for key in fresh
            ],
        )
        if len(fresh) == 1:
            key = next(iter(fresh))
            events.append(
                (
                    "workitem.added",
                    {"item_id": ids[key], "bot": bot, "idempotency_key": key, "to_state": "pending"},
                )
            )
        else:
            # One audit record per batch: a 10,000-row input file is one event, not 10,000 fsyncs.
            events.append(
                (
                    "workitem.added",
                    {
                        "bot": bot,
                        "count": len(fresh),
                        "item_ids": sorted(ids.values()),
                        "to_state": "pending",
                    },
                )
            )
        return len(fresh)

    def _replace_changed(
        self,
        conn: Connection,
        events: builtins.list[tuple[str, dict[str, Any]]],
        bot: str,
        existing: Mapping[str, RowMapping],
        latest: Mapping[str, dict[str, Any]],
        now: datetime,
    ) -> None:
        """Replaces the payload of existing items that are not done when it changed.

        A pending item just takes the new payload; a business exception, failed or
        needs-review item (or one whose lease ran out) also goes back to the queue,
        first in line, as an operator's retry would. An item done, or being worked
        on under a live lease, keeps its payload. One audit record lists every
        replacement with the old and new payloads and their SHA-256.
        """
        replaced: builtins.list[dict[str, Any]] = []
        for key, body in latest.items():
            row = existing[key]
            state = ItemState(row["state"])
            if state is ItemState.DONE or row["payload"] == body:
                continue
            leased = (
                state in ACTIVE_STATES
                and row["lease_expires_at"] is not None
                and row["lease_expires_at"] > now
            )
            if leased:
                continue
            values: dict[str, Any] = {"payload": body, "updated_at": now}
            if state is not ItemState.PENDING:
                values.update(REQUEUE, retry_requested_at=now)
            else:
                values.update(claim_rank=0, retry_requested_at=now)
            set_values(conn, row["id"], values)
            old_sha, new_sha = payload_sha256(row["payload"]), payload_sha256(body)
            conn.execute(
                INSERT_TRANSITION,
                {
                    "item_id": row["id"],
                    "at": now,
                    "event": "payload_replaced",
                    "from_state": state.value,
                    "to_state": ItemState.PENDING.value,
                    "owner": None,
                    "attempt": 0 if state is not ItemState.PENDING else row["attempts"],
                    "reason_code": row["reason_code"],
                    "detail": f"new payload from the input (sha256 {old_sha[:12]} -> {new_sha[:12]})",
                },
            )
            replaced.append(
                {
                    "item_id": row["id"],
                    "idempotency_key": key,
                    "from_state": state.value,
                    "old_payload_sha256": old_sha,
                    "new_payload_sha256": new_sha,
                    "old_payload": row["payload"],
                    "new_payload": body,
                }
            )
        if replaced:
            events.append(
                (
                    "workitem.payload_replaced",
                    {
                        "bot": bot,
                        "source": "input",
                        "to_state": "pending",
                        "count": len(replaced),
                        "items": replaced,
                    },
                )
            )

    # -- claiming -----------------------------------------------------------

    def expire_leases(self, bot: str | None = None) -> int:
        """Takes back every item whose lease has expired; returns how many."""
        with self._tx() as (conn, events):
            return self._expire(conn, events, bot, self.clock())

    def _any_expired(self, conn: Connection, bot: str, now: datetime) -> bool:
        """Whether some lease of ``bot`` has run out: a cheap probe before the full sweep.

        Runs on every claim and almost always finds nothing, so it goes straight to
        the driver (no locks taken; :meth:`_expire` locks what it changes).
        """
        bound = self._lease_bind(now) if self._lease_bind is not None else now
        driver: Any = conn.connection.driver_connection
        cursor = driver.cursor()
        try:
            cursor.execute(self._expiry_probe, (bot, bound))
            return cursor.fetchone() is not None
        finally:
            cursor.close()

    def _expire(
        self,
        conn: Connection,
        events: builtins.list[tuple[str, dict[str, Any]]],
        bot: str | None,
        now: datetime,
    ) -> int:
        if bot is None:
            rows = conn.execute(EXPIRED, {"w_now": now}).mappings().all()
        else:
            rows = conn.execute(EXPIRED_OF_BOT, {"w_now": now, "w_bot": bot}).mappings().all()
        for row in rows:
            expiries = row["lease_expiries"] + 1
            target = ItemState.NEEDS_REVIEW if expiries >= self.max_lease_expiries else ItemState.PENDING
            code = "LEASE_EXPIRED_TOO_OFTEN" if target is ItemState.NEEDS_REVIEW else None
            message = (
                f"The worker processing this item stopped responding {expiries} times; "
                "check the portal for a half-done transaction before retrying"
                if code
                else None
            )
            values: dict[str, Any] = {
                "state": target.value,
                "lease_owner": None,
                "lease_token": None,
                "lease_expires_at": None,
                "lease_expiries": expiries,
                "updated_at": now,
            }
            if code:
                values.update(reason_code=code, reason_message=message)
            set_values(conn, row["id"], values)
            self._transition(
                conn,
                events,
                row,
                "lease_expired",
                target.value,
                now=now,
                owner=row["lease_owner"],
                reason_code=code,
                detail=f"lease of {row['lease_owner']} expired at {row['lease_expires_at'].isoformat()}",
            )
        return len(rows)

    def claim(
        self, bot: str, owner: str, lease_s: float | None = None, *, run_id: str | None = None
    ) -> WorkItem | None:
        """Leases the oldest pending item of ``bot`` to ``owner``; None when there is none.

        ``run_id`` (the claiming run's id) is recorded on the claim (``run <run id>`` in the
        item's history), so the item's flow run can be found and :meth:`left_failed_by_run`
        knows which run left an item failed.

        Expired leases are taken back first, and (with ``max_attempts``) pending
        items out of attempts are failed. The claim itself is one
        ``UPDATE ... RETURNING``: on PostgreSQL its subselect is ``FOR UPDATE SKIP
        LOCKED``, so concurrent claimers skip each other's rows; on SQLite the
        transaction holds the write lock from its ``BEGIN IMMEDIATE``.
        """
        lease = timedelta(seconds=self.lease_s if lease_s is None else lease_s)
        with self._tx() as (conn, events):
            now = self.clock()
            if self._any_expired(conn, bot, now):
                self._expire(conn, events, bot, now)
            params: dict[str, Any] = {
                "w_bot": bot,
                "v_lease_owner": owner,
                "v_lease_token": uuid.uuid4().hex,
                "v_lease_expires_at": now + lease,
                "v_heartbeat_at": now,
                "v_updated_at": now,
            }
            bounded = self.max_attempts is not None
            if bounded:
                params["w_max_attempts"] = self.max_attempts
                spent = conn.execute(
                    OUT_OF_ATTEMPTS, {"w_bot": bot, "w_max_attempts": self.max_attempts}
                ).mappings()
                for spent_row in spent.all():
                    self._exhaust(conn, events, spent_row, now)
            row = conn.execute(CLAIM[bounded], params).mappings().first()
            if row is None:
                return None
            self._transition(
                conn,
                events,
                row,
                "claimed",
                ItemState.IN_PROGRESS.value,
                now=now,
                owner=owner,
                detail=f"run {run_id}" if run_id else None,
                from_state=ItemState.PENDING.value,
            )
            return self._item(row)

    def _exhaust(
        self,
        conn: Connection,
        events: builtins.list[tuple[str, dict[str, Any]]],
        row: RowMapping,
        now: datetime,
    ) -> None:
        message = f"Gave up after {row['attempts']} attempts (the limit is {self.max_attempts})"
        set_values(
            conn,
            row["id"],
            {
                "state": ItemState.FAILED.value,
                "reason_code": "ATTEMPTS_EXHAUSTED",
                "reason_message": message,
                "updated_at": now,
            },
        )
        self._transition(
            conn,
            events,
            row,
            "failed",
            ItemState.FAILED.value,
            now=now,
            reason_code="ATTEMPTS_EXHAUSTED",
            detail=message,
        )

    def assert_leased(self, item: WorkItem) -> None:
        """The fence before a side effect: ``item``'s lease is still the current one and unexpired.

        Raises:
            LeaseLost: the lease ran out (even if nobody took the item yet) or another
                worker holds the item now; the caller must not act on it.
        """
        with self.engine.connect() as conn:
            row = self._row(conn, item.id)
        now = self.clock()
        if (
            item.lease_token is not None
            and row["lease_token"] == item.lease_token
            and row["state"] in ACTIVE_STATES
            and row["lease_expires_at"] is not None
            and row["lease_expires_at"] > now
        ):
            return
        expired = row["lease_token"] == item.lease_token and row["lease_expires_at"] is not None
        raise LeaseLost(
            "LEASE_LOST",
            f"work item {item.id} ({item.idempotency_key}): "
            + (
                f"the lease of {item.lease_owner} expired at {row['lease_expires_at'].isoformat()}"
                if expired
                else f"it is {row['state']} and held by {row['lease_owner'] or 'nobody'}"
            )
            + "; not acting on it",
        )

    def claimable(self, bot: str) -> int:
        """How many items of ``bot`` a claim could take now: pending, or leased with the lease run out."""
        now = self.clock()
        query = select(func.count()).where(
            work_items.c.bot == bot,
            (work_items.c.state == ItemState.PENDING.value)
            | (
                work_items.c.state.in_([s.value for s in ACTIVE_STATES])
                & (work_items.c.lease_expires_at < bindparam("w_now", type_=UTCDateTime))
            ),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query, {"w_now": now}).scalar_one())

    def heartbeat(self, item: WorkItem, lease_s: float | None = None) -> datetime:
        """Extends the lease of a claimed item; returns the new expiry.

        Raises:
            LeaseLost: the lease already expired and the item was taken back.
        """
        lease = timedelta(seconds=self.lease_s if lease_s is None else lease_s)
        with self._tx() as (conn, _events):
            now = self.clock()
            expires = now + lease
            # One fenced UPDATE; only when it changes nothing do we read the row to say why.
            changed = conn.execute(
                HEARTBEAT,
                {
                    "w_id": item.id,
                    "w_token": item.lease_token,
                    "v_lease_expires_at": expires,
                    "v_heartbeat_at": now,
                },
            ).rowcount
            if changed != 1:
                self._fenced_row(conn, item)
                raise LeaseLost("LEASE_LOST", f"work item {item.id}: the heartbeat changed no row")
        item.lease_expires_at = expires
        item.heartbeat_at = now
        return expires

    # -- recording ----------------------------------------------------------

    def checkpoint(self, item: WorkItem | int, name: str, value: str | None = None) -> None:
        """Records that side effect ``name`` happened, with its result (e.g. the PO number).

        Not fenced by the lease on purpose: a side effect that happened is a fact
        worth keeping even when the worker has lost its lease meanwhile.
        """
        item_id = item if isinstance(item, int) else item.id
        with self._tx() as (conn, events):
            now = self.clock()
            row = self._row(conn, item_id, lock=True)
            checkpoints = dict(row["checkpoints"] or {})
            checkpoints[name] = redact_text(value)
            set_values(conn, item_id, {"checkpoints": checkpoints, "updated_at": now})
            self._transition(
                conn,
                events,
                row,
                "checkpoint",
                row["state"],
                now=now,
                owner=row["lease_owner"],
                detail=f"{name}={checkpoints[name]}" if value is not None else name,
                audit_fields={"checkpoint": name, "value": checkpoints[name]},
            )

    def add_evidence(self, item: WorkItem | int, evidence: Iterable[Evidence]) -> None:
        """Appends evidence files (path and SHA-256) to the item and the audit log."""
        item_id = item if isinstance(item, int) else item.id
        new = [Evidence.model_validate(e) for e in evidence]
        if not new:
            return
        with self._tx() as (conn, events):
            now = self.clock()
            row = self._row(conn, item_id, lock=True)
            stored = list(row["evidence"] or []) + [e.model_dump() for e in new]
            set_values(conn, item_id, {"evidence": stored, "updated_at": now})
            self._transition(
                conn,
                events,
                row,
                "evidence",
                row["state"],
                now=now,
                owner=row["lease_owner"],
                detail=", ".join(e.path for e in new),
                audit_fields={"evidence": [e.model_dump() for e in new]},
            )
        if not isinstance(item, int):
            item.evidence.extend(new)

    def _finish(
        self,
        item: WorkItem,
        event_name: str,
        state: ItemState,
        *,
        keep_lease: bool = False,
        code: str | None = None,
        message: str | None = None,
        result: Mapping[str, Any] | None = None,
        attempts_delta: int = 0,
        lease_s: float | None = None,
        expect: frozenset[ItemState] = ACTIVE_STATES,
    ) -> WorkItem:
        values: dict[str, Any] = {"state": state.value}
        if not keep_lease:
            values.update(lease_owner=None, lease_token=None, lease_expires_at=None)
        if code is not None or message is not None:
            values.update(reason_code=code, reason_message=redact_text(message))
        if result is not None:
            values["result"] = json.loads(json.dumps(dict(result), default=str))
        with self._tx() as (conn, events):
            now = self.clock()
            values["updated_at"] = now
            if keep_lease:
                values["lease_expires_at"] = now + timedelta(
                    seconds=self.lease_s if lease_s is None else lease_s
                )
            statement = update_statement(
                tuple(sorted(values)), fenced=True, add_attempts=bool(attempts_delta)
            )
            params = {f"v_{name}": value for name, value in values.items()}
            params.update(w_id=item.id, w_token=item.lease_token, w_owner=item.lease_owner)
            if attempts_delta:
                params["v_attempts"] = attempts_delta
            # Fast path: the caller's copy says which state the row is in; the fence
            # (token, owner, state) in the WHERE makes the write a no-op otherwise.
            from_state = item.state.value
            row = None
            if item.lease_token is not None and item.state in expect:
                row = conn.execute(statement, {**params, "w_from": from_state}).mappings().first()
            if row is None:
                # Slow path: find out why (lease lost, wrong state, or a stale copy).
                current = self._fenced_row(conn, item)
                if ItemState(current["state"]) not in expect:
                    raise ValueError(
                        f"work item {item.id} is {current['state']}; {event_name} needs one of "
                        f"{', '.join(sorted(s.value for s in expect))}"
                    )
                from_state = current["state"]
                params["w_owner"] = current["lease_owner"]
                row = conn.execute(statement, {**params, "w_from": from_state}).mappings().one()
            self._transition(
                conn,
                events,
                row,
                event_name,
                state.value,
                now=now,
                owner=params["w_owner"],
                from_state=from_state,
                reason_code=code,
                detail=values.get("reason_message"),
            )
            fresh = self._item(row)
        # The caller's object follows the ledger, so the lease token stays usable.
        for name in (
            "state",
            "attempts",
            "lease_owner",
            "lease_token",
            "lease_expires_at",
            "result",
            "reason_code",
            "reason_message",
            "updated_at",
        ):
            setattr(item, name, getattr(fresh, name))
        return fresh

    def complete(self, item: WorkItem, result: Mapping[str, Any] | None = None) -> WorkItem:
        """Marks a claimed item done (once: a second call raises :class:`LeaseLost`)."""
        return self._finish(
            item, "done", ItemState.DONE, result=result, expect=frozenset({ItemState.IN_PROGRESS})
        )

    def business_exception(self, item: WorkItem, code: str, message: str) -> WorkItem:
        """Ends a claimed item as a business exception (bad data, rule breach); never retried."""
        return self._finish(
            item, "business_exception", ItemState.BUSINESS_EXCEPTION, code=code, message=message
        )

    def system_exception(self, item: WorkItem, code: str, message: str) -> WorkItem:
        """Records a failed attempt of a system kind; the worker keeps the lease to retry or fail it."""
        return self._finish(
            item,
            "system_exception",
            ItemState.SYSTEM_EXCEPTION,
            keep_lease=True,
            code=code,
            message=message,
            expect=frozenset({ItemState.IN_PROGRESS}),
        )

    def reattempt(self, item: WorkItem, lease_s: float | None = None) -> WorkItem:
        """Starts the next attempt of an item in ``system_exception`` (attempts + 1, lease renewed)."""
        return self._finish(
            item,
            "retry",
            ItemState.IN_PROGRESS,
            keep_lease=True,
            attempts_delta=1,
            lease_s=lease_s,
            expect=frozenset({ItemState.SYSTEM_EXCEPTION}),
        )

    def fail(self, item: WorkItem, code: str | None = None, message: str | None = None) -> WorkItem:
        """Ends a claimed item as ``failed``: its system exceptions used up the attempts."""
        return self._finish(item, "failed", ItemState.FAILED, code=code, message=message)
