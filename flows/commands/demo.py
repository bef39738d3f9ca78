"""`procbots demo`: the daily job against the embedded sandbox, through Prefect.

The orchestration lives in :mod:`flows.demo`; this is its command line.
"""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    orders: Annotated[
        int,
        typer.Option("--orders", min=10, help="Purchase orders in the sandbox's history (and sample data)"),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sandbox and the sample inputs")] = 1,
    chaos: Annotated[
        str,
        typer.Option(
            "--chaos",
            help="Sandbox faults, e.g. 'error_rate=0.05,latency_ms=100,session_ttl_s=60,shuffle=1'",
        ),
    ] = "",
    contexts: Annotated[
        int | None,
        typer.Option("--contexts", min=1, max=32, help="Browser contexts per bot (default: settings)"),
    ] = None,
    keep_server: Annotated[
        bool,
        typer.Option(
            "--keep-server",
            help="Keep the Prefect server and the portal running after the summary (Ctrl-C stops)",
        ),
    ] = False,
    sequential: Annotated[
        bool,
        typer.Option("--sequential", help="Run the bot flows one after another instead of at the same time"),
    ] = False,
) -> None:
    """Run the daily job on the embedded default: sandbox portal, sample inputs, every flow through Prefect.

    Exit 0 when every flow run is Completed (business exceptions in the sample data are
    expected), 1 when one is not, 2 when the demo cannot start.
    """
    from flows.demo import DemoOptions, run_demo

    code = run_demo(
        DemoOptions(
            orders=orders,
            seed=seed,
            chaos=chaos,
            contexts=contexts,
            keep_server=keep_server,
            sequential=sequential,
        )
    )
    raise typer.Exit(code)
