"""The append-only, hash-chained audit trail of what the bots did.

Each line of the audit file is one JSON record in canonical form (sorted keys,
separators ``,`` and ``:`` without spaces, UTF-8, no duplicate keys)::

    {"chain":{"alg":"hmac-sha256","key_id":"3f0c...","v":2},"event":"po_created",
     "hash":"<64 hex>","prev_hash":"000...0","seq":1,"ts":"2026-04-01T09:00:00.000000+00:00",...}

The first record (``seq`` 1) carries ``chain``: the hash algorithm
(``sha256``, or ``hmac-sha256`` when a key is configured) and, for a keyed chain,
a key id (a fingerprint of the key, never the key). ``hash`` is SHA-256 (or
HMAC-SHA256) over the canonical JSON of the record without ``hash``;
``prev_hash`` is the previous record's ``hash`` (64 zeros for the first).
Changing, removing, inserting or reordering any record breaks the chain at that
record, which :func:`verify_audit` and ``procbots audit verify`` report by ``seq``.
A keyed chain needs its key to verify (:attr:`AuditVerification.needs_key`), and a
keyless re-chain of it fails against the key.

A record is at most :data:`MAX_RECORD_BYTES` (64 KiB). Larger fields are stored
by reference: the field becomes ``{"audit_ref": "<file>.blobs/<sha256>.json",
"sha256": ..., "bytes": ...}`` and the value is written, canonical, to that file
beside the log; verification checks the file's SHA-256. Nothing is truncated.

Appends are flushed and fsynced (one ``fsync`` per record), and serialised
across processes with an exclusive ``fcntl.flock`` on the file: the writer takes
the last record's ``seq``/``hash`` under the lock, so several processes (bots,
workers) can append to one file and the chain stays whole. It reads them from the
file's tail only when the file changed since its own last append (another writer
appended, or the file was replaced); otherwise it remembers them. A writer whose
key does not match the chain's header refuses to append. Secrets are redacted
before writing, with the same rules as the logs (:func:`config.logging.redact`).

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
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from config.logging import get_logger, redact

__all__ = [
    "GENESIS_HASH",
    "MAX_RECORD_BYTES",
    "RESERVED_FIELDS",
    "AuditChainMismatch",
    "AuditLog",
    "AuditVerification",
    "audit_event",
    "canonical_json",
    "key_id",
    "record_hash",
    "reset_default_audit_log",
    "verify_audit",
]

GENESIS_HASH = "0" * 64
CHAIN_VERSION = 2
RESERVED_FIELDS = frozenset({"seq", "ts", "event", "prev_hash", "hash", "chain"})
#: The longest line (one record, without its newline) the writer produces and the verifier accepts.
MAX_RECORD_BYTES = 64 * 1024
# Room kept in a record for seq, ts, event, chain header and the two hashes.
_ENVELOPE_BYTES = 1024
# How far back from the end we look for the last complete line (records are at most 64 KiB).
_TAIL_CHUNK = MAX_RECORD_BYTES + 1024
REF_KEY = "audit_ref"


class AuditChainMismatch(ValueError):
    """The writer's key does not match the chain it would append to (the message has no key)."""


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
    """The exact text that is hashed and written: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def record_hash(record: dict[str, Any], hmac_key: str | None = None) -> str:
    """SHA-256 (or HMAC-SHA256 with ``hmac_key``) of a record without its ``hash``."""
    body = canonical_json({k: v for k, v in record.items() if k != "hash"}).encode("utf-8")
    if hmac_key:
        return hmac.new(hmac_key.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def key_id(hmac_key: str) -> str:
    """A fingerprint naming a key in the chain header: it does not reveal the key.

    Example:
        >>> key_id("audit-key-1") == key_id("audit-key-1") != key_id("audit-key-2")
        True
    """
    return hmac.new(hmac_key.encode("utf-8"), b"procbots audit key id", hashlib.sha256).hexdigest()[:16]


def _chain_header(hmac_key: str | None) -> dict[str, Any]:
    if hmac_key:
        return {"v": CHAIN_VERSION, "alg": "hmac-sha256", "key_id": key_id(hmac_key)}
    return {"v": CHAIN_VERSION, "alg": "sha256"}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _parse_line(raw: bytes) -> Any:
    """The JSON value of one line; duplicate object keys raise :class:`_DuplicateKey`."""
    return json.loads(raw, object_pairs_hook=_no_duplicates)


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


def _first_record(fd: int) -> dict[str, Any] | None:
    """The first record of the file when it parses (None when empty or unreadable)."""
    data = os.pread(fd, MAX_RECORD_BYTES + 1, 0)
    line = data.split(b"\n", 1)[0]
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _describe_chain(header: dict[str, Any]) -> str:
    if header.get("alg") == "hmac-sha256":
        return f"keyed (HMAC-SHA256, key id {header.get('key_id')})"
    return "not keyed (SHA-256)"


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
        self.header = _chain_header(self.hmac_key)
        # flock is per open file description; threads of one process share this
        # lock so they do not interleave either.
        self._thread_lock = threading.Lock()
        # (device, inode, size, mtime) of the file right after our last append, with the
        # seq and hash written then: when the file is still exactly that, nobody
        # else appended and the tail need not be read and parsed again.
        self._tail: tuple[tuple[int, int, int, int], int, str] | None = None
        # (device, inode) of the file whose chain header we checked against our key.
        self._checked: tuple[int, int] | None = None

    @property
    def blob_dir(self) -> Path:
        """Where fields too large for one record are stored, by SHA-256."""
        return self.path.with_name(self.path.name + ".blobs")

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
        if last is not None and self._checked != (stat.st_dev, stat.st_ino):
            self._check_header(fd)
            self._checked = (stat.st_dev, stat.st_ino)
        return (last["seq"], str(last.get("hash", ""))) if last else None

    def _check_header(self, fd: int) -> None:
        first = _first_record(fd)
        header = first.get("chain") if first else None
        if not isinstance(header, dict):
            return  # not a record: verification reports it; appending keeps the evidence
        if header.get("alg") != self.header["alg"] or header.get("key_id") != self.header.get("key_id"):
            raise AuditChainMismatch(
                f"{self.path}: the chain is {_describe_chain(header)} but this writer is "
                f"{_describe_chain(self.header)}; configure the chain's audit.hmac_key or "
                "start a new audit file"
            )

    def _by_reference(self, fields: dict[str, Any], budget: int) -> dict[str, Any]:
        """``fields`` with the largest values moved to blob files until the record fits."""
        sizes = {name: len(canonical_json({name: value}).encode("utf-8")) for name, value in fields.items()}
        total = len(canonical_json(fields).encode("utf-8"))
        out = dict(fields)
        for name in sorted(sizes, key=lambda n: sizes[n], reverse=True):
            if total <= budget:
                break
            body = canonical_json(out[name]).encode("utf-8")
            ref = self._write_blob(body)
            out[name] = ref
            total += len(canonical_json({name: ref}).encode("utf-8")) - sizes[name]
        if total > budget:
            raise ValueError(
                f"audit record has too many fields to fit in {MAX_RECORD_BYTES} bytes even by reference"
            )
        return out

    def _write_blob(self, body: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(body).hexdigest()
        target = self.blob_dir / f"{digest}.json"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".blob-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temp).replace(target)  # content-addressed: concurrent writers agree
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return {REF_KEY: f"{self.blob_dir.name}/{digest}.json", "sha256": digest, "bytes": len(body)}

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Appends one record and returns it as written (after redaction).

        Raises:
            ValueError: when ``event`` is empty or too long, or a field uses a reserved name.
            AuditChainMismatch: the file's chain is keyed otherwise than this writer.
        """
        if not event:
            raise ValueError("audit event name must not be empty")
        if len(event) > 200:
            raise ValueError(f"audit event name is {len(event)} characters long; at most 200")
        clash = RESERVED_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"audit fields may not be named {sorted(clash)}")
        safe_fields = json.loads(canonical_json(redact(fields)))
        budget = MAX_RECORD_BYTES - _ENVELOPE_BYTES
        if len(canonical_json(safe_fields).encode("utf-8")) > budget:
            safe_fields = self._by_reference(safe_fields, budget)
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
                    if tail is None:
                        record["chain"] = dict(self.header)
                    record["hash"] = record_hash(record, self.hmac_key)
                    line = (canonical_json(record) + "\n").encode("utf-8")
                    # One write of the whole line under O_APPEND, then fsync, before
                    # the lock is released: the next writer sees this record.
                    written = os.write(fd, line)
                    if written != len(line):
                        raise OSError(f"{self.path}: short write to the audit log ({written}/{len(line)})")
                    os.fsync(fd)
                    stat = os.fstat(fd)
                    self._checked = (stat.st_dev, stat.st_ino)
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
    """Result of :func:`verify_audit`.

    ``needs_key`` is set (and ``ok`` is False, ``first_broken_seq`` None) when the
    chain is keyed and no key, or another key, was given: it was not checked.
    """

    ok: bool
    records: int
    first_broken_seq: int | None
    message: str
    needs_key: bool = False
    keyed: bool | None = None


def verify_audit(path: Path, hmac_key: str | None = None) -> AuditVerification:
    """Checks the whole chain of an audit file.

    Reads the chain header of ``seq`` 1 first: a keyed chain needs ``hmac_key``
    (``needs_key`` otherwise), and a chain that is not keyed while a key is given
    is broken at ``seq`` 1 (a keyless re-chain of a keyed log). A log written
    before chain headers is checked with the key when one is given, else with
    SHA-256, and says it has no header. Then, line by
    line: a line over 64 KiB, not JSON, with a duplicate key, or not in canonical
    form (a reformatted line); an edited record (its hash no longer matches); a
    deleted, inserted or reordered record (``seq`` out of order or ``prev_hash``
    not the previous hash); a field stored by reference whose file is missing or
    changed. ``first_broken_seq`` is the ``seq`` at which the chain is first
    broken: the record's own ``seq`` when it parses, otherwise the ``seq``
    expected at that position.
    """
    path = Path(path)
    if not path.is_file():
        return AuditVerification(False, 0, None, f"{path}: no such audit file")
    with path.open("rb") as handle:
        first = handle.readline(MAX_RECORD_BYTES + 2)
    keyed: bool | None = None
    try:
        header = _parse_line(first).get("chain") if first.strip() else None
    except (ValueError, AttributeError):
        header = None  # the loop below reports the first line
    if isinstance(header, dict):
        keyed = header.get("alg") == "hmac-sha256"
        if keyed and not hmac_key:
            return AuditVerification(
                False,
                0,
                None,
                f"{path}: the chain is {_describe_chain(header)}: its key is needed to verify it "
                "(set audit.hmac_key, or give --hmac-key-env VARIABLE)",
                needs_key=True,
                keyed=True,
            )
        if keyed and hmac_key and header.get("key_id") != key_id(hmac_key):
            return AuditVerification(
                False,
                0,
                None,
                f"{path}: the chain is {_describe_chain(header)} but the key given has key id "
                f"{key_id(hmac_key)}: give the chain's key",
                needs_key=True,
                keyed=True,
            )
    result = _verify_lines(path, hmac_key, header if isinstance(header, dict) else None)
    return AuditVerification(result.ok, result.records, result.first_broken_seq, result.message, keyed=keyed)


def _verify_lines(path: Path, hmac_key: str | None, header: dict[str, Any] | None) -> AuditVerification:
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
            if len(raw) - 1 > MAX_RECORD_BYTES:
                return _broken(
                    records,
                    expected_seq,
                    f"{where}: line of {len(raw) - 1} bytes, over the {MAX_RECORD_BYTES}-byte "
                    f"limit of a record (expected seq {expected_seq})",
                )
            try:
                record = _parse_line(raw)
            except _DuplicateKey as dup:
                return _broken(
                    records, expected_seq, f"{where}: duplicate key {dup.key!r} (expected seq {expected_seq})"
                )
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
            if raw != (canonical_json(record) + "\n").encode("utf-8"):
                return _broken(
                    records,
                    seq,
                    f"{where}: seq {seq} is not in canonical form (sorted keys, no spaces): reformatted",
                )
            if seq == 1 and header is not None and header.get("alg") != "hmac-sha256" and hmac_key:
                return _broken(
                    records,
                    1,
                    f"{where}: the chain is {_describe_chain(header)} but a key is configured: "
                    "a keyed log re-chained without its key, or the wrong file",
                )
            if record.get("prev_hash") != prev_hash:
                return _broken(
                    records, seq, f"{where}: seq {seq} does not follow the previous record (prev_hash)"
                )
            if record.get("hash") != record_hash(record, hmac_key):
                hint = ""
                if seq == 1 and header is None and not hmac_key:
                    hint = "; a log from before chain headers that was keyed needs its key"
                return _broken(records, seq, f"{where}: seq {seq} was altered (hash mismatch{hint})")
            problem = _check_references(path, record)
            if problem:
                return _broken(records, seq, f"{where}: seq {seq}: {problem}")
            prev_hash = record["hash"]
            expected_seq += 1
            records += 1
    if header is None:
        kind = (
            " (keyed: HMAC-SHA256; no chain header)"
            if hmac_key
            else " (no chain header; not keyed: SHA-256 only)"
        )
    elif header.get("alg") == "hmac-sha256":
        kind = ""
    else:
        kind = " (not keyed: SHA-256 only)"
    return AuditVerification(True, records, None, f"intact, {records} records{kind}")


def _check_references(path: Path, record: dict[str, Any]) -> str | None:
    """Why a field stored by reference does not match its file, or None."""
    for name, value in record.items():
        if not (isinstance(value, dict) and isinstance(value.get(REF_KEY), str)):
            continue
        ref = Path(value[REF_KEY])
        if ref.is_absolute() or ".." in ref.parts:
            return f"field {name!r} refers outside the audit folder ({ref})"
        target = path.parent / ref
        try:
            body = target.read_bytes()
        except OSError:
            return f"field {name!r} is stored in {target}, which is missing"
        if hashlib.sha256(body).hexdigest() != value.get("sha256"):
            return f"field {name!r} is stored in {target}, which was altered (sha256 mismatch)"
    return None


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


def audit_event(event: str, *, log: bool = True, **fields: Any) -> dict[str, Any]:
    """Appends to the process audit log (``get_settings().audit_path``) and logs it.

    The structlog event ``audit`` (logger ``procbots.audit``) carries the same
    fields plus ``seq`` and ``hash``; it goes to the process's stderr only, never to
    a Prefect run's log stream (:func:`config.logging.configure_logging`): the
    trail's place is the audit file. ``log=False`` appends only (commands that
    print their own sentence).

    Example:
        >>> audit_event("po_created", po_number="PO-000123", item_id="wi-42")  # doctest: +SKIP
    """
    record = _default_audit_log().append(event, **fields)
    if log:
        get_logger("audit").info(
            "audit", **{("audit_event" if k == "event" else k): v for k, v in record.items()}
        )
    return record


def reset_default_audit_log() -> None:
    """Forgets the process audit log so the next call re-reads the settings (tests)."""
    global _default_log
    with _default_lock:
        _default_log = None
