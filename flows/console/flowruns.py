"""Which Prefect flow run worked on an item: from the run ids the ledger and evidence carry.

procbots run ids are ``20260123T101500Z-1a2b3c4d``: the UTC start and, inside a Prefect
flow run, the first 8 hex digits of the flow run id (a random suffix outside one). They
name evidence folders (``evidence/<run id>/<item id>/``) and appear in the ledger's
records. :class:`FlowRunFinder` asks the Prefect API for the flow run that started
shortly before the stamp with an id beginning with those digits.

Example:
    >>> finder = FlowRunFinder.from_prefect_settings()  # doctest: +SKIP
    >>> finder.find("20260123T101500Z-1a2b3c4d")  # doctest: +SKIP
    '1a2b3c4d-5e6f-...'
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta

from bots.runtime.ledger import Transition, WorkItem
from config.logging import get_logger

__all__ = ["FlowRunFinder", "run_ids"]

_RUN_ID = re.compile(r"(?<![0-9A-Za-z])(\d{8}T\d{6}Z)-([0-9a-f]{8})(?![0-9a-f])")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: How long before its run id's stamp a flow run may have started (queueing, slow starts).
_LOOKBACK = timedelta(hours=6)


def run_ids(item: WorkItem, history: Iterable[Transition]) -> list[str]:
    """Flow run ids and procbots run ids found for an item, the most recent first."""
    texts = [json.dumps((item.result or {}).get("flow_run_id") or "")]
    texts += [f"{t.owner or ''} {t.detail or ''}" for t in reversed(list(history))]
    texts += [e.path for e in reversed(item.evidence)]
    found: list[str] = []
    for text in texts:
        found += [m.group(0) for m in _UUID.finditer(text)]
        found += [m.group(0) for m in _RUN_ID.finditer(text)]
    return list(dict.fromkeys(found))


class FlowRunFinder:
    """Finds flow runs by procbots run id through the Prefect API (answers cached).

    Args:
        api_url: the Prefect API; ``None``: no lookups (ids are shown, not linked).
        ui_url: the Prefect UI, for links; ``None``: no links.
        timeout_s: longest wait for the API before the page shows no link.
    """

    def __init__(self, api_url: str | None, ui_url: str | None, timeout_s: float = 3.0) -> None:
        self.api_url = api_url
        self.ui_url = ui_url.rstrip("/") if ui_url else None
        self.timeout_s = timeout_s
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="procbots-console-prefect")

    @classmethod
    def from_prefect_settings(cls) -> FlowRunFinder:
        """The API and UI of the Prefect settings in force (``PREFECT_API_URL``, ``PREFECT_UI_URL``).

        Without an API URL there are no lookups: Prefect would otherwise start a
        temporary server inside the console.
        """
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

        return cls(PREFECT_API_URL.value() or None, PREFECT_UI_URL.value() or None)

    def link(self, flow_run_id: str) -> str | None:
        """The flow run's page in the Prefect UI."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}" if self.ui_url else None

    def find(self, run_id: str) -> str | None:
        """The flow run id for a run id (or a flow run id as it is); ``None`` when unknown."""
        if _UUID.fullmatch(run_id):
            return run_id
        match = _RUN_ID.fullmatch(run_id)
        if match is None or self.api_url is None:
            return None
        with self._lock:
            if run_id in self._cache:
                return self._cache[run_id]
        try:
            found = self._pool.submit(self._lookup, match.group(1), match.group(2)).result(self.timeout_s)
        except FutureTimeout:
            return None  # slow API: no link this time, asked again next time
        except Exception as exc:  # HTTP and connection errors of every kind: the page shows no link
            get_logger("console").warning("prefect api lookup failed", run_id=run_id, error=str(exc))
            return None
        with self._lock:
            self._cache[run_id] = found
        return found

    def _lookup(self, stamp: str, prefix: str) -> str | None:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

        started = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        window = FlowRunFilterStartTime(after_=started - _LOOKBACK, before_=started + timedelta(seconds=5))
        with SyncPrefectClient(str(self.api_url)) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=window), limit=200)
        for run in runs:
            if run.id.hex.startswith(prefix):
                return str(run.id)
        return None
