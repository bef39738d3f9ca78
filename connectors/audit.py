"""The append-only, hash-chained audit trail of what the bots did.

Each line of the audit file is one JSON record::

    {"seq": 1, "ts": "2026-04-01T09:00:00.000000+00:00", "event": "po_created",
     ...fields..., "prev_hash": "000...0", "hash": "<64 hex>"}

``hash`` is SHA-256 (or HMAC-SHA256 when a key is configured) over the canonical
JSON (sorted keys, no spaces, UTF-8) of the record without ``hash``; ``prev_hash``
is the previous record's ``hash`` (64 zeros for the first). Changing, removing,
inserting or reordering any record breaks the chain at that record, which
:func:`verify_audit` and ``procbots audit verify`` report by ``seq``.

Appends are flushed and fsynced (one ``fsync`` per record), and serialised
across processes with an exclusive ``fcntl.flock`` on the file: the writer takes
the last record's ``seq``/``hash`` under the lock, so several processes (bots,
workers) can append to one file and the chain stays whole. It reads them from the
file's tail only when the file changed since its own last append (another writer
appended, or the file was replaced); otherwise it remembers them. Secrets are redacted before writing, with
the same rules as the logs (:func:`config.logging.redact`).

Example:
    >>> log = AuditLog(Path("var/audit/audit.jsonl"))  # doctest: +SKIP
    >>> log.append("po_created", po_number="PO-000123", actor="buyer1")  # doctest: +SKIP
    >>> verify_audit(Path("var/audit/audit.jsonl")).ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.logging import get_logger, redact

__all__ = [
    "GENESIS_HASH",
    "RESERVED_FIELDS",
    "AuditLog",
    "AuditVerification",
    "audit_event",
    "canonical_json",
    "record_hash",
    "reset_default_audit_log",
    "verify_audit",
]

GENESIS_HASH = "0" * 64
RESERVED_FIELDS = frozenset({"seq", "ts", "event", "prev_hash", "hash"})
# How far back from the end we look for the last complete line (records are small).
_TAIL_CHUNK = 64 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # money stays exact
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def canonical_json(record: dict[str, Any]) -> str:
    """The exact text that is hashed: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def record_hash(record: dict[str, Any], hmac_key: str | None = None) -> str:
    """SHA-256 (or HMAC-SHA256 with ``hmac_key``) of a record without its ``hash``."""
    body = canonical_json({k: v for k, v in record.items() if k != "hash"}).encode("utf-8")
    if hmac_key:
        return hmac.new(hmac_key.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def _last_record(fd: int) -> dict[str, Any] | None:
    """The last complete record of the file, or None when it is empty.

    A torn last line (a crash in the middle of a write) is left for ``verify`` to
    report; the writer continues from the last complete record before it.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]  # may be a partial line
        for line in reversed(lines):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict) and isinstance(parsed.get("seq"), int):
                return parsed
        if start == 0:
            return None
        chunk *= 4


class AuditLog:
    """One append-only audit file with a SHA-256 (or HMAC-SHA256) hash chain.

    Args:
        path: the JSONL file; its folder is created when missing.
        hmac_key: optional key; with it the chain cannot be recomputed by someone
            who can edit the file but does not hold the key.

    Example:
        >>> log = AuditLog(tmp_path / "audit.jsonl")  # doctest: +SKIP
        >>> log.append("invoice_held", invoice_number="INV-1", reason="PRICE_OVER_TOLERANCE")["seq"]
        1
    """

    def __init__(self, path: Path, hmac_key: str | None = None) -> None:
        self.path = Path(path)
        self.hmac_key = hmac_key or None
        # flock is per open file description; threads of one process share this
        # lock so they do not interleave either.
        self._thread_lock = threading.Lock()
        # (device, inode, size, mtime) of the file right after our last append, with the
        # seq and hash written then: when the file is still exactly that, nobody
        # else appended and the tail need not be read and parsed again.
        self._tail: tuple[tuple[int, int, int, int], int, str] | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)

    def _last(self, fd: int) -> tuple[int, str] | None:
        """``(seq, hash)`` of the last record, from the cache when the file is unchanged."""
        stat = os.fstat(fd)
        if self._tail is not None and self._tail[0] == (
            stat.st_dev,
            stat.st_ino,
            stat.st_size,
            stat.st_mtime_ns,
        ):
            return self._tail[1], self._tail[2]
        last = _last_record(fd)
        return (last["seq"], str(last.get("hash", ""))) if last else None

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Appends one record and returns it as written (after redaction).

        Raises:
            ValueError: when ``event`` is empty or a field uses a reserved name.
        """
        if not event:
            raise ValueError("audit event name must not be empty")
        clash = RESERVED_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"audit fields may not be named {sorted(clash)}")
        safe_fields = json.loads(canonical_json(redact(fields)))
        with self._thread_lock:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    self._tail, tail = None, self._last(fd)
                    record: dict[str, Any] = {
                        "seq": (tail[0] + 1) if tail else 1,
                        "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                        "event": redact(event),
                        **safe_fields,
                        "prev_hash": tail[1] if tail else GENESIS_HASH,
                    }
                    record["hash"] = record_hash(record, self.hmac_key)
                    line = (canonical_json(record) + "\n").encode("utf-8")
                    # One write of the whole line under O_APPEND, then fsync, before
                    # the lock is released: the next writer sees this record.
                    written = os.write(fd, line)
                    if written != len(line):
                        raise OSError(f"{self.path}: short write to the audit log ({written}/{len(line)})")
                    os.fsync(fd)
                    stat = os.fstat(fd)
                    self._tail = (
                        (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns),
                        record["seq"],
                        record["hash"],
                    )
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return record


@dataclass(frozen=True)
class AuditVerification:
    """Result of :func:`verify_audit`."""

    ok: bool
    records: int
    first_broken_seq: int | None
    message: str


def verify_audit(path: Path, hmac_key: str | None = None) -> AuditVerification:
    """Checks the whole chain of an audit file.

    Detects an edited record (its hash no longer matches), a deleted, inserted or
    reordered record (``seq`` out of order or ``prev_hash`` not the previous
    hash), a line that is not a record (torn or truncated), and a file whose
    first record is not ``seq`` 1. ``first_broken_seq`` is the ``seq`` at which
    the chain is first broken: the record's own ``seq`` when it parses,
    otherwise the ``seq`` expected at that position.
    """
    path = Path(path)
    if not path.is_file():
        return AuditVerification(False, 0, None, f"{path}: no such audit file")
    expected_seq = 1
    prev_hash = GENESIS_HASH
    records = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            where = f"{path}:{line_no}"
            if not raw.endswith(b"\n"):
                return _broken(
                    records, expected_seq, f"{where}: torn last line (no newline), seq {expected_seq}"
                )
            try:
                record = json.loads(raw)
            except ValueError:
                return _broken(
                    records, expected_seq, f"{where}: not a JSON record, expected seq {expected_seq}"
                )
            if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                return _broken(records, expected_seq, f"{where}: record without an integer seq")
            seq = record["seq"]
            if seq != expected_seq:
                # A record removed or inserted before this one, or records swapped.
                broken = min(seq, expected_seq)
                return _broken(
                    records,
                    broken,
                    f"{where}: seq {seq} where seq {expected_seq} was expected (broken at seq {broken})",
                )
            if record.get("prev_hash") != prev_hash:
                return _broken(
                    records, seq, f"{where}: seq {seq} does not follow the previous record (prev_hash)"
                )
            if record.get("hash") != record_hash(record, hmac_key):
                return _broken(records, seq, f"{where}: seq {seq} was altered (hash mismatch)")
            prev_hash = record["hash"]
            expected_seq += 1
            records += 1
    return AuditVerification(True, records, None, f"intact, {records} records")


def _broken(records: int, seq: int, message: str) -> AuditVerification:
    return AuditVerification(False, records, seq, message)


_default_log: AuditLog | None = None
_default_lock = threading.Lock()


def _default_audit_log() -> AuditLog:
    global _default_log
    with _default_lock:
        if _default_log is None:
            from config.settings import get_settings

            settings = get_settings()
            key = settings.audit.hmac_key.get_secret_value() if settings.audit.hmac_key else None
            _default_log = AuditLog(settings.audit_path, hmac_key=key)
        return _default_log


def audit_event(event: str, **fields: Any) -> dict[str, Any]:
    """Appends to the process audit log (``get_settings().audit_path``) and logs it.

    The structlog event ``audit`` carries the same fields plus ``seq`` and
    ``hash``, so the trail also shows in the Prefect UI for a flow run.

    Example:
        >>> audit_event("po_created", po_number="PO-000123", item_id="wi-42")  # doctest: +SKIP
    """
    record = _default_audit_log().append(event, **fields)
    get_logger("audit").info(
        "audit", **{("audit_event" if k == "event" else k): v for k, v in record.items()}
    )
    return record


def reset_default_audit_log() -> None:
    """Forgets the process audit log so the next call re-reads the settings (tests)."""
    global _default_log
    with _default_lock:
        _default_log = None
