"""How a procbots flow run ends: its final state from what the run did, and its alert.

Kept apart from :mod:`flows.common` because it sends alerts (:mod:`flows.alerts`),
which build on :mod:`flows.common`: common -> alerts -> outcome, no cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.logging import get_logger, redact
from flows.common import RunFailed, RunSummary, current_flow_run_id, publish_summary

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

__all__ = ["finish", "refuse"]


def finish(summary: RunSummary, *, publish: bool = True, alert: bool = True) -> State:
    """The final state of a bot run; return it from the flow.

    - no failures, no business exceptions: ``Completed``;
    - business exceptions: ``Completed`` with a message saying how many, and an
      alert to the configured webhook (``alerts.on_business_exceptions``);
    - items ``failed`` on system errors after every retry: ``Failed`` with the
      message, its data a :class:`flows.common.RunFailed` (the flow's
      ``on_failure`` hook :func:`flows.alerts.alert_on_failure` sends the alert).

    Publishes the summary artifacts when running inside a flow run.
    """
    from prefect.states import Completed, Failed

    message = summary.message()
    in_run = current_flow_run_id() is not None
    if publish and in_run:
        publish_summary(
            summary.bot, summary.title, summary.counts, summary.rows, summary.links, message=message
        )
    log = get_logger("flows")
    if summary.system_failures:
        log.error("run failed", **summary.counts)
        return Failed(message=message, data=RunFailed(message, summary.as_dict()))
    if summary.business_exceptions:
        log.warning("run completed with business exceptions", **summary.counts)
        if alert:
            from flows.alerts import alert_business_exceptions

            alert_business_exceptions(summary)
    else:
        log.info("run completed", **summary.counts)
    return Completed(message=message, data=summary.as_dict())


def refuse(title: str, problem: str, *, event: str = "run refused") -> State:
    """The ``Failed`` state of a run that could not start its work (bad input, refused sign-in).

    One sentence in the run's logs and as the state message, no traceback.
    """
    from prefect.states import Failed

    message = redact(f"{title}: {problem}")
    get_logger("flows").error(event, problem=redact(problem))
    return Failed(message=message, data=RunFailed(message))
