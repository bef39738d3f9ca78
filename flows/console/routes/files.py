"""Downloads of report, evidence and audit files: only files inside those three data folders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from connectors.console_links import download_path
from flows.console.web import console, render, signed_in

router = APIRouter()

_INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: A captured portal page is someone else's HTML: shown with scripts, forms and plugins off.
_EVIDENCE_PAGE_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


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
