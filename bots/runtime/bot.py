"""A bot is a declaration: its name, payload model, key, result columns and ``process``.

The runtime does everything else: the browser, the sign-in, the per-item
envelope (re-sign-in, evidence, retries), exactly-once steps, the circuit
breaker, the ledger and the results. A bot module holds only its own rules::

    class ReceiptBot(Bot[Receipt]):
        name = "goods_receipts"
        title = "Goods receipts"
        payload = Receipt
        key_name = "grn_number"

        def key(self, payload: Receipt) -> str:
            return payload.grn_number

        async def process(self, item: Item[Receipt], page: PortalSession) -> dict[str, str]:
            step = await item.once("receipt_posted", find=..., do=...)
            return {"receipt": step.value}

and runs with ``run_bot(ReceiptBot, receipts)`` (see :mod:`bots.runtime.run`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from bots.domain.errors import BusinessError
from bots.runtime.results import ResultRow, item_fields
from config.logging import get_logger

if TYPE_CHECKING:
    from bots.runtime.item import Item
    from bots.runtime.ledger import Ledger, WorkItem
    from config.settings import Settings
    from connectors.portal.pages.base import PortalSession

__all__ = ["Bot", "RunContext"]

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class RunContext:
    """What a bot may use during a run."""

    settings: Settings
    ledger: Ledger
    run_id: str
    portal_url: str
    dry_run: bool = False


class Bot(Generic[P]):
    """The base of a bot declaration.

    Class attributes:
        name: the ledger's bot name (``purchase_orders``).
        title: how reports and summaries name the bot.
        payload: the pydantic model of one item's payload.
        key_name: what the idempotency key is called in logs and audit events.
        session_retries: times an item starts again at once when the portal
            session ended mid-item (nothing was posted), before the runner's retry.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    payload: ClassVar[type[BaseModel]]
    key_name: ClassVar[str] = "idempotency_key"
    session_retries: ClassVar[int] = 2

    def __init__(self, run: RunContext, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no options: {', '.join(options)}")
        self.run = run
        self.log = get_logger(self.name).bind(run_id=run.run_id, dry_run=run.dry_run)

    def key(self, payload: P) -> str:
        """The idempotency key of one payload."""
        raise NotImplementedError

    def check(self, item: Item[P]) -> None:
        """The item's own checks, before the portal (raise a ``BusinessError``); default none.

        A run whose claimable items all fail here needs no browser (see
        :func:`bots.runtime.run.work`); ``process`` should call it first.
        """

    async def process(self, item: Item[P], page: PortalSession) -> Mapping[str, Any] | None:
        """Does one item in the portal; returns the item's result (kept in the ledger).

        Raise :class:`~bots.domain.errors.BusinessError` for bad data or a broken
        rule (never retried); anything else is a system error (retried, evidence kept).
        """
        raise NotImplementedError

    def wants_evidence(self, error: BusinessError) -> bool:
        """Whether the page is kept as evidence for this business error (default: no)."""
        return False

    def done_status(self, result: Mapping[str, Any], earlier: bool) -> str:
        """The status of a ``done`` item in the results (``earlier``: done before this run)."""
        return "Done in an earlier run" if earlier else "Done"

    def result_row(self, payload: P, item: WorkItem | None, earlier: bool) -> ResultRow:
        """One row of the results; bots override it to add their own columns."""
        done = self.done_status(item.result or {}, earlier) if item is not None else ""
        return ResultRow(**item_fields(item, done))
