"""Evidence kept for a work item: a file (screenshot, HTML, trace) and its SHA-256."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Evidence"]


class Evidence(BaseModel):
    """One evidence file kept for an item (screenshot, HTML, trace) and its SHA-256."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
