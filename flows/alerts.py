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

Flows attach the hooks with
``@flow(..., on_failure=[alert_on_failure], on_crashed=[alert_on_crashed])``.

Example:
    >>> send_alert(Alert(title="Purchase orders failed", text="Portal down"))  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from config.logging import get_logger, redact, register_secret

if TYPE_CHECKING:
    from config.settings import Settings
    from flows.common import RunSummary

__all__ = [
    "Alert",
    "AlertDeliveryError",
    "alert_business_exceptions",
    "alert_on_crashed",
    "alert_on_failure",
    "generic_payload",
    "send_alert",
    "teams_payload",
]

Severity = Literal["failure", "warning", "info"]
_TEAMS_COLOURS = {"failure": "attention", "warning": "warning", "info": "good"}


class AlertDeliveryError(Exception):
    """The webhook did not accept the alert after every retry (message has no URL)."""


class _TransientDeliveryError(Exception):
    """A failure worth another attempt (5xx, 429, connection refused, timeout)."""


@dataclass(frozen=True)
class Alert:
    """One notification: what happened, key facts, where to look."""

    title: str
    text: str
    severity: Severity = "failure"
    facts: dict[str, str] = field(default_factory=dict)
    link: str | None = None
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def redacted(self) -> Alert:
        """A copy with every known secret masked."""
        return Alert(
            title=redact(self.title),
            text=redact(self.text),
            severity=self.severity,
            facts={str(k): str(redact(v)) for k, v in self.facts.items()},
            link=redact(self.link) if self.link else None,
            sent_at=self.sent_at,
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
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Prefect", "url": alert.link}]
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


def _send_quietly(alert: Alert) -> None:
    """Hooks and finish() must never fail a run because the alert could not go out."""
    try:
        send_alert(alert)
    except Exception as exc:  # the run's own state matters more than its alert
        get_logger("alerts").error("alert failed", title=redact(alert.title), error=redact(str(exc)))


def _run_alert(flow: Any, flow_run: Any, state: Any, what: str) -> Alert:
    from flows.common import flow_run_ui_url

    flow_name = getattr(flow, "name", "flow")
    facts = {
        "Flow": str(flow_name),
        "Run": str(getattr(flow_run, "name", "")),
        "State": str(getattr(state, "name", "")),
    }
    deployment_id = getattr(flow_run, "deployment_id", None)
    if deployment_id:
        facts["Deployment id"] = str(deployment_id)
    message = getattr(state, "message", None) or "no message"
    return Alert(
        title=f"procbots: {flow_name} {what}",
        text=str(message),
        severity="failure",
        facts=facts,
        link=flow_run_ui_url(getattr(flow_run, "id", None)),
    )


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook: alert that the run failed."""
    _send_quietly(_run_alert(flow, flow_run, state, "failed"))


def alert_on_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_crashed`` hook: alert that the run crashed (process killed, infrastructure)."""
    _send_quietly(_run_alert(flow, flow_run, state, "crashed"))


def alert_business_exceptions(summary: RunSummary, settings: Settings | None = None) -> bool:
    """Alerts that a completed run left business exceptions for people to handle.

    Returns whether an alert went out (``False`` when disabled, not configured,
    or not deliverable; a failed delivery is logged, never raised).
    """
    from flows.common import current_flow_run_id, flow_run_ui_url

    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    if not settings.alerts.on_business_exceptions:
        return False
    facts = {name.replace("_", " ").capitalize(): str(count) for name, count in summary.counts.items()}
    reasons: dict[str, int] = {}
    for row in summary.rows:
        reason = str(row.get("reason") or row.get("code") or "")
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        facts["Reasons"] = ", ".join(f"{code} x{n}" for code, n in sorted(reasons.items()))
    alert = Alert(
        title=f"procbots: {summary.title}: {summary.business_exceptions} business exceptions",
        text="The run completed; these items need a person (see the run's exceptions table).",
        severity="warning",
        facts=facts,
        link=flow_run_ui_url(current_flow_run_id()),
    )
    try:
        return send_alert(alert, settings)
    except Exception as exc:
        get_logger("alerts").error("alert failed", title=alert.title, error=redact(str(exc)))
        return False
