"""The audit log is a hash chain that tells exactly where it was tampered with."""

from __future__ import annotations

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
    AuditLog,
    audit_event,
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
    assert verify_audit(path).first_broken_seq == 1  # plain SHA-256 does not match an HMAC chain
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
    assert _verify_cli(str(path))[0] == 1
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
