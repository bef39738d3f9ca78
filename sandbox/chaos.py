"""Chaos knobs of the sandbox portal: the faults real trust portals show.

A spec is ``key=value,...`` (``--chaos "error_rate=0.1,latency_ms=200,shuffle=1,seed=7"``):

- ``error_rate``: share of requests answered with an HTTP 500 or 503 page. Half of the
  failed POSTs fail *after* the change was saved, like a legacy portal whose response
  is lost: the bot must look before it retries.
- ``latency_ms``: delay added to every page and XHR.
- ``slow_render_ms``: the main content arrives as a ``<template>`` and is put in the
  page by JavaScript this much later.
- ``session_ttl_s``: sessions end this long after sign-in; the next page is the login.
- ``shuffle``: ``1`` changes form field order and container ids on every load.
- ``seed``: seed of the chaos random stream (repeatable fault sequences).

``/_sandbox/*`` and ``/healthz`` are never disturbed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from random import Random

__all__ = ["DEFAULT_SESSION_TTL_S", "ChaosError", "ChaosSpec"]

DEFAULT_SESSION_TTL_S = 8 * 3600


class ChaosError(ValueError):
    """A chaos spec that cannot be understood."""


@dataclass(frozen=True)
class ChaosSpec:
    """Parsed chaos settings; the all-zero spec is a well-behaved portal."""

    error_rate: float = 0.0
    latency_ms: int = 0
    slow_render_ms: int = 0
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    shuffle: bool = False
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ChaosError(f"error_rate={self.error_rate}: expected a number from 0 to 1")
        for name in ("latency_ms", "slow_render_ms"):
            if getattr(self, name) < 0:
                raise ChaosError(f"{name}={getattr(self, name)}: expected 0 or more")
        if self.session_ttl_s <= 0:
            raise ChaosError(f"session_ttl_s={self.session_ttl_s}: expected more than 0")
        if self.seed is not None:
            self._rng.seed(self.seed)

    @classmethod
    def parse(cls, spec: str | None) -> ChaosSpec:
        """Parse ``key=value,...``; an empty spec means no chaos.

        Example:
            >>> ChaosSpec.parse("error_rate=0.1,shuffle=1").shuffle
            True
        """
        if not spec or not spec.strip():
            return cls()
        known = {f.name: f for f in fields(cls) if not f.name.startswith("_")}
        values: dict[str, object] = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or key not in known:
                raise ChaosError(
                    f"chaos spec {spec!r}: {part.strip()!r} is not key=value with a key in {', '.join(known)}"
                )
            try:
                if key == "error_rate" or key == "session_ttl_s":
                    values[key] = float(raw)
                elif key == "shuffle":
                    if raw not in ("0", "1", "true", "false"):
                        raise ValueError(raw)
                    values[key] = raw in ("1", "true")
                else:
                    values[key] = int(raw)
            except ValueError:
                raise ChaosError(f"chaos spec {spec!r}: {key}={raw!r} is not a valid number") from None
        return cls(**values)  # type: ignore[arg-type]

    def to_spec(self) -> str:
        """The spec string that parses back to this object (for a child process)."""
        parts = [
            f"error_rate={self.error_rate}",
            f"latency_ms={self.latency_ms}",
            f"slow_render_ms={self.slow_render_ms}",
            f"session_ttl_s={self.session_ttl_s}",
            f"shuffle={int(self.shuffle)}",
        ]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts)

    def random(self) -> float:
        """The next number of the chaos stream (thread-safe)."""
        with self._lock:
            return self._rng.random()

    def rng(self) -> Random:
        """A fresh generator for one page load (field shuffles), drawn from the chaos stream."""
        with self._lock:
            return random.Random(self._rng.getrandbits(64))
