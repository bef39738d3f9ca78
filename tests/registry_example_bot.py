"""A bot made only of a parameter model and a run callable, for the registry's flow factory tests."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bots.registry import BotParameters, BotRun, Cli, RunContext


class ExampleParameters(BotParameters):
    """What the example bot is asked to do."""

    outcome: Annotated[str, Cli("--outcome")] = Field(
        "done", description="How the run ends: done, business, failed or stopped."
    )


def run_example(params: ExampleParameters, context: RunContext) -> BotRun:
    """Ends as asked, with one item, naming the run id it was given."""
    counts = {
        "done": {"done": 1},
        "business": {"business_exception": 1},
        "failed": {"failed": 1},
        "stopped": {"not_processed": 1},
    }[params.outcome]
    row = {"item_id": "EX-1", "reason_code": "EXAMPLE", "reason": context.run_id}
    return BotRun(
        title="Example",
        counts=counts,
        exit_code=0 if params.outcome == "done" else 1,
        exceptions=[] if params.outcome == "done" else [row],
        stopped="PORTAL_UNAVAILABLE" if params.outcome == "stopped" else "",
        stopped_message="the portal refused the connection" if params.outcome == "stopped" else "",
    )
