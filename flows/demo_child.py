"""The child side of ``procbots demo``: one flow run as a Prefect flow run, in its own process.

The demo starts ``python -m flows.demo run-flow <entrypoint> ...``, which calls
:func:`run_flow_child`; that keeps Chromium, structlog JSON and Prefect's console
logging out of the demo's own output.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["DEMO_TAG", "run_flow_child"]

DEMO_TAG = "procbots-demo"


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def run_flow_child(entrypoint: str, params: dict[str, Any], result_path: Path, run_name: str) -> int:
    """Child side: import the flow, run it as a Prefect flow run, write how it ended.

    Writes ``<flow>.running.json`` with the flow run id as soon as the run is
    ``Running`` (so the demo can link to it live), then ``result_path``.
    """
    module_name = entrypoint.split(":", 1)[0].removesuffix(".py").replace("/", ".")
    function = entrypoint.split(":", 1)[1]

    def write(path: Path, payload: dict[str, Any]) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(payload, indent=2, default=str))
        partial.replace(path)

    try:
        flow_obj = getattr(importlib.import_module(module_name), function)
    except Exception as exc:  # a flow module that does not import is the flow's failure, reported
        write(result_path, {"state": "IMPORT ERROR", "message": f"{type(exc).__name__}: {exc}"})
        return 1

    from prefect import tags

    from flows.common import RunFailed

    def note_running(_flow: Any, flow_run: Any, _state: Any) -> None:
        write(
            result_path.with_name(result_path.name.replace(".result.", ".running.")),
            {"flow_run_id": str(flow_run.id)},
        )

    configured = flow_obj.with_options(
        flow_run_name=run_name, on_running=[*flow_obj.on_running_hooks, note_running]
    )
    started = time.monotonic()  # the run itself, as Prefect times it; not the imports before
    with tags(DEMO_TAG):
        state = configured(params=params, return_state=True)
    data: Any = None
    try:
        data = state.result(raise_on_failure=False)
    except Exception as exc:  # the summary still shows the state; the data is a bonus
        data = f"{type(exc).__name__}: {exc}"
    if isinstance(data, RunFailed):  # a bot run failed on purpose: its summary has the links
        data = data.summary or str(data)
    elif isinstance(data, BaseException):
        data = f"{type(data).__name__}: {data}"
    flow_run_id = state.state_details.flow_run_id if state.state_details else None
    write(
        result_path,
        {
            "state": state.name,
            "type": state.type.value,
            "message": state.message or "",
            "flow_run_id": str(flow_run_id) if flow_run_id else None,
            "duration_s": time.monotonic() - started,
            "data": _jsonable(data),
        },
    )
    return 0 if state.is_completed() else 1
