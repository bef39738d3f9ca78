"""The transaction loop of procbots: claim an item, process it, record the outcome.

One worker handles one item at a time: it claims the item from the
:class:`~bots.runtime.ledger.Ledger` with a lease, keeps the lease alive with
heartbeats while the bot works, and records the outcome:

* the bot returns (optionally a result mapping): ``done``;
* the bot raises :class:`~bots.domain.errors.BusinessError`: ``business_exception``,
  never retried, evidence kept;
* anything else (``ApplicationError``, a Playwright timeout, a bug): recorded as a
  ``system_exception`` and retried with tenacity (exponential backoff with
  jitter, limits from ``settings.retry``); after the last attempt the item is
  ``failed`` and evidence of that last attempt is kept. Attempts are counted in
  the ledger, so crashes and restarts use up the same budget.

A crash (the process killed mid-item) leaves the lease to expire; the next claim
takes the item back, and the bot resumes after its last checkpoint
(``item.done_step(...)``), checking the portal before any side effect.

Two ways to run:

* :meth:`Runner.run`: synchronous, one item at a time (CSV/Excel/PEPPOL bots).
* :meth:`Runner.run_async`: N asyncio workers in one loop (browser bots: one
  Chromium, one context per worker). Each worker enters ``worker_setup()`` once
  (open a context, log in) and then claims items; ledger calls run in threads.

Example:
    >>> def key_order(item: WorkItem) -> dict[str, str]:
    ...     order = item.payload_as(PurchaseOrder)
    ...     po = item.done_step("po_created") or portal.find_or_create(order)
    ...     item.checkpoint("po_created", po)
    ...     return {"po_number": po}
    >>> Runner(Ledger.from_settings(), "purchase_orders", key_order).run()  # doctest: +SKIP
    RunSummary(bot='purchase_orders', claimed=12, done=11, business_exception=1, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bots.domain.errors import BusinessError, LeaseLost, as_bot_error, classify
from bots.runtime.breaker import CircuitBreaker, RunStopped
from bots.runtime.ids import new_run_id
from bots.runtime.ledger import Evidence, ItemState, Ledger, WorkItem

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["ItemOutcome", "OnError", "Process", "ProcessAsync", "RunSummary", "Runner", "default_owner"]

Process = Callable[[WorkItem], Mapping[str, Any] | None]
ProcessAsync = Callable[[WorkItem, Any], Awaitable[Mapping[str, Any] | None]]
OnError = Callable[
    [WorkItem, BaseException, Any], Iterable[Evidence] | Awaitable[Iterable[Evidence] | None] | None
]
WorkerSetup = Callable[[], AbstractAsyncContextManager[Any]]


def default_owner() -> str:
    """A lease owner name that tells an operator which machine and process holds an item."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ItemOutcome:
    """How one item ended in this run."""

    item_id: int
    idempotency_key: str
    state: str
    reason_code: str | None = None
    reason_message: str | None = None


@dataclass
class RunSummary:
    """Counts of one run by outcome, and the items that did not end ``done``."""

    bot: str
    run_id: str
    claimed: int = 0
    done: int = 0
    business_exception: int = 0
    failed: int = 0
    lease_lost: int = 0
    retries: int = 0
    released: int = 0
    stopped: str | None = None
    """Why the run stopped early (``PORTAL_UNAVAILABLE``, ``LOGIN_REJECTED``), if it did."""
    exceptions: list[ItemOutcome] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def exit_code(self) -> int:
        """0 when every claimed item was done, 1 when some ended in exceptions or the run stopped."""
        return 1 if (self.business_exception or self.failed or self.stopped) else 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for Prefect artifacts and ``--json`` output)."""
        return {
            "bot": self.bot,
            "run_id": self.run_id,
            "claimed": self.claimed,
            "done": self.done,
            "business_exception": self.business_exception,
            "failed": self.failed,
            "lease_lost": self.lease_lost,
            "retries": self.retries,
            "released": self.released,
            "stopped": self.stopped,
            "exceptions": [o.__dict__ for o in self.exceptions],
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _retryable(exc: BaseException) -> bool:
    # A lost lease means another worker owns the item now: retrying would race it.
    # A stopped run retries nothing: the portal is down or refuses the sign-in.
    return (
        classify(exc) == "system"
        and not isinstance(exc, LeaseLost | RunStopped)
        and isinstance(exc, Exception)
    )


class Runner:
    """Claims and processes the items of one bot, recording every outcome in the ledger.

    Args:
        ledger: where the items are.
        bot: the bot name items were added under.
        process: ``process(item) -> result mapping | None`` for :meth:`run`.
        settings: retry and lease settings (``settings.retry``, ``settings.ledger``)
            and the evidence folder; default the process settings.
        owner: lease owner name; default ``host:pid:random``.
        run_id: names the evidence folder ``evidence/<run_id>/<item id>/``.
        on_error: ``on_error(item, exc, worker_state)`` called on the final failure
            of an item (business or system), before it is recorded; it may return
            evidence (or be async in :meth:`run_async`). Without it, an async worker
            state with a ``page`` gets :func:`connectors.portal.evidence.capture_evidence`.
        sleep: the sleep used between retries (tests pass a no-op).
        breaker: stops :meth:`run_async` early when the portal is down or refuses
            the sign-in (see :mod:`bots.runtime.breaker`); items not finished go
            back to ``pending``.
    """

    def __init__(
        self,
        ledger: Ledger,
        bot: str,
        process: Process | None = None,
        *,
        settings: Settings | None = None,
        owner: str | None = None,
        run_id: str | None = None,
        on_error: OnError | None = None,
        sleep: Callable[[float], None] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if settings is None:
            from config.settings import get_settings

            settings = get_settings()
        self.ledger = ledger
        self.bot = bot
        self.process = process
        self.settings = settings
        self.owner = owner or default_owner()
        self.run_id = run_id or new_run_id()
        self.on_error = on_error
        self.breaker = breaker
        self.max_attempts = settings.retry.max_attempts
        self.lease_s = settings.ledger.lease_s
        self.heartbeat_s = settings.ledger.heartbeat_s
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._current: dict[str, WorkItem] = {}
        self._lost: set[int] = set()
        from config.logging import get_logger

        self.log = get_logger("runner").bind(bot=bot, run_id=self.run_id, owner=self.owner)

    # -- shared pieces ------------------------------------------------------

    def evidence_dir(self, item: WorkItem) -> Path:
        """``<evidence folder>/<run id>/<item id>/`` (created)."""
        folder = self.settings.paths.resolve("evidence") / self.run_id / str(item.id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _budget(self, item: WorkItem) -> int:
        # Claims after a crash already used attempts: the bound is across processes.
        return max(1, self.max_attempts - item.attempts + 1)

    def _wait(self) -> Any:
        retry = self.settings.retry
        return wait_exponential_jitter(initial=retry.initial_s, max=retry.max_s, jitter=retry.jitter_s)

    def _note_retry(self, summary: RunSummary, item: WorkItem) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            summary.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "system exception, retrying",
                item_id=item.id,
                attempt=item.attempts,
                reason=str(as_bot_error(exc)) if exc else None,
                wait_s=round(state.upcoming_sleep, 3),
            )

        return before_sleep

    def _record_system_exception(self, item: WorkItem, exc: BaseException) -> None:
        err = as_bot_error(exc)
        with self._lock:
            self.ledger.system_exception(item, err.code, err.message)

    def _record_success(self, summary: RunSummary, item: WorkItem, result: Mapping[str, Any] | None) -> None:
        with self._lock:
            self.ledger.complete(item, result=dict(result) if result is not None else None)
        summary.done += 1
        if self.breaker is not None:
            self.breaker.success()

    def _release(self, summary: RunSummary, item: WorkItem, stop: RunStopped) -> None:
        """The run stopped: the item goes back to ``pending`` for the next run."""
        with self._lock:
            self.ledger.release(item, f"run stopped: {stop}", refund_attempt=stop.refund)
        summary.released += 1
        summary.stopped = stop.code
        self.log.warning("run stopping, item back to pending", item_id=item.id, reason=str(stop))

    def _record_final(self, summary: RunSummary, item: WorkItem, exc: BaseException) -> None:
        err = as_bot_error(exc)
        if isinstance(exc, BusinessError):
            with self._lock:
                self.ledger.business_exception(item, err.code, err.message)
            summary.business_exception += 1
            state = ItemState.BUSINESS_EXCEPTION
            self.log.info("business exception", item_id=item.id, reason_code=err.code, reason=err.message)
        else:
            with self._lock:
                self.ledger.fail(item, err.code, err.message)
            summary.failed += 1
            state = ItemState.FAILED
            self.log.error(
                "system exception, attempts used up",
                item_id=item.id,
                reason_code=err.code,
                reason=err.message,
            )
        summary.exceptions.append(
            ItemOutcome(item.id, item.idempotency_key, state.value, err.code, item.reason_message)
        )

    def _lease_lost(self, summary: RunSummary, item: WorkItem, exc: BaseException) -> None:
        summary.lease_lost += 1
        self.log.warning("lease lost, item left to its new owner", item_id=item.id, reason=str(exc))

    def _save_evidence(self, item: WorkItem, evidence: Iterable[Evidence] | None) -> None:
        if evidence:
            self.ledger.add_evidence(item, list(evidence))

    # -- synchronous path ---------------------------------------------------

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            for item in list(self._current.values()):
                with self._lock:
                    if item.lease_token is None or item.id in self._lost:
                        continue
                    try:
                        self.ledger.heartbeat(item, self.lease_s)
                    except LeaseLost:
                        self._lost.add(item.id)
                    except Exception as exc:  # a busy database must not kill the heartbeat
                        self.log.warning("heartbeat failed", item_id=item.id, error=str(exc))

    def run(self, max_items: int | None = None) -> RunSummary:
        """Processes items until none is pending (or ``max_items`` were claimed).

        Returns:
            the :class:`RunSummary` of this run.
        """
        if self.process is None:
            raise ValueError("Runner.run needs a process function")
        summary = RunSummary(self.bot, self.run_id)
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat_loop, args=(stop,), name="procbots-heartbeat", daemon=True
        )
        beat.start()
        try:
            while max_items is None or summary.claimed < max_items:
                item = self.ledger.claim(self.bot, self.owner, self.lease_s, run_id=self.run_id)
                if item is None:
                    break
                summary.claimed += 1
                self._current["sync"] = item
                try:
                    self._process_one(summary, item)
                finally:
                    self._current.pop("sync", None)
        finally:
            stop.set()
            beat.join()
            summary.finished_at = datetime.now(UTC)
        return summary

    def _process_one(self, summary: RunSummary, item: WorkItem) -> None:
        assert self.process is not None
        process = self.process
        first = True

        def attempt() -> Mapping[str, Any] | None:
            nonlocal first
            if not first:
                with self._lock:
                    self.ledger.reattempt(item, self.lease_s)
            first = False
            try:
                return process(item)
            except Exception as exc:
                if _retryable(exc):
                    self._record_system_exception(item, exc)
                raise

        retrying = Retrying(
            stop=stop_after_attempt(self._budget(item)),
            wait=self._wait(),
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            before_sleep=self._note_retry(summary, item),
            reraise=True,
        )
        try:
            try:
                result = retrying(attempt)
            except LeaseLost as exc:
                self._lease_lost(summary, item, exc)
                return
            except Exception as exc:
                if self.on_error is not None:
                    try:
                        evidence = self.on_error(item, exc, None)
                        if not inspect.isawaitable(evidence):
                            self._save_evidence(item, evidence)
                    except Exception as hook_exc:  # evidence is best effort; the outcome is not
                        self.log.warning("evidence capture failed", item_id=item.id, error=str(hook_exc))
                self._record_final(summary, item, exc)
                return
            self._record_success(summary, item, result)
        except LeaseLost as exc:
            self._lease_lost(summary, item, exc)

    # -- asynchronous path (browser bots) -------------------------------------

    async def _heartbeat_task(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for item in list(self._current.values()):
                if item.lease_token is None or item.id in self._lost:
                    continue
                try:
                    await asyncio.to_thread(self._locked_heartbeat, item)
                except LeaseLost:
                    self._lost.add(item.id)
                except Exception as exc:
                    self.log.warning("heartbeat failed", item_id=item.id, error=str(exc))

    def _locked_heartbeat(self, item: WorkItem) -> None:
        with self._lock:
            if item.lease_token is not None:
                self.ledger.heartbeat(item, self.lease_s)

    async def run_async(
        self,
        *,
        workers: int,
        process: ProcessAsync,
        worker_setup: WorkerSetup | None = None,
        max_items: int | None = None,
    ) -> RunSummary:
        """Runs ``workers`` asyncio workers until no item is pending.

        Args:
            workers: how many items are processed at once (one browser context each).
            process: ``await process(item, worker_state)``; returns a result mapping or None.
            worker_setup: ``worker_setup()`` returns an async context manager entered
                once per worker (open a context and page, log in); what it yields
                is the ``worker_state`` given to ``process`` and ``on_error``.
            max_items: stop claiming after this many items in total.

        Browser bots do not call this themselves: :func:`bots.runtime.run.run_bot`
        (or :func:`bots.runtime.run.work`) runs it with the runtime's envelope and one
        browser context per worker.
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        summary = RunSummary(self.bot, self.run_id)
        beat = asyncio.create_task(self._heartbeat_task())
        try:
            await asyncio.gather(
                *(self._worker(n, summary, process, worker_setup, max_items) for n in range(workers))
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            summary.finished_at = datetime.now(UTC)
        return summary

    async def _worker(
        self,
        number: int,
        summary: RunSummary,
        process: ProcessAsync,
        worker_setup: WorkerSetup | None,
        max_items: int | None,
    ) -> None:
        owner = f"{self.owner}/w{number}"
        setup = worker_setup() if worker_setup is not None else _no_state()
        async with setup as state:
            while (max_items is None or summary.claimed < max_items) and not self._stopping(summary):
                summary.claimed += 1  # reserved before the await, so workers never overshoot
                item = await asyncio.to_thread(
                    self.ledger.claim, self.bot, owner, self.lease_s, run_id=self.run_id
                )
                if item is None:
                    summary.claimed -= 1
                    return
                self._current[owner] = item
                try:
                    await self._process_one_async(summary, item, process, state)
                finally:
                    self._current.pop(owner, None)

    def _stopping(self, summary: RunSummary) -> bool:
        if self.breaker is not None and self.breaker.open:
            summary.stopped = self.breaker.reason
            return True
        return False

    async def _process_one_async(
        self, summary: RunSummary, item: WorkItem, process: ProcessAsync, state: Any
    ) -> None:
        first = True
        begin_item = getattr(state, "begin_item", None)

        async def attempt() -> Mapping[str, Any] | None:
            nonlocal first
            if not first:
                if self.breaker is not None and self.breaker.open:
                    raise self.breaker.stopped(refund=False)
                await asyncio.to_thread(self._locked, self.ledger.reattempt, item, self.lease_s)
            first = False
            try:
                # Inside the try: a failure while preparing the attempt (e.g. restarting
                # the trace) is this attempt's system exception, recorded before a retry.
                if begin_item is not None:
                    await begin_item(item)
                return await process(item, state)
            except Exception as exc:
                if self.breaker is not None and _retryable(exc) and self.breaker.record(exc):
                    raise self.breaker.stopped(refund=True) from exc
                if _retryable(exc):
                    await asyncio.to_thread(self._record_system_exception, item, exc)
                raise

        async def async_sleep(seconds: float) -> None:
            await asyncio.sleep(seconds)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._budget(item)),
            wait=self._wait(),
            retry=retry_if_exception(_retryable),
            sleep=async_sleep,
            before_sleep=self._note_retry(summary, item),
            reraise=True,
        )
        try:
            try:
                result: Mapping[str, Any] | None = await retrying(attempt)
            except LeaseLost as exc:
                self._lease_lost(summary, item, exc)
                return
            except RunStopped as exc:
                await asyncio.to_thread(self._release, summary, item, exc)
                return
            except Exception as exc:
                await self._evidence_async(item, exc, state)
                await asyncio.to_thread(self._record_final, summary, item, exc)
                return
            await asyncio.to_thread(self._record_success, summary, item, result)
        except LeaseLost as exc:
            self._lease_lost(summary, item, exc)

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    async def _evidence_async(self, item: WorkItem, exc: BaseException, state: Any) -> None:
        try:
            if self.on_error is not None:
                evidence = self.on_error(item, exc, state)
                if inspect.isawaitable(evidence):
                    evidence = await evidence
            elif getattr(state, "page", None) is not None:
                from connectors.portal.evidence import capture_evidence

                evidence = await capture_evidence(state.page, self.evidence_dir(item))
            else:
                return
            await asyncio.to_thread(self._save_evidence, item, evidence)
        except Exception as hook_exc:  # evidence is best effort; the outcome is not
            self.log.warning("evidence capture failed", item_id=item.id, error=str(hook_exc))


@contextlib.asynccontextmanager
async def _no_state() -> AsyncIterator[None]:
    yield None
