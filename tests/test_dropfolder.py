"""Drop folders: files are claimed once, only when settled, moved without loss or
overwrite, explained when refused, and recorded with their SHA-256 in the audit trail."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.audit import AuditLog, verify_audit
from connectors.dropfolder import REASON_SUFFIX, DropFolder, DropFolderError, normalise_name


class Trail:
    """An audit trail in a temp file, with the records read back."""

    def __init__(self, path: Path) -> None:
        self.log = AuditLog(path)
        self.path = path

    def __call__(self, event: str, **fields: Any) -> None:
        self.log.append(event, **fields)

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]
        return [r for r in rows if event is None or r["event"] == event]


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    return Trail(tmp_path / "audit.jsonl")


@pytest.fixture
def folder(tmp_path: Path, trail: Trail) -> DropFolder:
    return DropFolder(tmp_path / "drop", stable_for_s=0, audit=trail)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_subfolders_are_created(tmp_path: Path, trail: Trail) -> None:
    """A new drop folder has inbox, processing, done, failed and quarantine."""
    drop = DropFolder(tmp_path / "new", audit=trail)
    assert sorted(p.name for p in drop.root.iterdir()) == [
        "done",
        "failed",
        "inbox",
        "processing",
        "quarantine",
    ]


def test_claim_moves_into_processing_and_records_sha256(folder: DropFolder, trail: Trail) -> None:
    """A claimed file sits in processing/ under a claim id, and the audit trail has its SHA-256."""
    folder.deposit(b"<Invoice/>", "INV-1.xml")
    claimed = folder.claim_next()
    assert claimed is not None
    assert claimed.path.parent == folder.processing
    assert claimed.path.name.endswith("~INV-1.xml")
    assert claimed.sha256 == hashlib.sha256(b"<Invoice/>").hexdigest()
    assert list(folder.inbox.iterdir()) == []
    (record,) = trail.records("dropfolder_claimed")
    assert record["sha256"] == claimed.sha256
    assert record["file"] == "INV-1.xml"
    assert record["size"] == 10


def test_done_moves_to_done_unchanged(folder: DropFolder, trail: Trail) -> None:
    """done() puts the same bytes in done/ and records it; the chain stays intact."""
    folder.deposit(b"order 1", "orders.csv")
    claimed = folder.claim_next()
    assert claimed is not None
    final = claimed.done()
    assert final == folder.root / "done" / "orders.csv"
    assert final.read_bytes() == b"order 1"
    assert list(folder.processing.iterdir()) == []
    assert [r["event"] for r in trail.records()] == ["dropfolder_claimed", "dropfolder_done"]
    assert trail.records("dropfolder_done")[0]["sha256"] == claimed.sha256
    assert verify_audit(trail.path).ok


@pytest.mark.parametrize("outcome", ["fail", "quarantine"])
def test_failed_and_quarantined_files_get_a_reason_sidecar(
    folder: DropFolder, trail: Trail, outcome: str
) -> None:
    """A .reason.json beside the file says why, with hash, names, times and every error."""
    folder.deposit(b"not an invoice", "scan 01.pdf")
    claimed = folder.claim_next()
    assert claimed is not None
    final = getattr(claimed, outcome)(
        "MALFORMED_DOCUMENT",
        "scan 01.pdf: not a PDF",
        errors=["page 1: no header", {"row": 2, "field": "qty"}],
    )
    subfolder = "failed" if outcome == "fail" else "quarantine"
    assert final == folder.root / subfolder / "scan 01.pdf"
    assert final.read_bytes() == b"not an invoice"
    sidecar = json.loads((final.parent / f"scan 01.pdf{REASON_SUFFIX}").read_text(encoding="utf-8"))
    assert sidecar["reason"] == "MALFORMED_DOCUMENT"
    assert sidecar["message"] == "scan 01.pdf: not a PDF"
    assert sidecar["sha256"] == hashlib.sha256(b"not an invoice").hexdigest()
    assert sidecar["original_name"] == "scan 01.pdf"
    assert sidecar["stored_name"] == "scan 01.pdf"
    assert sidecar["errors"] == ["page 1: no header", {"row": 2, "field": "qty"}]
    for stamp in ("received_at", "claimed_at", "decided_at"):
        assert sidecar[stamp].endswith("+00:00")
    event = "dropfolder_failed" if outcome == "fail" else "dropfolder_quarantined"
    (record,) = trail.records(event)
    assert (record["reason"], record["sha256"]) == ("MALFORMED_DOCUMENT", sidecar["sha256"])


def test_a_file_is_finished_only_once(folder: DropFolder) -> None:
    """Deciding twice is a programming error, not a second move."""
    folder.deposit(b"x", "a.xml")
    claimed = folder.claim_next()
    assert claimed is not None
    claimed.done()
    with pytest.raises(RuntimeError, match="already done"):
        claimed.fail("X", "y")


def test_name_collisions_get_a_suffix_and_nothing_is_overwritten(folder: DropFolder) -> None:
    """Three files named alike end as invoice.xml, invoice (1).xml, invoice (2).xml."""
    contents = [b"first", b"second", b"third"]
    for data in contents:
        folder.deposit(data, "invoice.xml")
    assert sorted(p.name for p in folder.inbox.iterdir()) == [
        "invoice (1).xml",
        "invoice (2).xml",
        "invoice.xml",
    ]
    finals = []
    for _ in contents:
        claimed = folder.claim_next()
        assert claimed is not None
        finals.append(claimed.fail("DUPLICATE", "same name"))
    names = sorted(p.name for p in (folder.root / "failed").iterdir())
    assert names == sorted(
        [
            f"{n}{s}"
            for n in ("invoice.xml", "invoice (1).xml", "invoice (2).xml")
            for s in ("", REASON_SUFFIX)
        ]
    )
    assert sorted(p.read_bytes() for p in finals) == sorted(contents)


def test_a_name_whose_sidecar_name_is_taken_moves_on(folder: DropFolder) -> None:
    """A stray x.pdf.reason.json in failed/ is never overwritten: the file becomes x (1).pdf."""
    stray = folder.root / "failed" / f"x.pdf{REASON_SUFFIX}"
    stray.write_text("left by a person", encoding="utf-8")
    folder.deposit(b"pdf", "x.pdf")
    claimed = folder.claim_next()
    assert claimed is not None
    assert claimed.fail("UNREADABLE", "bad").name == "x (1).pdf"
    assert stray.read_text(encoding="utf-8") == "left by a person"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../x.pdf", id="parent"),
        pytest.param("../../etc/cron.d/evil", id="deep-parent"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("sub/x.pdf", id="subfolder"),
        pytest.param("..\\x.pdf", id="windows-parent"),
        pytest.param("C:\\Windows\\x.pdf", id="windows-absolute"),
        pytest.param("..", id="dotdot"),
        pytest.param("", id="empty"),
        pytest.param("a\x00b.pdf", id="nul"),
    ],
)
def test_path_traversal_is_refused_and_nothing_is_written(
    tmp_path: Path, folder: DropFolder, name: str
) -> None:
    """A name that is a path is refused before anything touches the disk."""
    before = _tree(tmp_path)
    with pytest.raises(DropFolderError, match="refused file name"):
        folder.deposit(b"payload", name)
    with pytest.raises(DropFolderError, match="refused file name"):
        folder.claim(name)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Cafe\u0301 invoice.pdf", "Café invoice.pdf", id="nfc"),
        pytest.param('a<b>c:d"e|f?g*h.xml', "a_b_c_d_e_f_g_h.xml", id="windows-unsafe"),
        pytest.param("tab\there\nnew.csv", "tab_here_new.csv", id="control"),
        pytest.param("  .hidden trailing. ", "hidden trailing", id="dots-spaces"),
        pytest.param("CON.txt", "_CON.txt", id="windows-device"),
        pytest.param("...", "unnamed", id="nothing-left"),
        pytest.param("inv\udcff.xml", "inv_xff.xml", id="undecodable-byte"),
    ],
)
def test_names_are_normalised(raw: str, expected: str) -> None:
    """NFC, unsafe and control characters replaced, edges trimmed, device names defused."""
    assert normalise_name(raw) == expected


def test_long_names_are_shortened_keeping_extension_and_distinct() -> None:
    """Two 300-character names sharing a prefix stay distinct, fit, and keep .xlsx."""
    a = normalise_name("Ä" * 300 + "-a.xlsx")
    b = normalise_name("Ä" * 300 + "-b.xlsx")
    assert a != b
    assert a.endswith(".xlsx")
    assert len(a.encode("utf-8")) <= 150


def test_a_file_still_being_written_is_not_claimed(tmp_path: Path, trail: Trail) -> None:
    """Claimed only after size and mtime stay the same for the stable interval."""
    drop = DropFolder(tmp_path / "drop", stable_for_s=0.3, audit=trail)
    target = drop.inbox / "scan.pdf"
    target.write_bytes(b"%PDF-1.7 part one")
    assert drop.claim_next() is None  # first sight: not yet known to be stable
    time.sleep(0.35)  # the interval under test passes
    with target.open("ab") as handle:  # ... and the scanner writes more
        handle.write(b" part two")
    assert drop.claim_next() is None  # changed since last seen: the clock starts again
    started = time.monotonic()
    claimed = drop.claim_next(timeout=10)
    assert claimed is not None
    assert time.monotonic() - started >= 0.25
    assert claimed.path.read_bytes() == b"%PDF-1.7 part one part two"


def test_partial_uploads_and_office_locks_are_ignored(folder: DropFolder) -> None:
    """Hidden temporary files and ~$ lock files are not documents."""
    (folder.inbox / ".upload-123.tmp").write_bytes(b"half")
    (folder.inbox / "~$orders.xlsx").write_bytes(b"lock")
    assert folder.claim_next() is None
    assert sorted(p.name for p in folder.inbox.iterdir()) == [".upload-123.tmp", "~$orders.xlsx"]


def test_symlink_pointing_outside_is_quarantined_unfollowed(tmp_path: Path, folder: DropFolder) -> None:
    """A symlink to a file outside the folder is quarantined as itself; the target is untouched."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not read", encoding="utf-8")
    (folder.inbox / "invoice.xml").symlink_to(secret)
    assert folder.claim_next() is None
    moved = folder.root / "quarantine" / "invoice.xml"
    assert moved.is_symlink()
    assert secret.read_text(encoding="utf-8") == "do not read"
    sidecar = json.loads(
        (folder.root / "quarantine" / f"invoice.xml{REASON_SUFFIX}").read_text(encoding="utf-8")
    )
    assert sidecar["reason"] == "NOT_A_REGULAR_FILE"
    assert "symlink" in sidecar["message"]
    assert sidecar["sha256"] == ""
    assert not any(
        "do not read" in p.read_text(encoding="utf-8", errors="ignore") for p in folder.root.rglob("*.json")
    )


@pytest.mark.timeout(30)
def test_fifo_in_inbox_is_quarantined_without_blocking(folder: DropFolder) -> None:
    """A named pipe would block a reader forever; it is quarantined unopened."""
    os.mkfifo(folder.inbox / "pipe.xml")
    assert folder.claim_next() is None
    assert (folder.root / "quarantine" / f"pipe.xml{REASON_SUFFIX}").is_file()


def test_symlinked_subfolder_is_refused(tmp_path: Path, trail: Trail) -> None:
    """A drop folder whose inbox is a symlink elsewhere is refused at start."""
    root = tmp_path / "drop"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "inbox").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DropFolderError, match="is a symlink"):
        DropFolder(root, audit=trail)


def test_undecodable_name_on_disk_is_claimed_with_a_safe_name(folder: DropFolder) -> None:
    """A file whose name is not UTF-8 is claimed and its name made printable."""
    raw = os.fsencode(folder.inbox) + b"/inv\xff.xml"
    with open(raw, "wb") as handle:
        handle.write(b"data")
    claimed = folder.claim_next()
    assert claimed is not None
    assert claimed.original_name == "inv\\xff.xml"
    assert claimed.done().name == "inv_xff.xml"


def test_recover_stale_returns_orphans_to_the_inbox(folder: DropFolder, trail: Trail) -> None:
    """After a crash, claimed files older than the limit go back to the inbox, once."""
    folder.deposit(b"po", "po-1.csv")
    orphan = folder.claim_next()
    assert orphan is not None  # ... and its worker dies without deciding
    assert folder.recover_stale(older_than_s=3600) == []
    recovered = folder.recover_stale(older_than_s=0)
    assert recovered == [folder.inbox / "po-1.csv"]
    assert list(folder.processing.iterdir()) == []
    again = folder.claim_next()
    assert again is not None
    assert again.sha256 == orphan.sha256
    assert len(trail.records("dropfolder_recovered")) == 1


def test_context_manager_fails_the_file_on_an_exception(folder: DropFolder) -> None:
    """An exception while processing fails the file with PROCESSING_ERROR and propagates."""
    folder.deposit(b"a", "a.xml")
    folder.deposit(b"b", "b.xml")
    first = folder.claim_next()
    assert first is not None
    with pytest.raises(KeyError), first:
        raise KeyError("supplier")
    assert first.outcome == "failed"
    sidecar = json.loads(Path(f"{first.final_path}{REASON_SUFFIX}").read_text(encoding="utf-8"))
    assert sidecar["reason"] == "PROCESSING_ERROR"
    assert "KeyError" in sidecar["message"]
    second = folder.claim_next()
    assert second is not None
    with second:
        pass
    assert second.outcome == "done"


def test_iteration_takes_every_file_once(folder: DropFolder) -> None:
    """Iterating claims each inbox file once and stops when the inbox is empty."""
    for i in range(5):
        folder.deposit(f"doc {i}".encode(), f"doc-{i}.txt")
    seen = []
    for claimed in folder:
        seen.append(claimed.original_name)
        claimed.done()
    assert sorted(seen) == [f"doc-{i}.txt" for i in range(5)]


# --- several processes at once --------------------------------------------------------------


def _race_worker(root: str, audit_path: str, results: str, start: Any) -> None:
    trail = AuditLog(Path(audit_path))
    drop = DropFolder(root, stable_for_s=0.05, audit=trail.append)
    start.wait(30)
    claimed_names = []
    for claimed in drop:
        claimed_names.append(f"{claimed.original_name}\t{claimed.sha256}")
        claimed.done()
    Path(results).write_text("\n".join(claimed_names), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_competing_processes_claim_each_file_exactly_once(tmp_path: Path) -> None:
    """Three worker processes racing over 200 files: each file claimed once, none lost."""
    root = tmp_path / "drop"
    audit_path = tmp_path / "audit.jsonl"
    drop = DropFolder(root, audit=AuditLog(audit_path).append)
    expected = {}
    for i in range(200):
        data = f"invoice {i}\n".encode() * (i + 1)
        drop.deposit(data, f"INV-{i:04d}.xml")
        expected[f"INV-{i:04d}.xml"] = hashlib.sha256(data).hexdigest()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = [tmp_path / f"worker-{n}.txt" for n in range(3)]
    workers = [
        ctx.Process(target=_race_worker, args=(str(root), str(audit_path), str(out), start))
        for out in results
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(90)
        assert w.exitcode == 0
    claims = [line.split("\t") for out in results for line in out.read_text(encoding="utf-8").splitlines()]
    names = [name for name, _ in claims]
    assert len(names) == 200
    assert set(names) == set(expected)  # every file, and (by the count) none twice
    assert dict(claims) == expected
    assert sum(1 for out in results if out.read_text(encoding="utf-8")) >= 2  # a real race
    assert sorted(p.name for p in (root / "done").iterdir()) == sorted(expected)
    assert list((root / "inbox").iterdir()) == []
    assert list((root / "processing").iterdir()) == []
    records = [json.loads(line) for line in audit_path.read_text(encoding="utf-8").splitlines()]
    claimed_records = [r for r in records if r["event"] == "dropfolder_claimed"]
    assert sorted((r["file"], r["sha256"]) for r in claimed_records) == sorted(expected.items())
    assert verify_audit(audit_path).ok
