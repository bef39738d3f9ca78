"""Drop folders: files arrive in a shared folder and are processed exactly once, never lost.

Layout under the folder's root::

    inbox/        files arrive here (suppliers, scanners, other systems, :meth:`DropFolder.deposit`)
    processing/   claimed by one worker: ``<claim id>~<name>``
    done/         processed
    failed/       could not be processed; ``<name>.reason.json`` beside each
    quarantine/   refused as unsafe or unreadable; ``<name>.reason.json`` beside each

Rules:

- A claim is one atomic ``os.rename`` of the inbox entry to a name in ``processing/``
  that no one else can choose (it carries a random claim id), so of several workers
  (threads, processes, machines on one share) exactly one wins and the others get
  ``FileNotFoundError`` and move on.
- A file is claimed only once it is stable: the same size and mtime seen again at least
  ``stable_for_s`` later (a scanner or SMB copy still writing it is left alone).
- No file is ever deleted or overwritten: every move out of ``processing/`` goes to a
  name that is free (``invoice (1).xml``), reserved atomically with a hard link.
- Names are normalised (Unicode NFC, unsafe characters replaced, long names shortened
  keeping the extension); names with a path in them (``../x.pdf``, ``/etc/passwd``) are
  refused, and symlinks or other non-regular entries in the inbox are quarantined
  without being followed.
- The SHA-256 of every claimed file goes into the audit trail with each move, and into
  the ``.reason.json`` of a failed or quarantined file.

Example:
    >>> folder = DropFolder(Path("var/invoices"), stable_for_s=2)  # doctest: +SKIP
    >>> while (claimed := folder.claim_next(timeout=5)) is not None:  # doctest: +SKIP
    ...     try:
    ...         read_document(claimed.path)
    ...     except PeppolError as exc:
    ...         claimed.quarantine("MALFORMED_DOCUMENT", str(exc))
    ...     else:
    ...         claimed.done()
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

__all__ = [
    "REASON_SUFFIX",
    "ClaimedFile",
    "DropFolder",
    "DropFolderError",
    "normalise_name",
    "refuse_traversal",
]

REASON_SUFFIX = ".reason.json"
"""Suffix of the sidecar written beside every failed or quarantined file."""

MAX_NAME_BYTES = 150
"""Longest normalised name (UTF-8 bytes); leaves room under the usual 255-byte limit for
the claim id, a collision suffix and ``.reason.json``."""

_CLAIM_SEP = "~"
_CLAIM_ID = re.compile(r"(?P<ms>\d{13})-(?P<rand>[0-9a-f]{8})")
# Windows and SMB refuse these; replaced so a share stays usable from every desktop.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?", re.IGNORECASE)
_CHUNK = 1024 * 1024

AuditFn = Callable[..., Any]
Outcome = Literal["done", "failed", "quarantine", "inbox"]
_EVENTS: dict[Outcome, str] = {
    "done": "dropfolder_done",
    "failed": "dropfolder_failed",
    "quarantine": "dropfolder_quarantined",
    "inbox": "dropfolder_released",
}


class DropFolderError(ValueError):
    """A name or folder the drop folder refuses (path traversal, symlinked folders)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _printable(name: str) -> str:
    """A name as text that can always be logged (undecodable bytes shown as escapes)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def refuse_traversal(name: str) -> None:
    """Raises :class:`DropFolderError` for a name that is not a plain file name.

    ``../x.pdf``, ``a/b.pdf``, ``C:\\x.pdf``, absolute paths, ``.`` and ``..`` and names
    with NUL are refused: a drop folder takes names, never paths.
    """
    shown = _printable(name)
    if not name or name in (".", ".."):
        raise DropFolderError(f"refused file name {shown!r}: not a file name")
    if "\x00" in name:
        raise DropFolderError(f"refused file name {shown!r}: contains NUL")
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise DropFolderError(f"refused file name {shown!r}: absolute path")
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        raise DropFolderError(f"refused file name {shown!r}: path traversal ('..')")
    if len(parts) > 1:
        raise DropFolderError(f"refused file name {shown!r}: contains a folder separator")


def normalise_name(name: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A safe, portable file name for ``name``.

    Unicode NFC; control characters, undecodable bytes and ``\\ / : * ? " < > |``
    become ``_``; leading and trailing dots and spaces go; Windows device names get a
    ``_`` prefix; a name over ``max_bytes`` (UTF-8) is shortened keeping its extension
    and gaining ``~`` and 8 hex digits of the full name's SHA-256, so two long names
    that share a beginning stay different.

    Example:
        >>> normalise_name("Cafe\\u0301 <invoice>?.pdf")
        'Café _invoice__.pdf'
    """
    text = _printable(name) if any(0xDC80 <= ord(c) <= 0xDCFF for c in name) else name
    text = unicodedata.normalize("NFC", text)
    text = "".join("_" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") else c for c in text)
    text = _UNSAFE.sub("_", text).strip(" .")
    if not text:
        text = "unnamed"
    if _WINDOWS_RESERVED.fullmatch(text):
        text = "_" + text
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    tail = f"~{digest}" + (f".{ext}" if ext else "")
    budget = max_bytes - len(tail.encode("utf-8"))
    short = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return short + tail


def _with_suffix(name: str, n: int) -> str:
    """``invoice.xml`` -> ``invoice (n).xml``."""
    if n == 0:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{ext}"


def _place(src: Path, folder: Path, name: str, *, sidecar: bool) -> Path:
    """Moves ``src`` into ``folder`` under ``name`` or the first free ``name (n)``.

    Never overwrites: the new name is reserved by a hard link (fails if it exists)
    before the old one is removed. Where hard links are not supported, an exclusive
    empty placeholder reserves the name and ``src`` replaces only that placeholder.
    """
    for n in range(100_000):
        candidate = folder / _with_suffix(name, n)
        if sidecar and os.path.lexists(f"{candidate}{REASON_SUFFIX}"):
            continue
        try:
            os.link(src, candidate, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            except FileExistsError:
                continue
            os.close(fd)
            src.replace(candidate)
            return candidate
        src.unlink()
        return candidate
    raise DropFolderError(f"{folder}: no free name for {name!r}")  # pragma: no cover


def _write_new(folder: Path, name: str, data: bytes) -> Path:
    """Writes ``data`` as a new file ``name`` (or ``name (n)``) in ``folder``, atomically."""
    tmp = folder / f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return _place(tmp, folder, name, sidecar=False)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


@dataclass
class ClaimedFile:
    """A file this worker holds in ``processing/``; finish it with exactly one of
    :meth:`done`, :meth:`fail` or :meth:`quarantine` (or give it back with :meth:`release`).

    Used as a context manager, an exception inside the block fails the file with
    reason ``PROCESSING_ERROR`` (and propagates); leaving the block without deciding
    marks it done.
    """

    folder: DropFolder
    path: Path
    original_name: str
    name: str
    sha256: str
    size: int
    received_at: datetime
    claimed_at: datetime
    claim_id: str
    outcome: Outcome | None = field(default=None)
    final_path: Path | None = field(default=None)

    def done(self) -> Path:
        """Moves the file to ``done/``; returns where it now is."""
        return self._finish("done", None, "", ())

    def fail(self, reason: str, message: str, errors: Iterable[Any] = ()) -> Path:
        """Moves the file to ``failed/`` with a ``.reason.json`` beside it."""
        return self._finish("failed", reason, message, errors)

    def quarantine(self, reason: str, message: str, errors: Iterable[Any] = ()) -> Path:
        """Moves the file to ``quarantine/`` with a ``.reason.json`` beside it."""
        return self._finish("quarantine", reason, message, errors)

    def release(self) -> Path:
        """Puts the file back in ``inbox/`` undecided: its items are not finished (the run
        stopped early), so the next run takes it again. Returns its inbox path."""
        return self._finish("inbox", None, "", ())

    def _finish(self, outcome: Outcome, reason: str | None, message: str, errors: Iterable[Any]) -> Path:
        if self.outcome is not None:
            raise RuntimeError(f"{self.name}: already {self.outcome} ({self.final_path})")
        target = self.folder.root / outcome
        final = _place(self.path, target, self.name, sidecar=reason is not None)
        self.outcome, self.final_path = outcome, final
        decided = _now()
        fields: dict[str, Any] = {
            "folder": str(self.folder.root),
            "file": self.original_name,
            "stored_as": f"{outcome}/{final.name}",
            "sha256": self.sha256,
            "size": self.size,
            "owner": self.folder.owner,
        }
        if reason is not None:
            error_list = [_jsonable(e) for e in errors]
            sidecar = {
                "reason": reason,
                "message": message,
                "sha256": self.sha256,
                "size": self.size,
                "original_name": self.original_name,
                "stored_name": final.name,
                "outcome": outcome,
                "received_at": self.received_at.isoformat(),
                "claimed_at": self.claimed_at.isoformat(),
                "decided_at": decided.isoformat(),
                "owner": self.folder.owner,
                "errors": error_list,
            }
            data = (json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
            _write_new(target, final.name + REASON_SUFFIX, data)
            fields |= {"reason": reason, "message": message, "errors": len(error_list)}
        self.folder._audit(_EVENTS[outcome], **fields)
        return final

    def __enter__(self) -> ClaimedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.outcome is not None:
            return
        if exc is None:
            self.done()
        else:
            self.fail("PROCESSING_ERROR", f"{type(exc).__name__}: {exc}")


@dataclass
class _Seen:
    key: tuple[int, int, int]
    since: float


class DropFolder:
    """One drop folder (``inbox``/``processing``/``done``/``failed``/``quarantine``).

    Args:
        root: the folder; the five subfolders are created when missing, and refused
            when they are symlinks.
        stable_for_s: how long size and mtime must stay unchanged before a file is
            claimed (default 2 s).
        audit: ``audit(event, **fields)``; default :func:`connectors.audit.audit_event`.
        owner: who claims, recorded in the audit trail (default ``host:pid``).
        poll_s: how often :meth:`claim_next` looks again while it waits.

    Example:
        >>> folder = DropFolder(tmp_path / "contracts", stable_for_s=0.1)  # doctest: +SKIP
        >>> folder.deposit(b"%PDF-1.7 ...", "../../etc/passwd")  # doctest: +SKIP
        Traceback (most recent call last):
        DropFolderError: refused file name '../../etc/passwd': path traversal ('..')
    """

    SUBFOLDERS = ("inbox", "processing", "done", "failed", "quarantine")

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        stable_for_s: float = 2.0,
        audit: AuditFn | None = None,
        owner: str | None = None,
        poll_s: float = 0.05,
    ) -> None:
        self.root = Path(root).absolute()
        self.stable_for_s = stable_for_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_s = poll_s
        self._audit_fn = audit
        self._seen: dict[str, _Seen] = {}
        for sub in self.SUBFOLDERS:
            path = self.root / sub
            if path.is_symlink():
                raise DropFolderError(f"{path}: is a symlink; drop folder subfolders must be real folders")
            path.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        """Where files arrive."""
        return self.root / "inbox"

    @property
    def processing(self) -> Path:
        """Where claimed files are while a worker holds them."""
        return self.root / "processing"

    def _audit(self, event: str, **fields: Any) -> None:
        if self._audit_fn is None:
            from connectors.audit import audit_event

            self._audit_fn = audit_event
        self._audit_fn(event, **fields)

    # --- arriving -----------------------------------------------------------------------

    def deposit(self, source: bytes | str | os.PathLike[str] | IO[bytes], name: str) -> Path:
        """Puts a file into the inbox under a normalised, free name; returns its path.

        The file appears whole (written aside, then linked in), so a worker never sees
        half of it.

        Raises:
            DropFolderError: ``name`` is a path rather than a file name.
        """
        refuse_traversal(name)
        if isinstance(source, bytes):
            data = source
        elif isinstance(source, str | os.PathLike):
            data = Path(source).read_bytes()
        else:
            data = source.read()
        return _write_new(self.inbox, normalise_name(name), data)

    # --- claiming -----------------------------------------------------------------------

    def _scan(self) -> tuple[list[tuple[str, os.stat_result]], list[str]]:
        """Inbox entries as (name, lstat) that are regular files, and names to refuse."""
        now = time.monotonic()
        files: list[tuple[str, os.stat_result]] = []
        refused: list[str] = []
        present: set[str] = set()
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith((".", "~$")):
                    continue  # partial uploads (.tmp-*, rsync) and Office lock files
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    continue  # folders are not documents; left for a person
                present.add(name)
                if not stat.S_ISREG(st.st_mode):
                    refused.append(name)  # symlinks, FIFOs, devices: never opened
                    continue
                key = (st.st_size, st.st_mtime_ns, st.st_ino)
                seen = self._seen.get(name)
                if seen is None or seen.key != key:
                    self._seen[name] = _Seen(key, now)
                files.append((name, st))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        files.sort(key=lambda item: (item[1].st_mtime_ns, item[0]))
        return files, refused

    def _stable(self, name: str) -> float:
        """Seconds until ``name`` counts as stable (0 or less: stable now)."""
        seen = self._seen[name]
        return self.stable_for_s - (time.monotonic() - seen.since)

    def _take(self, name: str) -> tuple[Path, str, str] | None:
        """The claim: one atomic rename to a name only this call can choose."""
        claim_id = f"{int(time.time() * 1000):013d}-{secrets.token_hex(4)}"
        safe = normalise_name(name)
        dest = self.processing / f"{claim_id}{_CLAIM_SEP}{safe}"
        try:
            (self.inbox / name).rename(dest)  # os.rename: atomic, and only one caller wins
        except FileNotFoundError:
            self._seen.pop(name, None)
            return None  # another worker won
        self._seen.pop(name, None)
        return dest, claim_id, safe

    def _refuse(self, dest: Path, claim_id: str, safe: str, name: str, st: os.stat_result) -> None:
        """Quarantines a claimed symlink or special file without following or opening it."""
        link = stat.S_ISLNK(st.st_mode)
        claimed = ClaimedFile(
            folder=self,
            path=dest,
            original_name=_printable(name),
            name=safe,
            sha256="",
            size=st.st_size,
            received_at=datetime.fromtimestamp(st.st_mtime, UTC),
            claimed_at=_now(),
            claim_id=claim_id,
        )
        what = f"a symlink pointing to {str(dest.readlink())!r}" if link else "not a regular file"
        claimed.quarantine(
            "NOT_A_REGULAR_FILE",
            f"{claimed.original_name}: {what}; drop folders take plain files only and never follow links",
        )

    def claim(self, name: str) -> ClaimedFile | None:
        """Claims the inbox file ``name`` now, stable or not.

        Returns ``None`` when another worker has it, or when it was not a regular file
        (a symlink, FIFO or device: quarantined unopened).

        Raises:
            DropFolderError: ``name`` is a path rather than a file name.
        """
        refuse_traversal(name)
        taken = self._take(name)
        if taken is None:
            return None
        dest, claim_id, safe = taken
        # lstat after the rename: what we now hold, even if the entry was swapped meanwhile.
        st = os.lstat(dest)
        if not stat.S_ISREG(st.st_mode):
            self._refuse(dest, claim_id, safe, name, st)
            return None
        claimed_at = _now()
        digest, size = _sha256(dest)
        claimed = ClaimedFile(
            folder=self,
            path=dest,
            original_name=_printable(name),
            name=safe,
            sha256=digest,
            size=size,
            received_at=datetime.fromtimestamp(st.st_mtime, UTC),
            claimed_at=claimed_at,
            claim_id=claim_id,
        )
        self._audit(
            "dropfolder_claimed",
            folder=str(self.root),
            file=claimed.original_name,
            stored_as=f"processing/{dest.name}",
            sha256=digest,
            size=size,
            owner=self.owner,
        )
        return claimed

    def claim_next(self, timeout: float = 0.0) -> ClaimedFile | None:
        """Claims the oldest stable inbox file.

        Waits up to ``timeout`` seconds for a file to arrive or settle; ``None`` when
        there is none (or every candidate went to another worker).
        """
        deadline = time.monotonic() + timeout
        while True:
            files, refused = self._scan()
            for name in refused:
                self.claim(name)  # quarantines it unopened
            wait = None
            for name, _ in files:
                remaining = self._stable(name)
                if remaining > 0:
                    wait = remaining if wait is None else min(wait, remaining)
                    continue
                claimed = self.claim(name)
                if claimed is not None:
                    return claimed
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, self.poll_s if wait is None else max(min(wait, self.poll_s), 0.001)))

    def __iter__(self) -> Iterator[ClaimedFile]:
        """Claims files until the inbox holds none, waiting for unsettled ones to settle."""
        while True:
            claimed = self.claim_next()
            if claimed is not None:
                yield claimed
                continue
            files, _ = self._scan()
            if not files:
                return
            time.sleep(max(min(min(self._stable(n) for n, _ in files), self.poll_s), 0.001))

    # --- recovery -----------------------------------------------------------------------

    def recover_stale(
        self, older_than_s: float, *, keep: Collection[str] = (), names: Mapping[str, str] | None = None
    ) -> list[Path]:
        """Returns files claimed more than ``older_than_s`` ago to the inbox (after a
        worker crashed); returns their new inbox paths.

        Choose ``older_than_s`` above the longest time a worker may hold a file, or
        name the files a live worker holds in ``keep`` (names in ``processing/``).
        ``names`` gives the name a file was dropped under, by its name in
        ``processing/``, where the claim had to shorten it.
        """
        now_ms = time.time() * 1000
        recovered: list[Path] = []
        with os.scandir(self.processing) as entries:
            stale = []
            for entry in entries:
                claim, sep, name = entry.name.partition(_CLAIM_SEP)
                match = _CLAIM_ID.fullmatch(claim) if sep else None
                if match is not None:
                    claimed_ms = float(match.group("ms"))
                else:  # not put here by a claim; judge by when it last changed
                    claimed_ms = entry.stat(follow_symlinks=False).st_ctime * 1000
                    name = entry.name
                if now_ms - claimed_ms >= older_than_s * 1000 and entry.name not in keep:
                    stale.append((entry.name, (names or {}).get(entry.name) or name or "unnamed"))
        for stored, name in stale:
            src = self.processing / stored
            try:
                back = _place(src, self.inbox, name, sidecar=False)
            except FileNotFoundError:
                continue  # its worker finished it meanwhile
            self._audit(
                "dropfolder_recovered",
                folder=str(self.root),
                file=name,
                stored_as=f"inbox/{back.name}",
                owner=self.owner,
            )
            recovered.append(back)
        return recovered
