"""Webhook alerts against a real local HTTP server: payloads, retries, no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bots.runtime.ledger import Ledger
from config.settings import AlertSettings, RetrySettings, Settings
from flows.alerts import Alert, AlertDeliveryError, alert_business_exceptions, send_alert, teams_payload
from flows.common import RunSummary
from flows.outcome import finish
from tests.plugins.prefect_server import WebhookReceiver

FAST_RETRY = RetrySettings(max_attempts=3, initial_s=0.01, max_s=0.05, jitter_s=0)


def _settings(url: str | None, kind: str = "generic", **alerts: object) -> Settings:
    return Settings(
        alerts=AlertSettings(webhook_url=SecretStr(url) if url else None, kind=kind, **alerts),  # type: ignore[arg-type]
        retry=FAST_RETRY,
    )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(statuses=[503])
    yield hook
    hook.close()


def test_generic_alert_is_retried_after_503_and_delivered(receiver: WebhookReceiver) -> None:
    """The first POST gets 503; the retry is delivered as plain JSON."""
    alert = Alert(title="Purchase orders failed", text="Portal down", facts={"Run": "brave-otter"})
    assert send_alert(alert, _settings(receiver.url)) is True
    assert [r.status for r in receiver.requests] == [503, 200]
    assert receiver.requests[0].body == receiver.requests[1].body  # the same alert, sent again
    body = receiver.requests[1].json()
    assert body["source"] == "procbots"
    assert body["title"] == "Purchase orders failed"
    assert body["severity"] == "failure"
    assert body["facts"] == {"Run": "brave-otter"}
    assert body["sent_at"].endswith("+00:00")
    assert receiver.requests[1].headers["Content-Type"] == "application/json"


def test_teams_alert_is_an_adaptive_card_message(receiver: WebhookReceiver) -> None:
    """kind=teams posts a Teams message whose attachment is an Adaptive Card with facts and a link."""
    alert = Alert(
        title="procbots: invoice-matching failed",
        text="Timeout on the portal",
        facts={"Flow": "invoice-matching"},
        link="http://prefect.example/runs/flow-run/1",
    )
    assert send_alert(alert, _settings(receiver.url, kind="teams")) is True
    message = receiver.delivered()[0].json()
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "procbots: invoice-matching failed"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Flow"] == "invoice-matching"
    assert facts["At"].endswith(("GMT", "BST"))
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in Prefect",
            "url": "http://prefect.example/runs/flow-run/1",
        }
    ]


def test_webhook_url_never_appears_in_logs_errors_or_payload(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that keeps failing: the error, the log lines and the alert text all lack the URL."""
    hook = WebhookReceiver(statuses=[503, 503, 503])
    caplog.set_level(logging.DEBUG)
    try:
        alert = Alert(title="Contract uploads failed", text=f"could not reach {hook.url}")
        with pytest.raises(AlertDeliveryError) as raised:
            send_alert(alert, _settings(hook.url))
        assert len(hook.requests) == 3
        assert "HTTP 503" in str(raised.value)
        assert "after 3 attempts" in str(raised.value)
        assert hook.token not in str(raised.value)
        assert hook.token not in hook.requests[0].body.decode()  # the URL in the text was redacted
        captured = capsys.readouterr()
        assert "alert not delivered" in captured.err  # the failure was logged ...
        assert hook.token not in captured.err + captured.out  # ... without the secret
        assert hook.token not in caplog.text
    finally:
        hook.close()


def test_client_error_is_not_retried(receiver: WebhookReceiver) -> None:
    """A 4xx means the webhook refuses this alert: one attempt, then a clear error."""
    hook = WebhookReceiver(statuses=[400])
    try:
        with pytest.raises(AlertDeliveryError, match="HTTP 400"):
            send_alert(Alert(title="t", text="x"), _settings(hook.url))
        assert len(hook.requests) == 1
    finally:
        hook.close()


def test_unreachable_webhook_is_retried_then_reported() -> None:
    """Connection refused counts as transient: every attempt is made, then AlertDeliveryError."""
    with pytest.raises(AlertDeliveryError, match=r"unreachable.*after 3 attempts"):
        send_alert(Alert(title="t", text="x"), _settings("http://127.0.0.1:9/hook/secret-token"))


def test_no_webhook_configured_sends_nothing() -> None:
    """Without alerts.webhook_url the alert is logged as not sent and False is returned."""
    assert send_alert(Alert(title="t", text="x"), _settings(None)) is False


def test_business_exceptions_alert_lists_counts_and_reasons(receiver: WebhookReceiver) -> None:
    """A run with business exceptions sends a warning with the counts and the reason codes."""
    summary = RunSummary(
        bot="invoice_matching",
        title="Invoice matching",
        counts={"done": 10, "business_exception": 3},
        rows=[{"reason": "NOT_RECEIVED"}, {"reason": "NOT_RECEIVED"}, {"reason": "PRICE_OVER_TOLERANCE"}],
    )
    assert alert_business_exceptions(summary, _settings(receiver.url)) is True
    body = receiver.delivered()[0].json()
    assert body["severity"] == "warning"
    assert body["title"] == "procbots: Invoice matching: 3 business exceptions"
    assert body["facts"]["Business exception"] == "3"
    assert body["facts"]["Reasons"] == "NOT_RECEIVED x2, PRICE_OVER_TOLERANCE x1"


def test_business_exception_alert_can_be_switched_off(receiver: WebhookReceiver) -> None:
    """alerts.on_business_exceptions=false: no request at all."""
    summary = RunSummary(bot="b", title="B", counts={"business_exception": 1})
    settings = _settings(receiver.url, on_business_exceptions=False)
    assert alert_business_exceptions(summary, settings) is False
    assert receiver.requests == []


def test_finish_with_business_exceptions_is_completed_and_alerts(
    receiver: WebhookReceiver, settings_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish(): business exceptions give a Completed state with a message, and one alert."""
    from config.settings import get_settings

    monkeypatch.setenv("PROCBOTS_ALERTS__WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.01")
    get_settings.cache_clear()
    state = finish(
        RunSummary(
            bot="contract_uploads", title="Contract uploads", counts={"done": 4, "business_exception": 1}
        )
    )
    assert state.is_completed()
    assert state.message == "Contract uploads: 4 done, 1 business_exception"
    assert len(receiver.delivered()) == 1


def test_teams_payload_has_no_link_action_without_a_link() -> None:
    """Outside a Prefect run there is no UI link, so no button."""
    card = teams_payload(Alert(title="t", text="x"))["attachments"][0]["content"]
    assert "actions" not in card


class _ProcessKilled(BaseException):
    """Stands for what crashes a run (SIGTERM, KeyboardInterrupt): not an Exception."""


@pytest.mark.prefect
def test_crashed_flow_run_alerts_through_its_on_crashed_hook(
    prefect_api: None, receiver: WebhookReceiver, settings_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real flow run that crashes (a BaseException) runs alert_on_crashed, which posts a
    'crashed' alert with the flow and run names; the 503 first answer is retried."""
    from prefect import flow

    from config.settings import get_settings
    from flows.alerts import alert_on_crashed, alert_on_failure

    monkeypatch.setenv("PROCBOTS_ALERTS__WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.01")
    get_settings.cache_clear()

    @flow(name="crash-alert-check", on_failure=[alert_on_failure], on_crashed=[alert_on_crashed])
    def crashing_flow() -> None:
        raise _ProcessKilled("worker process killed")

    with pytest.raises(_ProcessKilled):
        crashing_flow()
    [delivered] = receiver.delivered()
    body = delivered.json()
    assert body["title"] == "procbots: crash-alert-check crashed"
    assert body["facts"]["Flow"] == "crash-alert-check"
    assert body["facts"]["State"] == "Crashed"
    assert body["facts"]["Run"]
    assert [r.status for r in receiver.requests] == [503, 200]


def _ledger_with_exceptions(codes: dict[str, int]) -> tuple[Ledger, dict[str, list[int]]]:
    """A ledger in the test's data root whose purchase_orders items ended as business exceptions."""
    from config.settings import get_settings

    ledger = Ledger.from_settings(get_settings(), audit=False)
    ids: dict[str, list[int]] = {}
    n = 0
    for code, count in codes.items():
        for _ in range(count):
            n += 1
            ledger.add("purchase_orders", f"REQ-{n:04d}", {})
            item = ledger.claim("purchase_orders", "w")
            assert item is not None
            ledger.business_exception(item, code, f"REQ-{n:04d}: {code}")
            ids.setdefault(code, []).append(item.id)
    return ledger, ids


def test_business_exception_alert_groups_by_reason_code_with_ten_keys_and_console_links(
    receiver: WebhookReceiver, settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import get_settings

    started = datetime.now(UTC)
    _ledger, ids = _ledger_with_exceptions({"UNKNOWN_SUPPLIER": 13, "NEED_BY_IN_PAST": 2})
    monkeypatch.setenv("PROCBOTS_CONSOLE__PUBLIC_URL", "https://procbots.trust.example/")
    get_settings.cache_clear()
    settings = get_settings().model_copy(
        update={"alerts": AlertSettings(webhook_url=SecretStr(receiver.url)), "retry": FAST_RETRY}
    )
    summary = RunSummary(
        bot="purchase_orders",
        title="Purchase orders",
        counts={"done": 4, "business_exception": 15},
        rows=[{"requisition_ref": "not-from-rows", "reason_code": "IGNORED"}],
        started_at=started,
    )
    assert alert_business_exceptions(summary, settings) is True
    body = receiver.delivered()[0].json()
    unknown, past = body["groups"]
    assert (unknown["reason_code"], unknown["count"]) == ("UNKNOWN_SUPPLIER", 13)
    assert unknown["keys"] == [f"REQ-{n:04d}" for n in range(1, 11)]  # at most 10 keys
    assert unknown["links"][0] == f"https://procbots.trust.example/items/{ids['UNKNOWN_SUPPLIER'][0]}"
    assert (past["reason_code"], past["count"], past["keys"]) == (
        "NEED_BY_IN_PAST",
        2,
        ["REQ-0014", "REQ-0015"],
    )
    assert body["facts"]["Reasons"] == "NEED_BY_IN_PAST x2, UNKNOWN_SUPPLIER x13"
    assert body["link"] == "https://procbots.trust.example/bots/purchase_orders?state=business_exception"
    assert "table" not in body["text"]  # no table is named that the run might not have


def test_teams_business_exception_alert_shows_each_reason_with_linked_keys_and_the_rest_counted(
    receiver: WebhookReceiver, settings_env: Path
) -> None:
    from config.settings import get_settings

    started = datetime.now(UTC)
    _ledger_with_exceptions({"UNKNOWN_SUPPLIER": 12})
    settings = get_settings().model_copy(
        update={
            "alerts": AlertSettings(webhook_url=SecretStr(receiver.url), kind="teams"),
            "retry": FAST_RETRY,
        }
    )
    summary = RunSummary("purchase_orders", "Purchase orders", {"business_exception": 12}, started_at=started)
    assert alert_business_exceptions(summary, settings) is True
    card = receiver.delivered()[0].json()["attachments"][0]["content"]
    texts = [block.get("text", "") for block in card["body"]]
    assert "UNKNOWN_SUPPLIER (12): REQ-0001, REQ-0002" in " ".join(texts)
    assert any(t.endswith("REQ-0010 and 2 more") for t in texts)


def test_business_exceptions_of_earlier_runs_are_not_alerted_again(
    receiver: WebhookReceiver, settings_env: Path
) -> None:
    from config.settings import get_settings

    _ledger_with_exceptions({"UNKNOWN_SUPPLIER": 3})
    later = datetime.now(UTC) + timedelta(seconds=1)
    settings = get_settings().model_copy(
        update={"alerts": AlertSettings(webhook_url=SecretStr(receiver.url)), "retry": FAST_RETRY}
    )
    summary = RunSummary(
        "purchase_orders",
        "Purchase orders",
        {"business_exception": 1},
        rows=[{"requisition_ref": "REQ-NEW", "reason_code": "NEED_BY_IN_PAST"}],
        started_at=later,
    )
    assert alert_business_exceptions(summary, settings) is True
    (group,) = receiver.delivered()[0].json()["groups"]
    assert (group["reason_code"], group["keys"]) == ("NEED_BY_IN_PAST", ["REQ-NEW"])  # from this run only


def _hooked_flow(name: str, outcomes: list[str]) -> Any:
    """A real Prefect flow with the alert hooks; each call fails or completes as ``outcomes`` says."""
    from prefect import flow

    from flows.alerts import alert_on_completion, alert_on_crashed, alert_on_failure

    @flow(
        name=name,
        on_failure=[alert_on_failure],
        on_crashed=[alert_on_crashed],
        on_completion=[alert_on_completion],
    )
    def checked_flow(fail_items: int = 0) -> str:
        from config.settings import get_settings

        if fail_items:
            ledger = Ledger.from_settings(get_settings(), audit=False)
            for n in range(fail_items):
                ledger.add(name.replace("-", "_"), f"REQ-F{n}", {})
                item = ledger.claim(name.replace("-", "_"), "w")
                assert item is not None
                ledger.system_exception(item, "PORTAL_5XX", "portal answered 503")
                ledger.fail(item, "PORTAL_5XX", "portal answered 503 four times")
        outcome = outcomes.pop(0)
        if outcome == "fail":
            raise RuntimeError("portal http://127.0.0.1:9/healthz: connection refused")
        return "portal up"

    return checked_flow


@pytest.fixture
def configured_hook(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A webhook receiver that the process settings (alerts.webhook_url) point at."""
    from config.settings import get_settings

    hook = WebhookReceiver()
    monkeypatch.setenv("PROCBOTS_ALERTS__WEBHOOK_URL", hook.url)
    get_settings.cache_clear()
    yield hook
    hook.close()


@pytest.mark.prefect
def test_a_flow_failing_again_and_again_alerts_once_then_once_recovered(
    prefect_api: None, settings_env: Path, configured_hook: WebhookReceiver
) -> None:
    """The healthcheck every 5 minutes while the portal is down: one 'down', one 'recovered'."""
    hook = configured_hook
    checked = _hooked_flow("portal-check-dedup", ["fail", "fail", "fail", "ok", "ok", "fail"])
    for _ in range(3):
        with pytest.raises(RuntimeError):
            checked()
    assert [r.json()["title"] for r in hook.delivered()] == ["procbots: portal-check-dedup failed"]
    checked()
    checked()
    titles = [r.json()["title"] for r in hook.delivered()]
    assert titles == ["procbots: portal-check-dedup failed", "procbots: portal-check-dedup recovered"]
    recovered = hook.delivered()[1].json()
    assert recovered["facts"]["Failed runs not alerted"] == "2"
    assert recovered["severity"] == "info"
    state = json.loads((settings_env / "alerts" / "state.json").read_text())
    assert state == {}
    with pytest.raises(RuntimeError):
        checked()  # a new incident after the recovery alerts again
    assert len(hook.delivered()) == 3


@pytest.mark.prefect
def test_a_failure_alert_names_the_failed_items_by_reason_code(
    prefect_api: None, configured_hook: WebhookReceiver
) -> None:
    hook = configured_hook
    with pytest.raises(RuntimeError):
        _hooked_flow("failing-bot-items", ["fail"])(fail_items=3)
    (delivered,) = hook.delivered()
    body = delivered.json()
    assert body["title"] == "procbots: failing-bot-items failed"
    assert body["facts"]["Failed items"] == "3"
    (group,) = body["groups"]
    assert (group["reason_code"], group["count"]) == ("PORTAL_5XX", 3)
    assert group["keys"] == ["REQ-F0", "REQ-F1", "REQ-F2"]
    assert "connection refused" in body["text"]


@pytest.mark.prefect
def test_failure_alerts_still_go_out_when_their_state_cannot_be_kept(
    prefect_api: None, settings_env: Path, configured_hook: WebhookReceiver
) -> None:
    """A data root that cannot be written (the disk may be the incident) must not silence alerts."""
    settings_env.mkdir(parents=True, exist_ok=True)
    (settings_env / "alerts").write_text("a file where the alert state folder should be")
    checked = _hooked_flow("portal-check-no-state", ["fail", "fail"])
    for _ in range(2):
        with pytest.raises(RuntimeError):
            checked()
    assert [r.json()["title"] for r in configured_hook.delivered()] == [
        "procbots: portal-check-no-state failed"
    ] * 2


def test_every_bot_flow_and_the_healthcheck_carry_the_three_alert_hooks() -> None:
    """Failure, crash and recovery: without the completion hook no 'recovered' would ever come."""
    from flows.alerts import alert_on_completion, alert_on_crashed, alert_on_failure
    from flows.bot_flows import FLOWS
    from flows.healthcheck import portal_healthcheck_flow

    for made in [*FLOWS.values(), portal_healthcheck_flow]:
        assert alert_on_failure in made.on_failure_hooks, made.name
        assert alert_on_crashed in made.on_crashed_hooks, made.name
        assert alert_on_completion in made.on_completion_hooks, made.name
