"""``portal-healthcheck``: is everything a bot run needs there, right now?

Checks that the portal answers ``/healthz``, that the work-item ledger accepts a
write and that the audit folder is writable, then publishes a markdown and a
table artifact. Any failed check makes the run ``Failed`` (and the failure hook
alerts). Deployed every 5 minutes (``prefect.yaml``), so an operations team
learns of a dead portal or a full disk before the 07:00 purchase-order run does.

Example:
    >>> portal_healthcheck_flow(HealthcheckParameters(portal_url="http://127.0.0.1:8765"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.client.schemas.objects import State
from pydantic import Field

from config.logging import redact
from config.settings import get_settings
from flows.alerts import alert_on_completion, alert_on_crashed, alert_on_failure
from flows.common import FlowParameters, capped_task_runner, flow_logging, london

__all__ = ["CheckResult", "HealthcheckParameters", "portal_healthcheck_flow"]


class HealthcheckParameters(FlowParameters):
    """What the healthcheck looks at; empty values use the procbots settings."""

    portal_url: str = Field(
        "",
        description="The portal's web address to check (its /healthz page). Leave empty to use the "
        "portal.url setting.",
    )
    timeout_s: float = Field(5.0, gt=0, le=120, description="Seconds to wait for the portal to answer.")
    check_ledger: bool = Field(True, description="Also check that the work-item ledger accepts a write.")
    check_audit: bool = Field(True, description="Also check that the audit folder can be written to.")


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, what was seen, how long it took."""

    check: str
    ok: bool
    detail: str
    elapsed_ms: int


def _timed(name: str, started: float, ok: bool, detail: str) -> CheckResult:
    return CheckResult(name, ok, redact(detail), int((time.perf_counter() - started) * 1000))


@task(name="check-portal")
def check_portal(url: str, timeout_s: float) -> CheckResult:
    """GET <portal>/healthz answers 2xx."""
    started = time.perf_counter()
    target = f"{url.rstrip('/')}/healthz"
    if not target.startswith(("http://", "https://")):
        return _timed("portal", started, False, f"{target}: not an http(s) URL")
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:  # noqa: S310 (scheme checked)
            return _timed(
                "portal", started, 200 <= response.status < 300, f"{target}: HTTP {response.status}"
            )
    except urllib.error.HTTPError as exc:
        return _timed("portal", started, False, f"{target}: HTTP {exc.code}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return _timed("portal", started, False, f"{target}: unreachable ({reason})")


def _probe_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".healthcheck-", delete=True) as probe:
        probe.write(b"ok")
        probe.flush()
        os.fsync(probe.fileno())


@task(name="check-ledger")
def check_ledger(ledger_url: str) -> CheckResult:
    """The ledger database accepts a write (SQLite: its folder and file are writable)."""
    started = time.perf_counter()
    try:
        if ledger_url.startswith("sqlite"):
            path = Path(ledger_url.split("///", 1)[1]) if "///" in ledger_url else None
            if path is None:
                return _timed("ledger", started, True, "in-memory SQLite")
            _probe_folder(path.parent)
            if path.exists() and not os.access(path, os.W_OK):
                return _timed("ledger", started, False, f"{path}: not writable")
            return _timed("ledger", started, True, f"{path}: writable")
        from sqlalchemy import create_engine

        engine = create_engine(ledger_url, pool_pre_ping=True)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE TEMPORARY TABLE procbots_healthcheck (probe integer)")
                connection.exec_driver_sql("INSERT INTO procbots_healthcheck VALUES (1)")
        finally:
            engine.dispose()
        return _timed("ledger", started, True, f"{engine.url.render_as_string(hide_password=True)}: writable")
    except Exception as exc:
        return _timed("ledger", started, False, f"{type(exc).__name__}: {exc}")


@task(name="check-audit-folder")
def check_audit_folder(folder: Path) -> CheckResult:
    """The audit folder exists (or can be made) and takes a new file."""
    started = time.perf_counter()
    try:
        _probe_folder(folder)
    except OSError as exc:
        return _timed("audit folder", started, False, f"{folder}: {exc.strerror or exc}")
    return _timed("audit folder", started, True, f"{folder}: writable")


@flow(
    name="portal-healthcheck",
    description="Checks the portal /healthz, the work-item ledger and the audit folder.",
    task_runner=capped_task_runner(3),
    on_failure=[alert_on_failure],
    on_crashed=[alert_on_crashed],
    on_completion=[alert_on_completion],  # one "recovered" after a failure alert
)
def portal_healthcheck_flow(params: HealthcheckParameters = HealthcheckParameters()) -> State:  # noqa: B008
    """Runs the checks, publishes the results, and fails when one of them failed."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.states import Completed, Failed

    settings = get_settings()
    log = flow_logging("healthcheck")
    portal_url = params.portal_url or settings.portal.url
    futures = [check_portal.submit(portal_url, params.timeout_s)]
    if params.check_ledger:
        futures.append(check_ledger.submit(settings.ledger_url))
    if params.check_audit:
        futures.append(check_audit_folder.submit(settings.audit_path.parent))
    results: list[CheckResult] = [future.result() for future in futures]
    for result in results:
        log.info("healthcheck", check=result.check, ok=result.ok, detail=result.detail, ms=result.elapsed_ms)

    failed = [r for r in results if not r.ok]

    lines = [
        "# Portal healthcheck",
        "",
        f"_Checked {london(datetime.now(UTC))}_",
        "",
        "| Check | Result | Detail | ms |",
        "|---|---|---|---:|",
    ]
    lines += [
        f"| {r.check} | {'OK' if r.ok else 'FAILED'} | {r.detail.replace('|', '/')} | {r.elapsed_ms} |"
        for r in results
    ]
    create_markdown_artifact(
        redact("\n".join(lines) + "\n"), key="portal-healthcheck", description="Healthcheck"
    )
    create_table_artifact([asdict(r) for r in results], key="portal-healthcheck-checks")

    if failed:
        message = "; ".join(f"{r.check}: {r.detail}" for r in failed)
        log.error("healthcheck failed", failed=[r.check for r in failed])
        return Failed(message=redact(message))
    return Completed(message=f"{len(results)} checks passed")
