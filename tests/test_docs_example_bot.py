"""The example bot of docs/adding-a-bot.md, run as written against the sandbox portal.

The code block under ``<!-- example-bot -->`` is taken from the guide and executed, so
the guide's bot is a real one: it raises its orders once, and a second run raises nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bots.runtime.run import run_bot
from bots.runtime.sync import run_sync
from sandbox.server import SandboxServer
from tests.test_purchase_orders_e2e import expected_orders, portal_orders, write_requisitions

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-bot.md"


def example_bot() -> Any:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(r"<!-- example-bot -->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/adding-a-bot.md lost its example bot"
    namespace: dict[str, Any] = {"__name__": "docs_example_bot"}
    exec(compile(found.group(1), str(GUIDE), "exec"), namespace)
    return namespace["QuickOrderBot"]


def test_the_guides_example_bot_raises_each_order_once_and_a_rerun_raises_nothing(
    settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import get_settings
    from tests.plugins.sandbox import SANDBOX_PASSWORD

    monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
    get_settings.cache_clear()
    bot = example_bot()
    source = write_requisitions(tmp_path / "requisitions.xlsx", 2, prefix="G-")
    orders = [order for order in expected_orders(source).values() if order is not None]
    with SandboxServer(seed=1, orders=20) as server:
        first = run_sync(run_bot(bot, orders, portal_url=server.url))
        assert first.counts == {"Done": 2}, [r.model_dump() for r in first.results]
        again = run_sync(run_bot(bot, orders, portal_url=server.url))
        assert again.counts == {"Done in an earlier run": 2}
        raised = Counter(o["requisition_ref"] for o in portal_orders(server, "G-"))
    assert raised == Counter({order.requisition_ref: 1 for order in orders})
