"""The audit log is a hash chain that tells exactly where it was tampered with."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.logging import configure_logging, register_secret
from config.settings import Settings, get_settings
from connectors.audit import (
    GENESIS_HASH,
    MAX_RECORD_BYTES,
    AuditChainMismatch,
    AuditLog,
    audit_event,
    canonical_json,
    key_id,
    record_hash,
    reset_default_audit_log,
    verify_audit,
)

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 1_000


@pytest.fixture(scope="module")
def thousand_event_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a 1,000-event audit log written by the real writer."""
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    log = AuditLog(path)
    for n in range(1, EVENTS + 1):
        log.append("po_created", po_number=f"PO-{n:06d}", supplier_vat="GB123456789", net="125.50")
    return path.read_bytes()


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _edit(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[499])
    record["net"] = "99999.99"
    lines[499] = (json.dumps(record) + "\n").encode()
    return lines


def _delete(lines: list[bytes]) -> list[bytes]:
    del lines[499]
    return lines


def _insert(lines: list[bytes]) -> list[bytes]:
    # The strongest forgery without an HMAC key: a record with the right seq,
    # linked to its predecessor and with a recomputed hash.
    previous = json.loads(lines[498])
    forged = {
        "seq": 500,
        "ts": previous["ts"],
        "event": "po_cancelled",
        "po_number": "PO-000499",
        "prev_hash": previous["hash"],
    }
    forged["hash"] = record_hash(forged)
    lines.insert(499, (json.dumps(forged) + "\n").encode())
    return lines


def _reorder(lines: list[bytes]) -> list[bytes]:
    lines[499], lines[500] = lines[500], lines[499]
    return lines


def _truncate_middle(lines: list[bytes]) -> list[bytes]:
    lines[499] = lines[499][: len(lines[499]) // 2] + b"\n"
    return lines


def _torn_last_line(lines: list[bytes]) -> list[bytes]:
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    return lines


TAMPERINGS = [
    pytest.param(_edit, 500, id="edited"),
    pytest.param(_delete, 500, id="deleted"),
    pytest.param(_insert, 500, id="inserted"),
    pytest.param(_reorder, 500, id="reordered"),
    pytest.param(_truncate_middle, 500, id="truncated-in-the-middle"),
    pytest.param(_torn_last_line, EVENTS, id="torn-last-line"),
]


def _verify_cli(*args: str) -> tuple[int, str]:
    from flows.cli import app

    result = CliRunner().invoke(app, ["audit", "verify", *args])
    return result.exit_code, result.output


def test_untouched_log_verifies_intact(thousand_event_log: bytes, tmp_path: Path, settings_env: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(thousand_event_log)
    code, output = _verify_cli(str(path))
    assert code == 0, output
    assert f"intact, {EVENTS} records" in output


@pytest.mark.parametrize(("tamper", "broken_seq"), TAMPERINGS)
def test_each_tampering_is_caught_at_the_first_broken_seq(
    tamper: Callable[[list[bytes]], list[bytes]],
    broken_seq: int,
    thousand_event_log: bytes,
    tmp_path: Path,
    settings_env: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(tamper(_lines(thousand_event_log))))
    result = verify_audit(path)
    assert not result.ok
    assert result.first_broken_seq == broken_seq, result.message
    code, output = _verify_cli(str(path))
    assert code == 1
    assert f"BROKEN at seq {broken_seq}" in output


def test_verify_through_the_installed_console_script(thousand_event_log: bytes, tmp_path: Path) -> None:
    """The real `procbots` command exits 0 on an intact log and 1 on an edited one."""
    procbots = Path(sys.executable).with_name("procbots")
    path = tmp_path / "audit.jsonl"
    path.write_bytes(thousand_event_log)
    intact = subprocess.run([procbots, "audit", "verify", path], capture_output=True, text=True, timeout=120)
    assert intact.returncode == 0, intact.stderr
    assert f"intact, {EVENTS} records" in intact.stdout
    path.write_bytes(b"".join(_edit(_lines(thousand_event_log))))
    broken = subprocess.run([procbots, "audit", "verify", path], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "seq 500" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_records_carry_seq_utc_timestamp_and_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "nested" / "audit.jsonl")
    first = log.append("invoice_held", invoice_number="INV-1", reason="PRICE_OVER_TOLERANCE")
    second = log.append("invoice_approved", invoice_number="INV-2")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev_hash"] == GENESIS_HASH
    assert second["prev_hash"] == first["hash"]
    assert first["ts"].endswith("+00:00")
    written = [json.loads(line) for line in (tmp_path / "nested" / "audit.jsonl").read_text().splitlines()]
    assert written == [first, second]


def test_a_new_writer_continues_the_existing_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append("po_created", po_number="PO-1")
    record = AuditLog(path).append("po_created", po_number="PO-2")
    assert record["seq"] == 2
    assert verify_audit(path).ok


def test_reserved_field_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seq"):
        AuditLog(tmp_path / "a.jsonl").append("po_created", seq=7)


def test_hmac_chain_needs_the_key_and_resists_recomputed_hashes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, hmac_key="audit-key-1")
    for n in range(5):
        log.append("po_created", po_number=f"PO-{n}")
    assert verify_audit(path, hmac_key="audit-key-1").ok
    without_key = verify_audit(path)  # the header says keyed: not checked, and never "intact"
    assert not without_key.ok
    assert without_key.needs_key
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["po_number"] = "PO-FORGED"
    record["hash"] = record_hash(record)  # an editor without the key can only recompute SHA-256
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify_audit(path, hmac_key="audit-key-1")
    assert result.first_broken_seq == 3


def test_cli_reads_the_hmac_key_from_the_named_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, hmac_key="k-123").append("po_created", po_number="PO-1")
    monkeypatch.setenv("AUDIT_KEY", "k-123")
    assert _verify_cli(str(path), "--hmac-key-env", "AUDIT_KEY")[0] == 0
    assert _verify_cli(str(path))[0] == 2  # a keyed chain needs its key
    assert _verify_cli(str(path), "--hmac-key-env", "NOT_SET_ANYWHERE")[0] == 2


def test_secrets_are_redacted_before_writing(tmp_path: Path) -> None:
    register_secret("tender-portal-pw-991")
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(
        "login", note="used tender-portal-pw-991", password="other", nested={"list": ["tender-portal-pw-991"]}
    )
    text = path.read_text()
    assert "tender-portal-pw-991" not in text
    assert '"password":"***"' in text
    assert verify_audit(path).ok


_WRITER = """
import sys, time
from pathlib import Path
from connectors.audit import AuditLog
log = AuditLog(Path(sys.argv[1]))
Path(sys.argv[1] + "." + sys.argv[2] + ".ready").touch()
go, deadline = Path(sys.argv[1] + ".go"), time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:  # start together, so appends overlap
    time.sleep(0.002)
for n in range(int(sys.argv[3])):
    log.append("item_done", writer=sys.argv[2], n=n)
"""


@pytest.mark.slow
def test_four_processes_appending_at_once_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    per_writer = 250
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"w{i}", str(per_writer)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.ready"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(f"{path}.go").touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    result = verify_audit(path)
    assert result.ok, result.message
    assert result.records == 4 * per_writer
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert Counter(r["writer"] for r in records) == {f"w{i}": per_writer for i in range(4)}
    for i in range(4):
        assert [r["n"] for r in records if r["writer"] == f"w{i}"] == list(range(per_writer))
    # Writing one after another would switch writer exactly 3 times; more shows the
    # appends really interleaved, i.e. the lock was contended.
    switches = sum(1 for a, b in itertools.pairwise(records) if a["writer"] != b["writer"])
    assert switches > 3


def test_audit_event_appends_to_the_configured_log_and_logs_it(
    settings_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(), renderer="json")
    reset_default_audit_log()
    try:
        record = audit_event("contract_uploaded", contract_id="C-2026-001", item_id="wi-7")
        path = get_settings().audit_path
        assert path.is_relative_to(settings_env)
        assert verify_audit(path).records == 1
        assert record["contract_id"] == "C-2026-001"
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        audit_lines = [line for line in logged if line["event"] == "audit"]
        assert audit_lines
        assert audit_lines[-1]["audit_event"] == "contract_uploaded"
        assert audit_lines[-1]["hash"] == record["hash"]
    finally:
        reset_default_audit_log()


def _rechain_without_key(lines: list[str], header: dict[str, object] | None = None) -> list[str]:
    """What an editor without the key can do: recompute every hash with plain SHA-256."""
    out, prev = [], GENESIS_HASH
    for line in lines:
        record = json.loads(line)
        if record["seq"] == 1 and header is not None:
            record["chain"] = header
        record["prev_hash"] = prev
        record["hash"] = record_hash(record)
        prev = record["hash"]
        out.append(canonical_json(record))
    return out


def test_the_first_record_states_whether_the_chain_is_keyed_and_a_key_id_not_the_key(tmp_path: Path) -> None:
    keyed, plain = tmp_path / "keyed.jsonl", tmp_path / "plain.jsonl"
    AuditLog(keyed, hmac_key="audit-key-secret-77").append("po_created", po_number="PO-1")
    second = AuditLog(keyed, hmac_key="audit-key-secret-77").append("po_created", po_number="PO-2")
    AuditLog(plain).append("po_created", po_number="PO-1")
    first = json.loads(keyed.read_text().splitlines()[0])
    assert first["chain"] == {"v": 2, "alg": "hmac-sha256", "key_id": key_id("audit-key-secret-77")}
    assert "chain" not in second
    assert "audit-key-secret-77" not in keyed.read_text()
    assert json.loads(plain.read_text())["chain"] == {"v": 2, "alg": "sha256"}


def test_a_keyed_chain_without_its_key_says_the_key_is_needed_with_exit_2(
    tmp_path: Path, settings_env: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, hmac_key="k-needed").append("po_created", po_number="PO-1")
    code, output = _verify_cli(str(path))
    assert code == 2
    assert "key is needed" in output
    assert "intact" not in output
    assert "BROKEN" not in output


def test_a_sha256_rechain_of_a_keyed_log_fails_with_the_key_and_is_not_intact_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, hmac_key="audit-key-1")
    for n in range(5):
        log.append("po_created", po_number=f"PO-{n}")
    genuine = path.read_text().splitlines()
    monkeypatch.setenv("AUDIT_KEY", "audit-key-1")
    # Forgery keeping the keyed header: broken at seq 1 with the key, key needed without.
    path.write_text("\n".join(_rechain_without_key(genuine)) + "\n")
    assert verify_audit(path, hmac_key="audit-key-1").first_broken_seq == 1
    assert _verify_cli(str(path), "--hmac-key-env", "AUDIT_KEY")[0] == 1
    assert _verify_cli(str(path))[0] == 2
    # Forgery downgrading the header to plain SHA-256: the configured key refuses it.
    path.write_text("\n".join(_rechain_without_key(genuine, {"v": 2, "alg": "sha256"})) + "\n")
    result = verify_audit(path, hmac_key="audit-key-1")
    assert (result.ok, result.first_broken_seq) == (False, 1)
    assert "not keyed" in result.message
    code, output = _verify_cli(str(path), "--hmac-key-env", "AUDIT_KEY")
    assert code == 1
    assert "BROKEN at seq 1" in output
    # Without a key the downgraded copy cannot be told apart, but it says it is not keyed.
    assert "not keyed" in verify_audit(path).message
    # The genuine log with its key is intact.
    path.write_text("\n".join(genuine) + "\n")
    assert verify_audit(path, hmac_key="audit-key-1").ok
    assert _verify_cli(str(path), "--hmac-key-env", "AUDIT_KEY")[0] == 0


def test_a_writer_with_another_key_refuses_to_extend_a_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, hmac_key="key-a").append("po_created", po_number="PO-1")
    with pytest.raises(AuditChainMismatch, match="keyed"):
        AuditLog(path).append("po_created", po_number="PO-2")
    with pytest.raises(AuditChainMismatch):
        AuditLog(path, hmac_key="key-b").append("po_created", po_number="PO-2")
    assert verify_audit(path, hmac_key="key-a").records == 1


def test_a_line_with_a_duplicate_json_key_fails(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in (200, 201, 202):
        log.append("po_created", po_number=f"PO-000{n}")
    lines = path.read_bytes().splitlines(keepends=True)
    # A reader taking the first value sees the fake; the hash covers the last one.
    lines[1] = lines[1].replace(
        b'"po_number":"PO-000201"', b'"po_number":"PO-FAKE-666","po_number":"PO-000201"'
    )
    path.write_bytes(b"".join(lines))
    result = verify_audit(path)
    assert (result.ok, result.first_broken_seq) == (False, 2)
    assert "duplicate key 'po_number'" in result.message
    code, output = _verify_cli(str(path))
    assert code == 1
    assert "BROKEN at seq 2" in output


@pytest.mark.parametrize(
    "reformat",
    [
        pytest.param(lambda r: json.dumps(r, sort_keys=True) + "\n", id="spaces"),
        pytest.param(
            lambda r: json.dumps(dict(reversed(r.items())), separators=(",", ":")) + "\n", id="key-order"
        ),
        pytest.param(
            lambda r: json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n", id="escaped-unicode"
        ),
    ],
)
def test_a_reformatted_line_with_the_same_content_fails(
    reformat: Callable[[dict[str, object]], str], tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for name in ("Café Supplies", "Hôpital", "Zoë Ltd"):
        log.append("supplier_checked", supplier=name)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = reformat(json.loads(lines[1]))
    path.write_text("".join(lines), encoding="utf-8")
    result = verify_audit(path)
    assert (result.ok, result.first_broken_seq) == (False, 2), result.message
    assert "canonical" in result.message


def test_an_oversized_field_is_stored_by_reference_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    item_ids = list(range(1, 30_001))  # ~170 KB of JSON
    record = log.append("workitem.added", bot="purchase_orders", count=len(item_ids), item_ids=item_ids)
    log.append("po_created", po_number="PO-1")
    lines = path.read_bytes().splitlines()
    assert max(len(line) for line in lines) <= MAX_RECORD_BYTES
    ref = record["item_ids"]
    assert record["count"] == 30_000
    assert record["bot"] == "purchase_orders"
    stored = path.parent / ref["audit_ref"]
    assert stored.parent == log.blob_dir
    assert json.loads(stored.read_bytes()) == item_ids  # nothing truncated
    assert ref["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert verify_audit(path).ok
    stored.write_bytes(stored.read_bytes().replace(b"29999", b"66666"))
    result = verify_audit(path)
    assert (result.ok, result.first_broken_seq) == (False, 1)
    assert "altered" in result.message
    stored.unlink()
    assert "missing" in verify_audit(path).message


def test_a_line_over_64_kib_fails_verification(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append("po_created", po_number="PO-1")
    log.append("note", text="short")
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["text"] = "x" * MAX_RECORD_BYTES  # a writer without the limit
    record["hash"] = record_hash(record)
    lines[1] = canonical_json(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify_audit(path)
    assert (result.ok, result.first_broken_seq) == (False, 2)
    assert "over the 65536-byte limit" in result.message


def test_verifying_with_another_key_says_which_key_the_chain_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_env: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, hmac_key="the-right-key").append("po_created", po_number="PO-1")
    result = verify_audit(path, hmac_key="another-key")
    assert (result.ok, result.needs_key) == (False, True)
    assert key_id("the-right-key") in result.message
    assert "the-right-key" not in result.message
    monkeypatch.setenv("AUDIT_KEY", "another-key")
    assert _verify_cli(str(path), "--hmac-key-env", "AUDIT_KEY")[0] == 2


def _without_header(path: Path, hmac_key: str | None = None) -> None:
    """The log as procbots wrote it before chain headers: the same chain, seq 1 without ``chain``."""
    out, prev = [], GENESIS_HASH
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("chain", None)
        record["prev_hash"] = prev
        record["hash"] = record_hash(record, hmac_key)
        prev = record["hash"]
        out.append(canonical_json(record))
    path.write_text("\n".join(out) + "\n")


def test_a_log_from_before_chain_headers_still_verifies_and_says_so(tmp_path: Path) -> None:
    plain, keyed = tmp_path / "plain.jsonl", tmp_path / "keyed.jsonl"
    for n in range(3):
        AuditLog(plain).append("po_created", po_number=f"PO-{n}")
        AuditLog(keyed, hmac_key="old-key").append("po_created", po_number=f"PO-{n}")
    _without_header(plain)
    _without_header(keyed, "old-key")
    result = verify_audit(plain)
    assert (result.ok, result.records) == (True, 3)
    assert "no chain header" in result.message
    assert verify_audit(keyed, hmac_key="old-key").ok
    without_key = verify_audit(keyed)
    assert (without_key.ok, without_key.first_broken_seq) == (False, 1)
    assert "needs its key" in without_key.message
    AuditLog(plain).append("po_created", po_number="PO-3")  # new writers continue an old log
    assert verify_audit(plain).records == 4
    _without_header(keyed)  # a forger strips the header and re-chains with SHA-256: the key refuses it
    assert verify_audit(keyed, hmac_key="old-key").first_broken_seq == 1
