"""Run ids: one format, one function.

A run id names a run's evidence folder (``evidence/<run id>/<item id>/``), its
output files and its audit events: ``20261207T113000Z-1a2b3c`` (UTC time of the
start, then a short random or given suffix), so ids sort by time.

Example:
    >>> new_run_id(suffix="flow1234", now=dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC))
    '20261207T113000Z-flow1234'
"""

from __future__ import annotations

import datetime as dt
import uuid

__all__ = ["new_run_id"]


def new_run_id(*, suffix: str | None = None, now: dt.datetime | None = None) -> str:
    """``<UTC time>Z-<suffix>``; the suffix defaults to six random hex digits."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{suffix or uuid.uuid4().hex[:6]}"
