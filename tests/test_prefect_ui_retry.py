"""Retry in the Prefect UI retries the items: a failed bot flow run, retried, finishes its failed items.

The session's real Prefect server, work pool and worker (``tests/plugins/prefect_server.py``)
run the ``purchase-orders`` deployment; the portal is a sandbox that first answers every
request with HTTP 500/503, then (same port, same database) a well-behaved one.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.plugins.prefect_server import PrefectServer, wait_for
from tests.plugins.sandbox import SANDBOX_PASSWORD
from tests.test_purchase_orders_e2e import SEED, SEEDED_ORDERS, portal_orders, write_requisitions

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.browser]

DEPLOYMENT = "purchase-orders/purchase-orders"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _retry_from_the_ui(server: PrefectServer, flow_run_id: Any) -> None:
    """What the Retry button of the Prefect UI sends: ``set_state`` to Scheduled/AwaitingRetry."""
    from prefect.client.schemas.objects import State, StateType
    from prefect.client.schemas.responses import SetStateStatus

    with server.client() as client:
        answer = client.set_flow_run_state(
            flow_run_id,
            State(type=StateType.SCHEDULED, name="AwaitingRetry", message="Retry from the UI"),
            force=False,
        )
    assert answer.status == SetStateStatus.ACCEPT, answer


def _final_after_retry(server: PrefectServer, flow_run_id: Any) -> FlowRun:
    def final() -> FlowRun | None:
        with server.client() as client:
            run = client.read_flow_run(flow_run_id)
        done = run.run_count >= 2 and run.state is not None and run.state.is_final()
        return run if done else None

    return wait_for(final, timeout_s=300, interval_s=0.5, what="the retried flow run's final state")


def test_retry_in_the_prefect_ui_retries_the_items_the_failed_run_left_failed(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    from bots.runtime.ledger import Ledger
    from sandbox.server import SandboxServer

    root = tmp_path / "var"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 2, prefix="UIR-")
    env = {
        "PROCBOTS_PATHS__ROOT": str(root),
        "PROCBOTS_PORTAL__PASSWORD": SANDBOX_PASSWORD,
        "PROCBOTS_RETRY__MAX_ATTEMPTS": "2",
        "PROCBOTS_RETRY__INITIAL_S": "0.1",
        "PROCBOTS_RETRY__MAX_S": "0.5",
    }
    port, portal_db = _free_port(), tmp_path / "portal.db"
    portal = SandboxServer(
        port=port, seed=SEED, orders=SEEDED_ORDERS, chaos="error_rate=1", db_path=portal_db
    )
    params = {"params": {"input": str(source), "portal_url": portal.url, "contexts": 1}}
    with portal:
        run = prefect_server.run_deployment(DEPLOYMENT, params, job_variables={"env": env}, timeout_s=300)
    assert run.state is not None
    assert run.state.is_failed(), (run.state, prefect_server.logs())
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", audit=False)
    try:
        items = ledger.list(bot="purchase_orders")
        assert sorted((i.idempotency_key, str(i.state)) for i in items) == [
            ("UIR-REQ-2026-000001", "failed"),
            ("UIR-REQ-2026-000002", "failed"),
        ]

        # The portal is fixed; a person presses Retry on the failed flow run.
        with SandboxServer(port=port, seed=SEED, orders=SEEDED_ORDERS, db_path=portal_db) as fixed:
            _retry_from_the_ui(prefect_server, run.id)
            retried = _final_after_retry(prefect_server, run.id)
            assert retried.state is not None
            assert retried.state.is_completed(), (retried.state, prefect_server.logs())
            orders = portal_orders(fixed, "UIR-")
        assert sorted(o["requisition_ref"] for o in orders) == ["UIR-REQ-2026-000001", "UIR-REQ-2026-000002"]

        operator = f"Prefect UI retry of flow run {run.name}"
        for item in ledger.list(bot="purchase_orders"):
            assert str(item.state) == "done", item
            requeued = [t for t in ledger.history(item.id) if t.event == "requeued"]
            assert [t.owner for t in requeued] == [operator], ledger.history(item.id)
    finally:
        ledger.close()

    audit = [json.loads(line) for line in (root / "audit" / "audit.jsonl").read_text().splitlines()]
    retries = [r for r in audit if r.get("event") == "workitem.requeued"]
    assert sorted(r["idempotency_key"] for r in retries) == ["UIR-REQ-2026-000001", "UIR-REQ-2026-000002"]
    assert {r["operator"] for r in retries} == {operator}
    assert all("retried (attempt 2)" in r["reason"] for r in retries), retries
