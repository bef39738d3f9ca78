"""What every procbots flow shares: logging, artifacts, run summaries, the task runner.

The bots' flows come from one factory over the registry (:mod:`flows.bot_flows`); the
operations flows (:mod:`flows.healthcheck`) are written by hand. Either way:

- **Parameters are one pydantic model** passed as the single argument ``params``,
  every field with a plain default (``""``/``0`` for "use the setting", never
  ``None``) and a ``Field(description=...)`` written for a person: the Prefect UI
  renders it as a form with help text; ``prefect.yaml`` sets deployment defaults
  under ``parameters: {params: {...}}``.
- **Tasks are few** (per bot run or per check, never per item) and run on
  :func:`capped_task_runner`, because Prefect's default thread pool is unbounded
  and every browser context is a few hundred MB.
- **Logs** go through :func:`flow_logging`: one readable sentence per event
  (``po created: po_number=PO-000123``) in the run's logs; audit records stay in
  the audit file.
- **Artifacts**: :func:`publish_summary` (markdown summary, table of rows, links).
- **Final state**: :func:`flows.outcome.finish`. Business exceptions leave the run
  ``Completed``; items failed on system errors make it ``Failed`` with a one-line
  message (no traceback as the run's last log line: see :class:`RunFailed`).
- **Browser sessions** against a portal are limited across all machines by the
  global concurrency limit :data:`PORTAL_BROWSER_SESSIONS` (:func:`browser_session_slots`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bots.registry import BotParameters, new_run_id
from config.logging import LOGGER_NAME, bind_context, configure_logging, get_logger, redact

if TYPE_CHECKING:
    import structlog
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner

    from config.settings import Settings

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "LONDON",
    "PORTAL_BROWSER_SESSIONS",
    "FlowParameters",
    "RunFailed",
    "RunSummary",
    "artifact_key",
    "browser_session_slots",
    "capped_task_runner",
    "current_flow_run_id",
    "flow_logging",
    "flow_run_ui_url",
    "london",
    "publish_summary",
    "quiet_engine_failures",
    "render_summary_markdown",
]

LONDON = ZoneInfo("Europe/London")
# Threads for a flow's tasks. Each task may hold a browser context, so this is
# small on purpose; raise it per flow with capped_task_runner(n).
DEFAULT_MAX_WORKERS = 4
# Global concurrency limit (Prefect) on browser sessions against the portal, shared
# by every run on every machine; created by `procbots serve --setup` with
# `portal.max_sessions` slots.
PORTAL_BROWSER_SESSIONS = "portal-browser-sessions"

_KEY_INVALID = re.compile(r"[^a-z0-9]+")


class FlowParameters(BotParameters):
    """Base of a hand-written flow's parameter model (the bots' are in their registry entries).

    Example:
        >>> class HealthcheckParameters(FlowParameters):
        ...     timeout_s: float = Field(5.0, description="Seconds to wait for the portal")
    """


def capped_task_runner(max_workers: int = DEFAULT_MAX_WORKERS) -> TaskRunner[PrefectFuture[Any]]:
    """A thread-pool task runner with a hard cap on threads (Prefect's default has none).

    Example:
        >>> runner = capped_task_runner(2)
        >>> runner._max_workers
        2
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    from prefect.task_runners import ThreadPoolTaskRunner

    runner: TaskRunner[PrefectFuture[Any]] = ThreadPoolTaskRunner(max_workers=max_workers)  # type: ignore[assignment]
    return runner


def current_flow_run_id() -> UUID | None:
    """The id of the flow run this code runs in, or ``None`` outside a run."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_context = FlowRunContext.get()
    if flow_context is not None and flow_context.flow_run is not None:
        return flow_context.flow_run.id
    task_context = TaskRunContext.get()
    if task_context is not None and task_context.task_run.flow_run_id is not None:
        return task_context.task_run.flow_run_id
    return None


def flow_logging(
    bot: str, settings: Settings | None = None, *, run_id: str | None = None
) -> structlog.stdlib.BoundLogger:
    """Configures procbots logging for this run and returns the bot's logger.

    Lines are sentences (``po created: po_number=PO-000123``, see
    :class:`config.logging.SentenceRenderer`) bound to ``run_id`` (the one
    run-id format, :func:`bots.registry.new_run_id`), ``flow_run_id`` and ``bot``.
    They reach the run's logs either through Prefect's own handler
    (``PREFECT_LOGGING_EXTRA_LOGGERS=procbots``, set for workers by
    ``prefect.yaml``) or through the bridge in ``config.logging``; audit records
    do not (they are in the audit file).

    Example:
        >>> log = flow_logging("purchase_orders")  # doctest: +SKIP
        >>> log.info("po created", po_number="PO-000123")  # doctest: +SKIP
    """
    # Child processes (browser helpers, subprocess bots) inherit it; this process's
    # Prefect logging is already set up, which is what the bridge is for.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", LOGGER_NAME)
    configure_logging(settings, renderer="sentence")
    owner = logging.getLogger(LOGGER_NAME)
    if owner.level == logging.NOTSET:  # never inherit the root's WARNING: bot INFO lines matter
        owner.setLevel(logging.INFO)
    quiet_engine_failures()
    flow_run_id = current_flow_run_id()
    bind_context(
        run_id=run_id or new_run_id(flow_run_id),
        bot=bot,
        flow_run_id=str(flow_run_id) if flow_run_id else None,
    )
    return get_logger(bot)


class RunFailed(Exception):
    """The data of a ``Failed`` state procbots returns: the run's one-line message and summary.

    Prefect turns a failed state's data into the exception it raises at the end of
    the run; an exception here (not a dict) is what it expects.
    """

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message, summary or {})
        self.message = message
        self.summary = summary or {}

    def __str__(self) -> str:
        return self.message


class _QuietEngineFailure(logging.Filter):
    """Makes Prefect's closing line of a run procbots failed on purpose a sentence.

    A Failed run's engine ends with ``Engine execution exited with unexpected
    exception`` and the traceback of the state's exception, as the newest line of
    the run's logs. For a run that failed with a message (items failed, input
    refused) that traceback says nothing: it becomes ``The run ended Failed: <message>``.
    Other exceptions (bugs) keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_failed_on_purpose(exc):
            record.msg = "The run ended Failed: %s"
            record.args = (str(exc),)
            record.exc_info = None
            record.exc_text = None
        return True


def _is_failed_on_purpose(exc: BaseException) -> bool:
    from prefect.exceptions import FailedRun

    return isinstance(exc, RunFailed | FailedRun)


def quiet_engine_failures() -> None:
    """Installs :class:`_QuietEngineFailure` on Prefect's flow-run logger (once per process)."""
    logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, _QuietEngineFailure) for f in logger.filters):
        logger.addFilter(_QuietEngineFailure())


def london(moment: datetime | None) -> str:
    """A UTC-aware moment shown as Europe/London wall time with GMT/BST.

    Example:
        >>> london(datetime(2026, 7, 1, 6, 0, tzinfo=UTC))
        '2026-07-01 07:00:00 BST'
    """
    if moment is None:
        return ""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: procbots times must be timezone-aware")
    return moment.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S %Z")


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from free text.

    Example:
        >>> artifact_key("Purchase_Orders", "Summary")
        'purchase-orders-summary'
    """
    key = "-".join(p for p in (_KEY_INVALID.sub("-", part.lower()).strip("-") for part in parts) if p)
    if not key:
        raise ValueError(f"artifact key from {parts!r} is empty after keeping only a-z, 0-9 and '-'")
    return key


def _cell(value: Any) -> Any:
    """A table cell Prefect can store and a person can read."""
    if isinstance(value, datetime):
        return london(value)
    if isinstance(value, Decimal | Path | date | UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _link_target(target: Path | str) -> str:
    """A link a browser opens: the console's address of a file when ``console.public_url`` is set."""
    if isinstance(target, Path):
        from config.settings import get_settings
        from connectors.console_links import console_link

        return console_link(target, get_settings())
    return target


def _md_escape(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_summary_markdown(
    title: str,
    counts: Mapping[str, int],
    rows: list[dict[str, Any]],
    links: Mapping[str, Path | str],
    *,
    at: datetime | None = None,
    message: str | None = None,
    max_rows: int = 50,
) -> str:
    """The markdown summary of a run: counts, the first rows, links (secrets redacted)."""
    at = at or datetime.now(UTC)
    lines = [f"# {_md_escape(title)}", "", f"_Finished {london(at)}_", ""]
    if message:
        lines += [f"**{_md_escape(message)}**", ""]
    lines += ["| Outcome | Count |", "|---|---:|"]
    lines += [f"| {_md_escape(name)} | {count} |" for name, count in counts.items()]
    lines.append("")
    if rows:
        columns = list(dict.fromkeys(col for row in rows for col in row))
        lines += ["| " + " | ".join(map(_md_escape, columns)) + " |", "|" + "---|" * len(columns)]
        for row in rows[:max_rows]:
            lines.append("| " + " | ".join(_md_escape(_cell(row.get(c, ""))) for c in columns) + " |")
        if len(rows) > max_rows:
            lines.append(f"\n_{len(rows) - max_rows} more rows in the table artifact._")
        lines.append("")
    if links:
        lines += ["## Links", ""]
        lines += [f"- [{_md_escape(name)}]({_link_target(target)})" for name, target in links.items()]
    text: str = redact("\n".join(lines) + "\n")
    return text


def publish_summary(
    key: str,
    title: str,
    counts: Mapping[str, int],
    rows: list[dict[str, Any]],
    links: Mapping[str, Path | str],
    *,
    message: str | None = None,
    table_name: str = "items",
    tables: Mapping[str, list[dict[str, Any]]] | None = None,
    table_titles: Mapping[str, str] | None = None,
) -> dict[str, UUID]:
    """Publishes a run's summary as Prefect artifacts; returns their ids by kind.

    Creates ``<key>-summary`` (markdown), ``<key>-<table_name>`` (table of
    ``rows``) and one ``<key>-link-<name>`` link artifact per link (paths become
    ``file://`` URIs), and ``<key>-<name>`` for each of ``tables``. Keys are made safe
    with :func:`artifact_key`; every value is redacted, so no secret reaches an artifact.

    Example:
        >>> publish_summary(  # doctest: +SKIP
        ...     "invoice-matching", "Invoice matching", {"approve": 12, "hold": 2},
        ...     rows=[{"invoice_number": "INV-1", "decision": "hold", "reason": "NOT_RECEIVED"}],
        ...     links={"report": Path("var/outbox/matching.xlsx")},
        ... )
    """
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    base = artifact_key(key)
    ids: dict[str, UUID] = {}
    markdown = render_summary_markdown(title, counts, rows, links, message=message)
    # The artifact functions are sync here (no event loop); their hints include the async form.
    ids["markdown"] = create_markdown_artifact(  # type: ignore[assignment]
        markdown, key=f"{base}-summary", description=title
    )
    table = redact([{column: _cell(value) for column, value in row.items()} for row in rows])
    ids["table"] = create_table_artifact(  # type: ignore[assignment]
        table, key=artifact_key(base, table_name), description=f"{title}: {table_name}"
    )
    for name, extra in (tables or {}).items():
        ids[f"table:{name}"] = create_table_artifact(  # type: ignore[assignment]
            redact([{column: _cell(value) for column, value in row.items()} for row in extra]),
            key=artifact_key(base, name),
            description=f"{title}: {(table_titles or {}).get(name, name.replace('-', ' '))}",
        )
    for name, target in links.items():
        ids[f"link:{name}"] = create_link_artifact(  # type: ignore[assignment]
            redact(_link_target(target)), link_text=name, key=artifact_key(base, "link", name)
        )
    return ids


def flow_run_ui_url(flow_run_id: UUID | str | None) -> str | None:
    """Where a person opens this flow run in the Prefect UI (``PREFECT_UI_URL``)."""
    if flow_run_id is None:
        return None
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


@dataclass
class RunSummary:
    """What a bot run did, in numbers and rows, for artifacts, alerts and the final state.

    ``counts`` maps an outcome (``done``, ``business_exception``, ``failed``, ...)
    to a number of work items; ``rows`` are the items people should look at
    (usually the exceptions), ``links`` the reports, evidence and audit log.
    """

    bot: str
    title: str
    counts: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, Path | str] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    note: str = ""

    @property
    def business_exceptions(self) -> int:
        return self.counts.get("business_exception", 0)

    @property
    def system_failures(self) -> int:
        """Items given up on after every retry of a system exception."""
        return self.counts.get("failed", 0)

    def message(self) -> str:
        """One line for the run state, e.g. ``"12 done, 3 business_exception"``."""
        parts = [f"{count} {name}" for name, count in self.counts.items() if count]
        text = f"{self.title}: " + (", ".join(parts) if parts else "nothing to do")
        return f"{text}; {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the flow's return value)."""
        return {
            "bot": self.bot,
            "title": self.title,
            "counts": dict(self.counts),
            "exceptions": len(self.rows),
            "links": {name: _link_target(target) for name, target in self.links.items()},
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat(),
        }


@contextmanager
def browser_session_slots(slots: int = 1, *, timeout_s: float | None = 600) -> Iterator[None]:
    """Holds ``slots`` of the portal's browser-session limit for the ``with`` block.

    Across every run on every machine at most ``portal.max_sessions`` browser
    sessions are open against the portal. When the limit was never created (a
    laptop without ``procbots serve --setup``) the block runs unlimited.

    Example:
        >>> with browser_session_slots(2):  # doctest: +SKIP
        ...     run_bot_with_two_contexts()
    """
    from prefect.concurrency.sync import concurrency

    with concurrency(PORTAL_BROWSER_SESSIONS, occupy=slots, timeout_seconds=timeout_s, strict=False):
        yield
