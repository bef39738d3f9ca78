"""What a bot's ``process`` gets for one work item: its typed payload and the exactly-once step helper.

A side effect in the portal (raise a PO, upload a contract, approve an invoice)
must happen once per item, even when a worker is killed, paused or loses its
lease half way. :meth:`Item.once` is the one way to do it::

    step = await item.once(
        "po_created",
        find=lambda: po_list.find_one(ref),        # already in the portal? (None: no)
        do=lambda: new_po.create(order),           # act; returns the value to keep (the PO number)
        verify=lambda po: detail.check(po, order), # optional: read back what the portal holds
    )
    step.value, step.found                         # "PO-000123", False

In order: a step already checkpointed is not done again; otherwise ``find``
looks in the target; only when it finds nothing does the **fence** run (this
worker's lease is still the current one and has not run out, else
:class:`~bots.domain.errors.LeaseLost`) and then ``do``; the value is
checkpointed in the ledger at once, audited, and then ``verify`` runs. The
portal session runs the same fence right before every form post, so a worker
whose lease was taken while it filled the form never submits it.

Example:
    >>> async def process(item, page):  # doctest: +SKIP
    ...     order = item.payload
    ...     step = await item.once("po_created", find=..., do=...)
    ...     return {"po_number": step.value}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from bots.runtime.ledger import Ledger, WorkItem
from connectors.audit import audit_event

__all__ = ["Item", "Step"]

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Step:
    """How a step ended: its value, and whether it was found in the target or done earlier."""

    name: str
    value: str
    found: bool = False
    """The target already held it (an earlier run, or by hand): this run did not act."""
    earlier: bool = False
    """The ledger had it checkpointed already: nothing was looked up or done now."""


def found_step(name: str) -> str:
    """The checkpoint recording that step ``name`` was found in the target, not done by the bot."""
    return f"{name}.found"


class Item(Generic[P]):
    """One claimed work item as a bot sees it."""

    def __init__(
        self, work: WorkItem, payload: P, *, ledger: Ledger, bot: str, run_id: str, key_name: str
    ) -> None:
        self.work = work
        self.payload = payload
        self.ledger = ledger
        self.bot = bot
        self.run_id = run_id
        self.key_name = key_name

    @property
    def id(self) -> int:
        """The ledger id."""
        return self.work.id

    @property
    def key(self) -> str:
        """The idempotency key (requisition reference, contract id ...)."""
        return self.work.idempotency_key

    @property
    def attempts(self) -> int:
        """Attempts used so far, this one included."""
        return self.work.attempts

    def done_step(self, name: str) -> str | None:
        """The value checkpointed for step ``name``, or None when it has not happened."""
        return self.work.done_step(name)

    async def checkpoint(self, name: str, value: str | None = None) -> None:
        """Records, durably and now, that step ``name`` happened (with its value)."""
        await asyncio.to_thread(self.work.checkpoint, name, value)

    async def fence(self) -> None:
        """Raises :class:`~bots.domain.errors.LeaseLost` unless this worker still holds the item."""
        await asyncio.to_thread(self.ledger.assert_leased, self.work)

    def audit(self, event: str, **fields: Any) -> None:
        """An audit event about this item (bot, run, item id and key added)."""
        named: dict[str, Any] = {self.key_name: self.key, **fields}
        audit_event(event, bot=self.bot, run_id=self.run_id, item_id=self.id, **named)

    async def once(
        self,
        name: str,
        *,
        do: Callable[[], Awaitable[str]],
        find: Callable[[], Awaitable[str | None]] | None = None,
        verify: Callable[[str], Awaitable[None]] | None = None,
        audit: dict[str, Any] | None = None,
    ) -> Step:
        """Does step ``name`` exactly once (see the module text); returns how it ended.

        Args:
            name: the checkpoint name, e.g. ``po_created``.
            do: performs the side effect; returns the value to keep (e.g. the PO number).
            find: looks for the result in the target; its value, or None when absent.
            verify: checks the target after the step (raise a ``BusinessError`` on a mismatch).
            audit: more fields for the step's audit event.

        Raises:
            LeaseLost: the lease was lost before ``do``: nothing was done.
        """
        value = self.done_step(name)
        step: Step
        if value is not None:
            step = Step(name, value, found=self.done_step(found_step(name)) is not None, earlier=True)
        else:
            existing = await find() if find is not None else None
            if existing is not None:
                await self.checkpoint(found_step(name), existing)
                await self.checkpoint(name, existing)
                self.audit(f"{name}.found", value=existing, **(audit or {}))
                step = Step(name, existing, found=True)
            else:
                await self.fence()
                made = await do()
                # Recorded before anything else can fail: a retry must find it, not do it again.
                await self.checkpoint(name, made)
                self.audit(name, value=made, **(audit or {}))
                step = Step(name, made)
        if verify is not None:
            await verify(step.value)
        return step
