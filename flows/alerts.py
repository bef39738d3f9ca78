"""Alerts to a webhook when a run fails or ends with business exceptions.

Two payload kinds (``alerts.kind`` in settings):

- ``teams``: a Microsoft Teams message carrying an Adaptive Card, the form both
  Teams incoming webhooks and Power Automate "post to a channel when a webhook
  request is received" workflows accept;
- ``generic``: a plain JSON object (``source``, ``title``, ``text``, ``severity``,
  ``facts``, ``link``, ``sent_at``) for any other receiver.

Delivery is retried with exponential backoff and jitter (the ``retry`` settings)
on connection errors, timeouts, 429 and 5xx; other 4xx are not retried. The
webhook URL is a secret (it carries the channel's token): it is registered with
the log redactor, never logged, and every alert text is redacted before it is
sent.

What an alert says:

- business exceptions of a run (:func:`alert_business_exceptions`): grouped by
  reason code, each with its count and up to 10 item keys, each key a link to the
  item in the console when ``console.public_url`` is set;
- a failed or crashed run (:func:`alert_on_failure`, :func:`alert_on_crashed`):
  the run's message and the items it left ``failed`` or ``needs_review``, grouped
  the same way;
- de-duplicated: while a flow keeps failing, only its first failure alerts (one
  "portal down"); its next completed run sends one "recovered"
  (:func:`alert_on_completion`). The open incidents live in a small JSON file
  under the data root (``<paths.root>/alerts/state.json``), so this holds across
  runs and processes.

Flows attach the hooks with ``@flow(..., on_failure=[alert_on_failure],
on_crashed=[alert_on_crashed], on_completion=[alert_on_completion])``.

Example:
    >>> send_alert(Alert(title="Purchase orders failed", text="Portal down"))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from config.logging import get_logger, redact, register_secret

if TYPE_CHECKING:
    from bots.runtime.ledger import WorkItem
    from config.settings import Settings
    from flows.common import RunSummary

__all__ = [
    "MAX_KEYS_PER_REASON",
    "Alert",
    "AlertDeliveryError",
    "ReasonGroup",
    "alert_business_exceptions",
    "alert_on_completion",
    "alert_on_crashed",
    "alert_on_failure",
    "generic_payload",
    "group_by_reason",
    "send_alert",
    "teams_payload",
]

Severity = Literal["failure", "warning", "info"]
_TEAMS_COLOURS = {"failure": "attention", "warning": "warning", "info": "good"}
#: Item keys named per reason code in an alert; the count says how many there are.
MAX_KEYS_PER_REASON = 10
# Row fields that name an item, most specific first (the flows' table rows differ by bot).
_KEY_FIELDS = ("idempotency_key", "requisition_ref", "invoice_number", "contract_id", "key")


class AlertDeliveryError(Exception):
    """The webhook did not accept the alert after every retry (message has no URL)."""


class _TransientDeliveryError(Exception):
    """A failure worth another attempt (5xx, 429, connection refused, timeout)."""


@dataclass(frozen=True)
class ReasonGroup:
    """The items of one reason code: how many, and the first keys (with links when known)."""

    reason_code: str
    count: int
    keys: tuple[str, ...]
    links: tuple[str | None, ...] = ()

    def line(self, markdown: bool = False) -> str:
        """``NOT_RECEIVED (12): INV-1, INV-2, ... and 2 more``; keys as links in markdown."""
        shown = []
        for n, key in enumerate(self.keys):
            link = self.links[n] if n < len(self.links) else None
            shown.append(f"[{key}]({link})" if markdown and link else key)
        more = self.count - len(self.keys)
        return (
            f"{self.reason_code} ({self.count}): " + ", ".join(shown) + (f" and {more} more" if more else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason_code": self.reason_code,
            "count": self.count,
            "keys": list(self.keys),
            "links": list(self.links),
        }


@dataclass(frozen=True)
class Alert:
    """One notification: what happened, key facts, the items by reason code, where to look."""

    title: str
    text: str
    severity: Severity = "failure"
    facts: dict[str, str] = field(default_factory=dict)
    link: str | None = None
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    groups: tuple[ReasonGroup, ...] = ()

    def redacted(self) -> Alert:
        """A copy with every known secret masked."""
        return Alert(
            title=redact(self.title),
            text=redact(self.text),
            severity=self.severity,
            facts={str(k): str(redact(v)) for k, v in self.facts.items()},
            link=redact(self.link) if self.link else None,
            sent_at=self.sent_at,
            groups=tuple(
                ReasonGroup(
                    redact(g.reason_code),
                    g.count,
                    tuple(redact(k) for k in g.keys),
                    tuple(redact(u) if u else None for u in g.links),
                )
                for g in self.groups
            ),
        )


def group_by_reason(
    items: Iterable[tuple[str, str, str | None]], limit: int = MAX_KEYS_PER_REASON
) -> tuple[ReasonGroup, ...]:
    """``(reason_code, key, link)`` triples grouped by code: most frequent first, then by code.

    Example:
        >>> [g.line() for g in group_by_reason([("NOT_RECEIVED", "INV-1", None), ("NO_PO", "INV-2", None)])]
        ['NOT_RECEIVED (1): INV-1', 'NO_PO (1): INV-2']
    """
    keys: dict[str, list[tuple[str, str | None]]] = {}
    counts: dict[str, int] = {}
    for code, key, link in items:
        counts[code] = counts.get(code, 0) + 1
        shown = keys.setdefault(code, [])
        if len(shown) < limit:
            shown.append((key, link))
    return tuple(
        ReasonGroup(
            code,
            counts[code],
            tuple(k for k, _ in keys[code]),
            tuple(u for _, u in keys[code]) if any(u for _, u in keys[code]) else (),
        )
        for code in sorted(counts, key=lambda c: (-counts[c], c))
    )


def teams_payload(alert: Alert) -> dict[str, Any]:
    """The Teams message (Adaptive Card 1.4) for an alert."""
    from flows.common import london

    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": alert.title,
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOURS[alert.severity],
            "wrap": True,
        },
        {"type": "TextBlock", "text": alert.text, "wrap": True},
        *({"type": "TextBlock", "text": group.line(markdown=True), "wrap": True} for group in alert.groups),
        {
            "type": "FactSet",
            "facts": [
                {"title": k, "value": v} for k, v in {**alert.facts, "At": london(alert.sent_at)}.items()
            ],
        },
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if alert.link:
        title = "Open in Prefect" if "/runs/" in alert.link else "Open in the console"
        card["actions"] = [{"type": "Action.OpenUrl", "title": title, "url": alert.link}]
    return {
        "type": "message",
        "summary": alert.title,
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def generic_payload(alert: Alert) -> dict[str, Any]:
    """A plain JSON alert for any webhook receiver."""
    return {
        "source": "procbots",
        "title": alert.title,
        "text": alert.text,
        "severity": alert.severity,
        "facts": dict(alert.facts),
        "link": alert.link,
        "sent_at": alert.sent_at.isoformat(),
        "groups": [group.as_dict() for group in alert.groups],
    }


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TransientDeliveryError)


def _post(url: str, body: bytes, timeout_s: float) -> int:
    request = urllib.request.Request(  # noqa: S310 (scheme checked by send_alert)
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "procbots"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        # Only the status goes into the error: the URL is the secret.
        if exc.code == 429 or exc.code >= 500:
            raise _TransientDeliveryError(f"webhook answered HTTP {exc.code}") from None
        raise AlertDeliveryError(f"webhook refused the alert: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _TransientDeliveryError(f"webhook unreachable: {type(reason).__name__}") from None


def send_alert(alert: Alert, settings: Settings | None = None, *, timeout_s: float = 10.0) -> bool:
    """Posts an alert to the configured webhook; ``False`` when none is configured.

    Raises:
        AlertDeliveryError: the webhook refused it (4xx) or kept failing after
            ``retry.max_attempts`` attempts. The message never holds the URL.
    """
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    log = get_logger("alerts")
    secret = settings.alerts.webhook_url
    if secret is None or not secret.get_secret_value():
        log.info("alert not sent: no webhook configured", title=redact(alert.title))
        return False
    url = secret.get_secret_value()
    register_secret(url)
    if not url.startswith(("https://", "http://")):
        raise AlertDeliveryError("alerts.webhook_url must be an http(s) URL")
    safe = alert.redacted()
    payload = teams_payload(safe) if settings.alerts.kind == "teams" else generic_payload(safe)
    body = json.dumps(payload).encode("utf-8")
    retry = settings.retry
    attempts = 0

    def attempt() -> int:
        nonlocal attempts
        attempts += 1
        return _post(url, body, timeout_s)

    retrying = Retrying(
        stop=stop_after_attempt(retry.max_attempts),
        wait=wait_exponential_jitter(initial=retry.initial_s, max=retry.max_s, jitter=retry.jitter_s),
        retry=retry_if_exception(_is_transient),
        reraise=True,
    )
    try:
        status = retrying(attempt)
    except _TransientDeliveryError as exc:
        log.error("alert not delivered", title=safe.title, attempts=attempts, error=str(exc))
        raise AlertDeliveryError(f"{exc} (after {attempts} attempts)") from None
    log.info("alert sent", title=safe.title, kind=settings.alerts.kind, status=status, attempts=attempts)
    return True


def _send_quietly(alert: Alert, settings: Settings | None = None) -> bool:
    """Hooks and finish() must never fail a run because the alert could not go out."""
    try:
        return send_alert(alert, settings)
    except Exception as exc:  # the run's own state matters more than its alert
        get_logger("alerts").error("alert failed", title=redact(alert.title), error=redact(str(exc)))
        return False


def _console_url(settings: Settings) -> str | None:
    base = getattr(getattr(settings, "console", None), "public_url", None)
    return str(base).rstrip("/") if base else None


def _item_groups(items: Iterable[WorkItem], settings: Settings) -> tuple[ReasonGroup, ...]:
    console = _console_url(settings)
    return group_by_reason(
        (
            item.reason_code or "NO_REASON_CODE",
            item.idempotency_key,
            f"{console}/items/{item.id}" if console else None,
        )
        for item in items
    )


def _ledger_items(bot: str, states: list[str], since: datetime | None, settings: Settings) -> list[WorkItem]:
    """Items of ``bot`` in ``states`` changed since ``since`` (a run's start); [] when unknown."""
    if since is None:
        return []
    from bots.runtime.ledger import Ledger

    try:
        ledger = Ledger.from_settings(settings, audit=False)
        try:
            return ledger.list(bot=bot, states=states, updated_since=since)
        finally:
            ledger.close()
    except Exception as exc:  # the ledger may be what failed: alert without the items
        get_logger("alerts").warning(
            "alert without items: the ledger could not be read", error=redact(str(exc))
        )
        return []


def _bot_of(flow_name: str) -> str:
    """The ledger ``bot`` of a flow's work items: its registry entry's ``ledger_bot``.

    A flow not in the registry (the healthcheck, a test flow) counts as a bot named
    after it (``purchase-orders`` -> ``purchase_orders``).
    """
    from bots import registry

    try:
        entry = registry.get(flow_name)
    except KeyError:
        return flow_name.replace("-", "_")
    return entry.ledger_bot or entry.key


# -- de-duplication: one alert per incident, one when it is over ------------------------


def _state_file(settings: Settings) -> Path:
    return settings.paths.root / "alerts" / "state.json"


@contextmanager
def _incidents(settings: Settings) -> Iterator[dict[str, Any]]:
    """The open incidents by key, read and written back under an exclusive lock."""
    path = _state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / "state.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                state = {}
            except ValueError:
                get_logger("alerts").warning("alert state unreadable; starting afresh", path=str(path))
                state = {}
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".state-")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(state, handle, indent=1, sort_keys=True)
                Path(temp).replace(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_facts(flow: Any, flow_run: Any, state: Any) -> dict[str, str]:
    facts = {
        "Flow": str(getattr(flow, "name", "flow")),
        "Run": str(getattr(flow_run, "name", "")),
        "State": str(getattr(state, "name", "")),
    }
    deployment_id = getattr(flow_run, "deployment_id", None)
    if deployment_id:
        facts["Deployment id"] = str(deployment_id)
    return facts


def _run_alert(flow: Any, flow_run: Any, state: Any, what: str, settings: Settings) -> Alert:
    from flows.common import flow_run_ui_url

    flow_name = str(getattr(flow, "name", "flow"))
    facts = _run_facts(flow, flow_run, state)
    message = getattr(state, "message", None) or "no message"
    failed = _ledger_items(
        _bot_of(flow_name), ["failed", "needs_review"], getattr(flow_run, "start_time", None), settings
    )
    groups = _item_groups(failed, settings)
    text = str(message)
    if failed:
        facts["Failed items"] = str(len(failed))
        text += f"\n{len(failed)} items failed or need review, by reason code:"
    return Alert(
        title=f"procbots: {flow_name} {what}",
        text=text,
        severity="failure",
        facts=facts,
        link=flow_run_ui_url(getattr(flow_run, "id", None)),
        groups=groups,
    )


def _alert_failure_once(flow: Any, flow_run: Any, state: Any, what: str) -> None:
    """Sends the failure alert unless this flow's incident is already open (then counts it)."""
    try:
        from config.settings import get_settings

        settings = get_settings()
        key = f"failure:{getattr(flow, 'name', 'flow')}"
        try:
            with _incidents(settings) as incidents:
                open_incident = incidents.get(key)
                if open_incident is not None:
                    open_incident["repeats"] = int(open_incident.get("repeats", 0)) + 1
                    open_incident["last_at"] = datetime.now(UTC).isoformat()
                    open_incident["last_message"] = redact(str(getattr(state, "message", "") or ""))
                    get_logger("alerts").info(
                        "alert not repeated: the incident is open", flow=key, repeats=open_incident["repeats"]
                    )
                    return
        except OSError as exc:  # no state (the data root is the problem): alert every time
            get_logger("alerts").warning(
                "alert state unavailable; not de-duplicating", error=redact(str(exc))
            )
        alert = _run_alert(flow, flow_run, state, what, settings)
        if _send_quietly(alert, settings):  # undelivered: the next failure tries again
            with contextlib.suppress(OSError), _incidents(settings) as incidents:
                now = alert.sent_at.isoformat()
                incidents.setdefault(key, {"since": now, "last_at": now, "repeats": 0, "title": alert.title})
    except Exception as exc:  # a hook never fails the run because of its alert
        get_logger("alerts").error("alert failed", error=redact(str(exc)))


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook: alert that the run failed (once per incident), naming the failed items."""
    _alert_failure_once(flow, flow_run, state, "failed")


def alert_on_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_crashed`` hook: alert that the run crashed (process killed, infrastructure)."""
    _alert_failure_once(flow, flow_run, state, "crashed")


def alert_on_completion(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_completion`` hook: one "recovered" alert when the flow's incident was open."""
    try:
        from config.settings import get_settings
        from flows.common import flow_run_ui_url

        settings = get_settings()
        flow_name = str(getattr(flow, "name", "flow"))
        with _incidents(settings) as incidents:
            incident = incidents.pop(f"failure:{flow_name}", None)
        if incident is None:
            return
        repeats = int(incident.get("repeats", 0))
        facts = _run_facts(flow, flow_run, state)
        facts["Failing since"] = _london_text(incident.get("since"))
        facts["Failed runs not alerted"] = str(repeats)
        alert = Alert(
            title=f"procbots: {flow_name} recovered",
            text=f"{flow_name} completed again: {getattr(state, 'message', None) or 'no message'}",
            severity="info",
            facts=facts,
            link=flow_run_ui_url(getattr(flow_run, "id", None)),
        )
        _send_quietly(alert, settings)
    except Exception as exc:
        get_logger("alerts").error("alert failed", error=redact(str(exc)))


def _london_text(iso: Any) -> str:
    from flows.common import london

    try:
        return str(london(datetime.fromisoformat(str(iso))))
    except ValueError:
        return str(iso)


def _row_groups(rows: Iterable[Mapping[str, Any]], settings: Settings) -> tuple[ReasonGroup, ...]:
    """Reason groups from a run's table rows (when the run did not say when it started)."""
    found = []
    for row in rows:
        code = str(row.get("reason_code") or row.get("code") or "")
        if not code:
            reason = str(row.get("reason") or "")
            code = reason if reason.replace("_", "").isalnum() and reason.isupper() else ""
        if not code:
            continue
        key = next((str(row[f]) for f in _KEY_FIELDS if row.get(f)), "(no key)")
        found.append((code, key, None))
    return group_by_reason(found)


def alert_business_exceptions(summary: RunSummary, settings: Settings | None = None) -> bool:
    """Alerts that a completed run left business exceptions for people to handle.

    The items come from the ledger: the bot's business exceptions changed since
    the run started (``summary.started_at``), grouped by reason code with counts
    and up to 10 keys (links into the console when ``console.public_url`` is
    set); without a start time, from the summary's rows. Returns whether an alert
    went out (``False`` when disabled, not configured, or not deliverable; a
    failed delivery is logged, never raised).
    """
    from flows.common import current_flow_run_id, flow_run_ui_url

    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    if not settings.alerts.on_business_exceptions:
        return False
    facts = {name.replace("_", " ").capitalize(): str(count) for name, count in summary.counts.items()}
    items = _ledger_items(_bot_of(summary.bot), ["business_exception"], summary.started_at, settings)
    groups = _item_groups(items, settings) if items else _row_groups(summary.rows, settings)
    if groups:
        facts["Reasons"] = ", ".join(
            f"{g.reason_code} x{g.count}" for g in sorted(groups, key=lambda g: g.reason_code)
        )
    console = _console_url(settings)
    link = (
        f"{console}/bots/{summary.bot}?state=business_exception"
        if console
        else flow_run_ui_url(current_flow_run_id())
    )
    alert = Alert(
        title=f"procbots: {summary.title}: {summary.business_exceptions} business exceptions",
        text="The run completed; these items need a person, by reason code"
        + (" (each key opens the item in the console):" if console else ":"),
        severity="warning",
        facts=facts,
        link=link,
        groups=groups,
    )
    return _send_quietly(alert, settings)
