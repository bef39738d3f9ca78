"""Links to report, evidence and audit files that a browser can open: through the console.

A Prefect UI cannot open ``file://`` links ("Not allowed to load local resource"),
so the console (``procbots console``) serves the files of three data folders over
HTTP: ``outbox`` (reports, PEPPOL orders), ``evidence`` (screenshots, page HTML,
traces) and ``audit`` (the audit log). :func:`console_link` turns a path in one of
them into the console's address for it; :func:`download_path` is the console's
side, turning such an address back into a path and refusing anything outside.

Example:
    >>> from config.settings import Settings
    >>> settings = Settings(paths={"root": "/srv/procbots"}, console={"public_url": "https://pb.example.nhs.uk"})
    >>> console_link(Path("/srv/procbots/outbox/purchase-orders-1.xlsx"), settings)
    'https://pb.example.nhs.uk/files/outbox/purchase-orders-1.xlsx'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["DOWNLOAD_FOLDERS", "FILES_PREFIX", "console_link", "download_path", "download_route"]

DownloadFolder = Literal["outbox", "evidence", "audit"]
#: The data folders whose files the console serves; nothing else is reachable.
DOWNLOAD_FOLDERS: tuple[DownloadFolder, ...] = ("outbox", "evidence", "audit")
#: Where the console serves them: ``/files/<folder>/<path inside the folder>``.
FILES_PREFIX = "/files"


def _roots(settings: Settings) -> dict[str, Path]:
    return {name: settings.paths.resolve(name).resolve() for name in DOWNLOAD_FOLDERS}


def download_route(path: Path | str, settings: Settings) -> str | None:
    """The console's path (``/files/outbox/...``) for a file, or ``None`` when it is in no served folder.

    Example:
        >>> from config.settings import Settings
        >>> download_route("/srv/pb/evidence/run-1/7/page.png", Settings(paths={"root": "/srv/pb"}))
        '/files/evidence/run-1/7/page.png'
    """
    target = Path(path).resolve()
    for name, root in _roots(settings).items():
        if target.is_relative_to(root) and target != root:
            return f"{FILES_PREFIX}/{name}/{quote(target.relative_to(root).as_posix())}"
    return None


def console_link(path: Path | str, settings: Settings) -> str:
    """Where a person opens ``path``: the console's address when ``console.public_url`` is set.

    Falls back to the ``file://`` URI when no public URL is configured or the
    file is outside the served folders (outbox, evidence, audit).

    Example:
        >>> from config.settings import Settings
        >>> console_link("/srv/pb/audit/audit.jsonl", Settings(paths={"root": "/srv/pb"}))
        'file:///srv/pb/audit/audit.jsonl'
    """
    base = settings.console.public_url
    route = download_route(path, settings) if base else None
    if base and route:
        return base + route
    return Path(path).resolve().as_uri()


def download_path(folder: str, relative: str, settings: Settings) -> Path:
    """The file a console address names, checked to lie inside its folder.

    Raises:
        PermissionError: ``folder`` is not one of :data:`DOWNLOAD_FOLDERS`, or
            ``relative`` leaves the folder (``..``, an absolute path, a symlink out).
        FileNotFoundError: the path is inside but no regular file is there.
    """
    roots = _roots(settings)
    if folder not in roots:
        raise PermissionError(f"{folder!r} is not a folder the console serves ({', '.join(roots)})")
    root = roots[folder]
    relative_path = Path(relative)
    if relative_path.is_absolute() or ".." in relative_path.parts or "\x00" in relative:
        raise PermissionError(f"{relative!r} is not a path inside {folder}/")
    target = (root / relative_path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise PermissionError(f"{relative!r} leads outside {folder}/")
    if not target.is_file():
        raise FileNotFoundError(f"{folder}/{relative}: no such file")
    return target
