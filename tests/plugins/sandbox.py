"""Sandbox portal fixtures (owned by the sandbox work, issue 3)."""
