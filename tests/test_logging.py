"""Logs are structured, carry run context, never show a secret, and reach Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.logging import (
    REDACTED,
    bind_context,
    clear_context,
    configure_logging,
    get_logger,
    redact,
    register_secret,
    secrets_from_settings,
)
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

PORTAL_PW = "Portal-Pw-7731"
HMAC_KEY = "audit-hmac-4410"
TOTP = "JBSWY3DPEHPK3PXP"
RUNTIME = "session-cookie-5521"
SECRETS = (PORTAL_PW, HMAC_KEY, TOTP, RUNTIME)

_SCRIPT = f"""
import logging, sys
from pathlib import Path
from config.logging import bind_context, configure_logging, get_logger, register_secret
from config.settings import get_settings
from connectors.audit import audit_event

configure_logging(renderer=sys.argv[2])
register_secret("{RUNTIME}")
# Any other handler on the procbots logger (Prefect's API handler is one) sees the same lines.
file_handler = logging.FileHandler(sys.argv[1])
logging.getLogger("procbots").addHandler(file_handler)
bind_context(run_id="run-1", bot="purchase_orders", item_id="PO-000123", actor="{PORTAL_PW}")
log = get_logger("secrets_probe")
pw = get_settings().portal.password.get_secret_value()
for level in ("debug", "info", "warning", "error", "critical"):
    getattr(log, level)(
        f"{{level}}: logging in with {{pw}}",
        password=pw,
        note="key {HMAC_KEY} and totp {TOTP}",
        nested={{"form": {{"user": "buyer1", "pw": pw, "items": [pw, ("{RUNTIME}", {{"deep": "{TOTP}"}})]}}}},
        headers={{"Authorization": "Bearer abc", "X-Trace": "{RUNTIME}"}},
    )
try:
    raise RuntimeError(f"login refused for password {{pw}}")
except RuntimeError:
    log.exception("portal login failed", cookie="{RUNTIME}")
logging.getLogger("procbots.stdlib_caller").error("plain stdlib call with %s", pw)
audit_event("login", actor="buyer1", detail=f"password {{pw}}")
print(f"stdout marker, printed by the probe, no secret")
"""


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_no_configured_secret_appears_in_any_log_output(renderer: str, tmp_path: Path) -> None:
    """Secrets from env, secrets file and register_secret vanish at every level and depth."""
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(f'[portal]\ntotp_secret = "{TOTP}"\n')
    secrets_file.chmod(0o600)
    log_file = tmp_path / "procbots.log"
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(log_file), renderer],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PROCBOTS_PATHS__ROOT": str(tmp_path / "var"),
            "PROCBOTS_LOG_LEVEL": "DEBUG",
            "PROCBOTS_PORTAL__PASSWORD": PORTAL_PW,
            "PROCBOTS_AUDIT__HMAC_KEY": HMAC_KEY,
            "PROCBOTS_SECRETS_FILE": str(secrets_file),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    audit_file = tmp_path / "var" / "audit" / "audit.jsonl"
    outputs = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "log file": log_file.read_text(),
        "audit file": audit_file.read_text(),
    }
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {where}"
    for level in ("debug", "info", "warning", "error", "critical"):
        assert f"{level}: logging in with {REDACTED}" in outputs["stderr"]
        assert f"{level}: logging in with {REDACTED}" in outputs["log file"]
    assert "RuntimeError: login refused for password ***" in outputs["stderr"]
    assert f"plain stdlib call with {REDACTED}" in outputs["log file"]
    assert "stdout marker" in outputs["stdout"]
    if renderer == "json":
        lines = [json.loads(line) for line in outputs["stderr"].splitlines() if line.startswith("{")]
        assert len(lines) == 7  # five levels, the exception, the audit event
        first = lines[0]
        assert first["password"] == REDACTED
        assert first["headers"]["Authorization"] == REDACTED
        assert first["nested"]["form"]["user"] == "buyer1"
        assert first["run_id"] == "run-1"


def test_redact_masks_secret_keys_and_values_recursively() -> None:
    register_secret("ledger-db-pw-31")
    event = {
        "event": "connecting with ledger-db-pw-31",
        "api_key": "k",
        "Set-Cookie": "c",
        "rows": [{"token": "t", "po_number": "PO-1"}, ("ledger-db-pw-31",)],
        "count": 3,
        "max_sessions": 4,
    }
    assert redact(event) == {
        "event": f"connecting with {REDACTED}",
        "api_key": REDACTED,
        "Set-Cookie": REDACTED,
        "rows": [{"token": REDACTED, "po_number": "PO-1"}, (REDACTED,)],
        "count": 3,
        "max_sessions": 4,
    }


def test_every_secret_str_in_settings_is_collected() -> None:
    settings = Settings(
        portal={"password": "a-pw", "totp_secret": "a-totp"},
        audit={"hmac_key": "a-key"},
        alerts={"webhook_url": "https://hooks.example/a"},
    )
    assert set(secrets_from_settings(settings)) == {"a-pw", "a-totp", "a-key", "https://hooks.example/a"}


def test_json_lines_carry_context_level_and_utc_timestamp(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_level="INFO"), renderer="json")
    bind_context(run_id="r-9", bot="invoice_matching", item_id="INV-42", actor="buyer1")
    try:
        get_logger("matching").debug("not shown at INFO")
        get_logger("matching").info("invoice held", reason="PRICE_OVER_TOLERANCE")
    finally:
        clear_context()
    get_logger("matching").info("after clear")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["invoice held", "after clear"]
    held = lines[0]
    assert held["level"] == "info"
    assert held["logger"] == "procbots.matching"
    assert held["timestamp"].endswith("Z")
    assert {k: held[k] for k in ("run_id", "bot", "item_id", "actor")} == {
        "run_id": "r-9",
        "bot": "invoice_matching",
        "item_id": "INV-42",
        "actor": "buyer1",
    }
    assert "run_id" not in lines[1]


@pytest.mark.prefect
@pytest.mark.slow
def test_logs_inside_a_flow_reach_the_prefect_api(prefect_api: None, settings_env: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.context import get_run_context

    configure_logging(Settings(), renderer="json")
    register_secret("flow-secret-8812")

    @flow(name="procbots-logging-probe")
    def probe() -> str:
        get_logger("probe").info("probe line from procbots", secret_echo="flow-secret-8812")
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    flow_run_id = probe()

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        return [log.message for log in logs if log.name == "procbots.probe"]

    import asyncio

    deadline = time.monotonic() + 30
    messages: list[str] = []
    while time.monotonic() < deadline:  # the API log worker sends in batches
        messages = asyncio.run(read())
        if messages:
            break
        time.sleep(0.2)
    assert any("probe line from procbots" in m for m in messages), messages
    assert not any("flow-secret-8812" in m for m in messages)
