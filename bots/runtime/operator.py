"""Operator actions on work items: release, retry, resolve, replace the payload and retry.

Each is one audited change under the operator's name (the OS user unless given, e.g. the
console's signed-in person) and their reason, in the item's history and the audit log.
:class:`OperatorActions` is a mixin of :class:`bots.runtime.ledger.Ledger`, which provides
the transaction, row and transition helpers it uses; call these as ``ledger.retry(...)``.
The payload and redaction helpers here are shared with the ledger's filing of items.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Connection, RowMapping

from bots.runtime.schema import ACTIVE_STATES, ItemState, WorkItem
from bots.runtime.statements import set_values

__all__ = ["REQUEUE", "OperatorActions", "os_user", "payload_json", "payload_sha256", "redact_text"]

Events = list[tuple[str, dict[str, Any]]]


_RETRYABLE_BY_OPERATOR = frozenset(
    {ItemState.BUSINESS_EXCEPTION, ItemState.FAILED, ItemState.NEEDS_REVIEW, ItemState.SYSTEM_EXCEPTION}
)
_RETRY_REFUSAL = (
    "is {state}: only business_exception, failed, needs_review or abandoned system_exception "
    "items can be retried"
)


def _retryable(row: RowMapping, now: datetime) -> bool:
    """An item an operator may retry or resolve: an exception, or a system exception whose lease ran out."""
    state = ItemState(row["state"])
    if state not in _RETRYABLE_BY_OPERATOR:
        return False
    expires = row["lease_expires_at"]
    return not (state is ItemState.SYSTEM_EXCEPTION and expires is not None and expires > now)


# The columns an operator's retry sets: back to the queue, first in line, counts afresh.
REQUEUE: dict[str, Any] = {
    "state": ItemState.PENDING.value,
    "attempts": 0,
    "lease_expiries": 0,
    "lease_owner": None,
    "lease_token": None,
    "lease_expires_at": None,
    "reason_code": None,
    "reason_message": None,
    "claim_rank": 0,
}


def redact_text(value: str | None) -> str | None:
    """``value`` with secrets masked (:func:`config.logging.redact`), None kept."""
    if value is None:
        return None
    from config.logging import redact

    redacted: str = redact(value)
    return redacted


def os_user() -> str:
    """The operating-system user running this process: the operator of a CLI action."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid-{os.getuid()}"


def payload_sha256(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a payload's canonical JSON (sorted keys, no spaces): names a version of it."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def payload_json(payload: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(payload, BaseModel):
        dumped: dict[str, Any] = payload.model_dump(mode="json")
        return dumped
    # Round-trip through JSON now, so a payload that cannot be stored fails at add().
    loaded: dict[str, Any] = json.loads(json.dumps(dict(payload), default=str))
    return loaded


class OperatorActions:
    """The operator's actions of :class:`~bots.runtime.ledger.Ledger` (a mixin)."""

    clock: Callable[[], datetime]
    _tx: Callable[[], AbstractContextManager[tuple[Connection, Events]]]
    _row: Callable[..., RowMapping]
    _item: Callable[[Mapping[Any, Any]], WorkItem]
    _transition: Callable[..., None]
    _finish: Callable[..., WorkItem]

    def release(
        self,
        item: WorkItem | int,
        reason: str | None = None,
        *,
        operator: str | None = None,
        refund_attempt: bool = False,
    ) -> WorkItem:
        """Gives a leased item back to ``pending`` without counting an expiry.

        With a claimed :class:`WorkItem` the release is fenced by its lease (a
        worker shutting down); with an id it is an operator's release of a stuck
        item, recorded under ``operator`` (default: the OS user) with ``reason``.
        ``refund_attempt`` gives back the attempt its claim counted: the run stopped
        (portal down, sign-in refused) before the item could really be tried.
        """
        if isinstance(item, WorkItem):
            return self._finish(
                item,
                "released",
                ItemState.PENDING,
                message=reason,
                attempts_delta=-1 if refund_attempt and item.attempts > 0 else 0,
            )
        return self._operator_action(
            item,
            "released",
            operator=operator,
            reason=reason,
            allowed=lambda row, now: ItemState(row["state"]) in ACTIVE_STATES,
            refusal="is {state}, not leased: nothing to release",
            values={
                "state": ItemState.PENDING.value,
                "lease_owner": None,
                "lease_token": None,
                "lease_expires_at": None,
            },
            default_reason="released by an operator",
        )

    def retry(self, item_id: int, reason: str | None = None, *, operator: str | None = None) -> WorkItem:
        """An operator's retry: back to ``pending``, first in line, with fresh attempt and expiry counts.

        The next run of the item's bot claims it before the other pending items
        (whatever file that run was started for). Recorded under ``operator``
        (default: the OS user) with ``reason``.
        """
        return self._operator_action(
            item_id,
            "requeued",
            operator=operator,
            reason=reason,
            allowed=_retryable,
            refusal=_RETRY_REFUSAL,
            values=dict(REQUEUE),
            default_reason="retried by an operator",
            requeue=True,
        )

    def resolve(self, item_id: int, note: str, *, operator: str | None = None) -> WorkItem:
        """An operator's resolution: a person dealt with the item by hand; it is ``done``.

        For a business exception, failed or needs-review item (or an abandoned
        system exception). The result records who resolved it, their note and the
        reason code it had; the history keeps the reason too.
        """
        if not note or not note.strip():
            raise ValueError(f"work item {item_id}: resolving needs a note saying what was done")
        name = operator or os_user()
        return self._operator_action(
            item_id,
            "resolved",
            operator=name,
            reason=note,
            allowed=_retryable,
            refusal="is {state}: only business_exception, failed, needs_review or abandoned "
            "system_exception items can be resolved",
            values={
                "state": ItemState.DONE.value,
                "reason_code": None,
                "reason_message": None,
                "lease_owner": None,
                "lease_token": None,
                "lease_expires_at": None,
            },
            result=lambda row: {
                "resolved_by": name,
                "note": redact_text(note),
                "reason_code": row["reason_code"],
                "reason_message": row["reason_message"],
            },
            default_reason=note,
        )

    def replace_payload_and_retry(
        self,
        item_id: int,
        payload: BaseModel | Mapping[str, Any],
        reason: str | None = None,
        *,
        operator: str | None = None,
    ) -> WorkItem:
        """An operator's correction: new payload, then a retry (first in line).

        Allowed where :meth:`retry` is, and for a pending item. The audit record
        keeps the old and the new payload with their SHA-256, the operator and the
        reason. The ledger does not know the bot's model: validate ``payload``
        before (the console validates it against the bot's payload type).
        """
        body = payload_json(payload)
        return self._operator_action(
            item_id,
            "payload_replaced",
            operator=operator,
            reason=reason,
            allowed=lambda row, now: ItemState(row["state"]) is ItemState.PENDING or _retryable(row, now),
            refusal=_RETRY_REFUSAL,
            values={**REQUEUE, "payload": body},
            default_reason="payload replaced by an operator",
            requeue=True,
            audit=lambda row: {
                "old_payload_sha256": payload_sha256(row["payload"]),
                "new_payload_sha256": payload_sha256(body),
                "old_payload": row["payload"],
                "new_payload": body,
            },
        )

    def _operator_action(
        self,
        item_id: int,
        event_name: str,
        *,
        operator: str | None,
        reason: str | None,
        allowed: Callable[[RowMapping, datetime], bool],
        refusal: str,
        values: Mapping[str, Any],
        default_reason: str,
        requeue: bool = False,
        result: Callable[[RowMapping], dict[str, Any]] | None = None,
        audit: Callable[[RowMapping], dict[str, Any]] | None = None,
    ) -> WorkItem:
        """One audited change an operator makes to an item, under their name and with their reason."""
        name = operator or os_user()
        with self._tx() as (conn, events):
            now = self.clock()
            row = self._row(conn, item_id, lock=True)
            if not allowed(row, now):
                leased = requeue and ItemState(row["state"]) in ACTIVE_STATES
                raise ValueError(
                    f"work item {item_id} "
                    + refusal.format(state=row["state"])
                    + ("; release it first" if leased else "")
                )
            changes: dict[str, Any] = {**values, "updated_at": now}
            if requeue:
                changes["retry_requested_at"] = now
            if result is not None:
                changes["result"] = result(row)
            fresh = set_values(conn, item_id, changes)
            said = redact_text(reason) or default_reason
            fields: dict[str, Any] = {"operator": name, "reason": said}
            if row["lease_owner"]:
                fields["lease_owner_was"] = row["lease_owner"]
            if audit is not None:
                fields.update(audit(row))
            self._transition(
                conn,
                events,
                row,
                event_name,
                fresh["state"],
                now=now,
                owner=name,
                attempt=fresh["attempts"],
                reason_code=row["reason_code"],
                detail=said,
                audit_fields=fields,
            )
            return self._item(fresh)
