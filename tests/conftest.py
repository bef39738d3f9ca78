"""Shared test setup. Fixtures live in per-area plugin modules under tests/plugins/."""

pytest_plugins = [
    "tests.plugins.env",
    "tests.plugins.browser",
    "tests.plugins.prefect",
    "tests.plugins.sandbox",
    "tests.plugins.postgres",
    "tests.plugins.prefect_server",
]
