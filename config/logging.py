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
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TextIO

import structlog
from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "LOGGER_NAME",
    "REDACTED",
    "Redactor",
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
REDACTED = "***"

# Keys whose values are dropped whatever they hold. Matched anywhere in the key,
# case-insensitively, so ``portal_password``, ``X-Api-Key`` and ``set-cookie`` count.
SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd|phrase)?(?![a-z])|secret|token|api[_-]?key|authori[sz]ation|cookie|hmac|credential"
    r"|private[_-]?key|totp|signature",
    re.IGNORECASE,
)

_secret_values: set[str] = set()
_secrets_lock = threading.Lock()
# Longest first, so a secret that contains another is replaced whole.
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Adds a value that must never appear in a log line or audit record.

    Example:
        >>> register_secret("hunter2")
        >>> redact("login with hunter2")
        'login with ***'
    """
    global _secret_pattern
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not raw:
        return
    with _secrets_lock:
        if raw in _secret_values:
            return
        _secret_values.add(raw)
        ordered = sorted(_secret_values, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def registered_secrets() -> frozenset[str]:
    """The secret values currently redacted (for tests and diagnostics)."""
    return frozenset(_secret_values)


def secrets_from_settings(settings: Settings | BaseModel) -> list[str]:
    """Every non-empty ``SecretStr`` value found anywhere in a settings model."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(settings)
    return found


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY_PATTERN.search(key) is not None


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and known secret values masked.

    Strings have every registered secret replaced by ``***``; dicts lose the values
    of secret-looking keys; lists, tuples and sets are walked recursively;
    ``SecretStr`` becomes ``***``; other objects are kept unless their text shows a
    secret, in which case their redacted text replaces them.
    """
    pattern = _secret_pattern
    return _redact(value, pattern, 0)


def _redact(value: Any, pattern: re.Pattern[str] | None, depth: int) -> Any:
    if depth > 50:  # a cycle or absurd nesting: refuse to walk further, never leak
        return REDACTED
    if isinstance(value, str):
        return pattern.sub(REDACTED, value) if pattern is not None else value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            _redact(k, pattern, depth + 1) if isinstance(k, str) else k: (
                REDACTED if _is_secret_key(k) and v not in (None, "") else _redact(v, pattern, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, pattern, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, pattern, depth + 1) for v in value)
    if isinstance(value, set | frozenset):
        return [_redact(v, pattern, depth + 1) for v in value]
    if isinstance(value, BaseModel):
        return _redact(value.model_dump(mode="json"), pattern, depth + 1)
    if isinstance(value, BaseException):
        return _redact(f"{type(value).__name__}: {value}", pattern, depth + 1)
    if pattern is not None:
        # Objects we do not know (Decimal, Path, datetime ...) are kept as they are
        # unless their text carries a secret.
        text = str(value)
        if pattern.search(text):
            return pattern.sub(REDACTED, text)
    return value


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


def _choose_renderer(renderer: Literal["auto", "json", "console"]) -> Any:
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
    renderer: Literal["auto", "json", "console"] = "auto",
    extra_secrets: Iterable[str] = (),
) -> None:
    """Sets up structlog and the ``procbots`` stdlib logger; safe to call again.

    Args:
        settings: where the level and the secret values come from; the process
            settings (``get_settings()``) when omitted.
        renderer: ``json`` lines, ``console`` text, or ``auto`` (console on a TTY).
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
