"""Reading a bot run's ledger from a test: its items, and waiting until a killed run's leases ran out."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any


def ledger_items(env: dict[str, str], bot: str = "purchase_orders") -> list[Any]:
    from bots.runtime.ledger import Ledger

    ledger = Ledger(f"sqlite:///{env['PROCBOTS_PATHS__ROOT']}/ledger.db", audit=False)
    try:
        return ledger.list(bot=bot)
    finally:
        ledger.close()


def wait_for_leases_to_expire(env: dict[str, str], bot: str = "purchase_orders") -> None:
    deadline = time.monotonic() + 30
    while any(
        item.lease_expires_at is not None and item.lease_expires_at > dt.datetime.now(dt.UTC)
        for item in ledger_items(env, bot)
    ):
        assert time.monotonic() < deadline, "the killed run's leases never expired"
        time.sleep(0.2)
