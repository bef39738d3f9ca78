"""Sandbox portal fixtures (owned by the sandbox work, issue 3).

``sandbox``: one well-behaved portal for the whole session (seed 1, 60 orders).
``sandbox_factory``: start extra portals with chaos, another seed or TOTP; each is
stopped at the end of the test.
``portal_login``: sign a Playwright page in as buyer1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.server import SandboxServer

SANDBOX_PASSWORD = "Sandbox-Buyer-2026!"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """A running sandbox portal without chaos (session-scoped; tests may add data to it)."""
    with SandboxServer(seed=1, orders=60) as server:
        yield server


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start a portal with its own options: ``sandbox_factory(chaos="shuffle=1", seed=2, orders=20)``."""
    started: list[SandboxServer] = []

    def start(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("orders", 20)
        server = SandboxServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def login(page: Any, base_url: str, next_path: str = "/", password: str = SANDBOX_PASSWORD) -> None:
    """Sign in through the login form (by label, as the bots do) and land on ``next_path``."""
    page.goto(f"{base_url}/login?next={next_path}")
    page.get_by_label("Username").fill("buyer1")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def portal_login() -> Callable[..., None]:
    """The :func:`login` helper as a fixture."""
    return login
