"""Reports and downloads: the newest report and audit files, and any file inside the outbox,
evidence and audit folders (nothing outside them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from config.settings import Settings
from connectors.console_links import download_path, download_route
from flows.console.web import console, render, signed_in

router = APIRouter()

#: The newest files listed per folder on the reports page.
LISTED = 100

_INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: A captured portal page is someone else's HTML: shown with scripts, forms and plugins off.
_EVIDENCE_PAGE_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class Listed:
    """A file on the reports page."""

    route: str
    name: str
    size: int
    modified: datetime


def _newest(folder: Literal["outbox", "audit"], settings: Settings) -> list[Listed]:
    root = settings.paths.resolve(folder)
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            route = download_route(path, settings)
            if route is not None:
                stat = path.stat()
                found.append(
                    Listed(route, path.relative_to(root).as_posix(), stat.st_size,
                           datetime.fromtimestamp(stat.st_mtime, UTC))
                )  # fmt: skip
    return sorted(found, key=lambda f: f.modified, reverse=True)[:LISTED]


@router.get("/files")
def reports(request: Request) -> Response:
    """The newest reports (outbox) and the audit log, each a download link."""
    session = signed_in(request)
    settings = console(request).settings
    folders = {"outbox": _newest("outbox", settings), "audit": _newest("audit", settings)}
    return render(request, "reports.html", {"folders": folders, "listed": LISTED}, session=session)


@router.get("/files/{folder}/{relative:path}")
def download(request: Request, folder: str, relative: str) -> Response:
    session = signed_in(request)
    try:
        path = download_path(folder, relative, console(request).settings)
    except FileNotFoundError as exc:
        return render(request, "message.html", {"title": "Not found", "message": str(exc)}, status=404,
                      session=session)  # fmt: skip
    suffix = path.suffix.lower()
    if suffix in _INLINE:
        return FileResponse(path, media_type=_INLINE[suffix])
    if suffix in (".html", ".htm") and request.query_params.get("download") != "1":
        response = FileResponse(path, media_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = _EVIDENCE_PAGE_POLICY
        return response
    return FileResponse(path, filename=path.name, content_disposition_type="attachment")
