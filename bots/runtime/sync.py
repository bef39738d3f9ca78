"""The one bridge from synchronous callers (CLI, Prefect tasks) to the async runtime."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs ``coroutine`` to the end and returns its result.

    In its own event loop; in a helper thread when the caller already runs a loop
    (a Prefect task, a notebook), since a loop cannot wait for itself.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="procbots-run") as pool:
        return pool.submit(asyncio.run, coroutine).result()
