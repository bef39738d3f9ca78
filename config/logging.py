"""The one logger setup of procbots: structlog over stdlib logging, with redaction.

Every procbots log line is a structlog event rendered as one JSON object per line
(or as coloured console text when stderr is a terminal), carrying the run context
bound with :func:`bind_context` (``run_id``, ``bot``, ``item_id``, ``actor``) and
an ISO-8601 UTC timestamp.

Secrets never leave the process through a log line: a redaction step removes the
values of secret-looking keys (``password``, ``token``, ``cookie`` ...) and
replaces every known secret *value* (all ``SecretStr`` values of the settings,
plus anything given to :func:`register_secret`) wherever it appears, in the
message, in keyword arguments, in nested dicts/lists/tuples and in exception
text.

Events go through the stdlib logger ``procbots`` (``propagate=False``), so any
handler attached to it sees only redacted, rendered lines. Inside a Prefect flow
or task run the lines also reach the Prefect UI: either because Prefect attaches
its API handler to ``procbots`` (``PREFECT_LOGGING_EXTRA_LOGGERS=procbots``), or,
when it did not, through a small bridge handler that forwards to Prefect's API
handler only while a run context exists (and never imports Prefect itself).

Example:
    >>> from config.logging import bind_context, configure_logging, get_logger
    >>> configure_logging(renderer="json")
    >>> bind_context(run_id="r-1", bot="purchase_orders")
    >>> get_logger().info("po created", po_number="PO-000123")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

import structlog

from config.redaction import (
    REDACTED,
    SECRET_KEY_PATTERN,
    redact,
    register_secret,
    registered_secrets,
    secrets_from_settings,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "AUDIT_LOGGER_NAME",
    "LOGGER_NAME",
    "REDACTED",
    "SECRET_KEY_PATTERN",
    "Redactor",
    "SentenceRenderer",
    "bind_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redact",
    "register_secret",
    "registered_secrets",
    "secrets_from_settings",
]

LOGGER_NAME = "procbots"
AUDIT_LOGGER_NAME = f"{LOGGER_NAME}.audit"


class Redactor:
    """structlog processor: masks secrets in the whole event dict, recursively."""

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        redacted: MutableMapping[str, Any] = redact(dict(event_dict))
        return redacted


def _utc_iso_timestamp() -> structlog.processors.TimeStamper:
    return structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")


def _mark_rendered(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any] | str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # The rendered line goes to stdlib as the message; the marker tells our filter
    # the record is already redacted. ``exc_info=False`` because the traceback is
    # already in the (redacted) line, and stdlib's ``Logger.exception`` would
    # otherwise append the raw one.
    return (event_dict,), {"extra": {"procbots_rendered": True}, "exc_info": False}


class _RedactForeignRecords(logging.Filter):
    """Redacts records logged straight through stdlib (``logging.getLogger('procbots.x')``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "procbots_rendered", False):
            return True
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        record.procbots_rendered = True
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (pytest and typer swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.procbots_owned = True

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _PrefectBridge(logging.Handler):
    """Forwards to Prefect's API log handler while a flow or task run is active.

    Does nothing when Prefect was never imported (then no run can be active) or
    when Prefect itself attached its API handler to ``procbots``
    (``PREFECT_LOGGING_EXTRA_LOGGERS``), so a line is never sent twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.procbots_owned = True
        self._api_handler: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        context_module = sys.modules.get("prefect.context")
        if context_module is None:
            return
        owner = logging.getLogger(LOGGER_NAME)
        if any(type(h).__name__ == "APILogHandler" for h in owner.handlers):
            return
        try:
            if context_module.FlowRunContext.get() is None and context_module.TaskRunContext.get() is None:
                return
            if self._api_handler is None:
                from prefect.logging.handlers import APILogHandler

                self._api_handler = APILogHandler()
            self._api_handler.handle(record)
        except Exception:
            self.handleError(record)


# Fields every line carries that a person reading a run's log does not need repeated.
_CONTEXT_FIELDS = frozenset({"event", "timestamp", "level", "logger", "run_id", "bot", "flow_run_id"})
_MAX_LISTED = 5


def _short(value: Any) -> str:
    """A field value as a person reads it: long lists cut to their first few."""
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(v) for v in value]
        shown = ", ".join(items[:_MAX_LISTED])
        return f"[{shown} and {len(items) - _MAX_LISTED} more]" if len(items) > _MAX_LISTED else f"[{shown}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + "}"
    return str(value)


class SentenceRenderer:
    """structlog renderer for run logs people read: ``po created: po_number=PO-000123, ...``.

    The event, then its own fields; the run id, bot, level and time are left out
    (the Prefect UI shows the run, level and time of every line); lists longer than
    five are cut (``[a, b, c, d, e and 89 more]``); an exception is its last line.

    Example:
        >>> SentenceRenderer()(None, "info", {"event": "po created", "po_number": "PO-1", "bot": "x"})
        'po created: po_number=PO-1'
    """

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        event = str(event_dict.get("event", ""))
        parts = []
        for key, value in event_dict.items():
            if key in _CONTEXT_FIELDS or value is None or value == "":
                continue
            if key == "exception":
                lines = [line for line in str(value).strip().splitlines() if line.strip()]
                value = lines[-1] if lines else value
            parts.append(f"{key}={_short(value)}")
        return f"{event}: {', '.join(parts)}" if parts else event


def _choose_renderer(renderer: Literal["auto", "json", "console", "sentence"]) -> Any:
    if renderer == "sentence":
        return SentenceRenderer()
    if renderer == "auto":
        renderer = "console" if sys.stderr.isatty() else "json"
    if renderer == "console":
        return structlog.dev.ConsoleRenderer(
            colors=True, exception_formatter=structlog.dev.plain_traceback, sort_keys=False
        )
    return structlog.processors.JSONRenderer(default=str, sort_keys=False)


_configured_level = logging.INFO


def configure_logging(
    settings: Settings | None = None,
    *,
    renderer: Literal["auto", "json", "console", "sentence"] = "auto",
    extra_secrets: Iterable[str] = (),
) -> None:
    """Sets up structlog and the ``procbots`` stdlib logger; safe to call again.

    Args:
        settings: where the level and the secret values come from; the process
            settings (``get_settings()``) when omitted.
        renderer: ``json`` lines, ``console`` text, ``sentence`` (one readable line per
            event, for run logs in the Prefect UI), or ``auto`` (console on a TTY, else json).
        extra_secrets: more values to redact, as with :func:`register_secret`.

    Example:
        >>> configure_logging(renderer="json")
    """
    global _configured_level
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    for value in [*secrets_from_settings(settings), *extra_secrets]:
        register_secret(value)
    level = logging.getLevelName(settings.log_level)
    _configured_level = level

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _utc_iso_timestamp(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            Redactor(),
            _choose_renderer(renderer),
            _mark_rendered,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )

    owner = logging.getLogger(LOGGER_NAME)
    owner.setLevel(level)
    owner.propagate = False  # the root logger (Prefect's console handler) would print it twice
    for handler in [h for h in owner.handlers if getattr(h, "procbots_owned", False)]:
        owner.removeHandler(handler)
    for old in [f for f in owner.filters if isinstance(f, _RedactForeignRecords)]:
        owner.removeFilter(old)
    owner.addFilter(_RedactForeignRecords())
    stream_handler = _StderrHandler()
    stream_handler.addFilter(_RedactForeignRecords())
    stream_handler.setFormatter(logging.Formatter("%(message)s"))
    owner.addHandler(stream_handler)
    bridge = _PrefectBridge()
    bridge.addFilter(_RedactForeignRecords())
    owner.addHandler(bridge)

    # Audit records belong in the audit file (hash-chained), not in a run's log stream:
    # ``procbots.audit`` goes to stderr only, never to Prefect's handlers on ``procbots``.
    audit = logging.getLogger(AUDIT_LOGGER_NAME)
    audit.propagate = False
    for handler in [h for h in audit.handlers if getattr(h, "procbots_owned", False)]:
        audit.removeHandler(handler)
    audit_handler = _StderrHandler()
    audit_handler.addFilter(_RedactForeignRecords())
    audit_handler.setFormatter(logging.Formatter("%(message)s"))
    audit.addHandler(audit_handler)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger under ``procbots`` (``procbots.<name>`` when named).

    Configures logging from the process settings on first use if nobody did.
    """
    if not _is_configured():
        configure_logging()
    full = LOGGER_NAME if not name else (name if name.startswith(LOGGER_NAME) else f"{LOGGER_NAME}.{name}")
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(full)
    return logger


def _is_configured() -> bool:
    return any(getattr(h, "procbots_owned", False) for h in logging.getLogger(LOGGER_NAME).handlers)


def bind_context(
    *,
    run_id: str | None = None,
    bot: str | None = None,
    item_id: str | None = None,
    actor: str | None = None,
    **extra: Any,
) -> None:
    """Binds run context to every later log line of this thread/task (contextvars)."""
    values = {"run_id": run_id, "bot": bot, "item_id": item_id, "actor": actor, **extra}
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_context() -> None:
    """Forgets everything bound with :func:`bind_context`."""
    structlog.contextvars.clear_contextvars()
