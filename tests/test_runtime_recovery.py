"""The runtime's promises, end to end with ``procbots run purchase-orders`` subprocesses.

Real parts: the sandbox portal in its own process, real Chromium, the SQLite
ledger of a fresh data root, the CLI as users run it. What the portal holds is
read from ``/_sandbox/state``; nothing is reset or released by hand between runs
(no ``procbots items`` command is used).

* Killed runs: a run SIGKILLed at random moments, three times, then rerun once the
  leases ran out: every requisition ends with exactly one PO, the report says so.
* Fencing: a worker paused right before it submits, until its lease was taken and
  the item finished by another run, then resumed: it does not submit.
* Circuit breaker: the portal stopped mid-run, or a wrong password: the run stops
  at once with one reason, the items left are ``pending`` with no attempt used,
  and the next run (portal back, right password) finishes them.
* Secrets: a killed run leaves no file holding the portal password (raw,
  URL-encoded or base64) under the data root or ``TMPDIR``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from sandbox.server import SandboxServer
from tests.plugins.ledger import ledger_items, wait_for_leases_to_expire
from tests.plugins.sandbox import SANDBOX_PASSWORD
from tests.test_purchase_orders_e2e import (
    SEED,
    SEEDED_ORDERS,
    portal_orders,
    write_requisitions,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROCBOTS = Path(sys.executable).with_name("procbots")
ROOT = Path(__file__).resolve().parents[1]
LEASE_S = 3.0
DONE_STATUSES = {"Raised", "Already in portal", "Raised in an earlier run"}


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """Environment of the CLI runs: a fresh data root and TMPDIR, short leases, quick retries."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return {
        **os.environ,
        "PROCBOTS_PATHS__ROOT": str(tmp_path / "var"),
        "PROCBOTS_PORTAL__PASSWORD": SANDBOX_PASSWORD,
        "PROCBOTS_LEDGER__LEASE_S": str(LEASE_S),
        "PROCBOTS_LEDGER__HEARTBEAT_S": "0.5",
        "PROCBOTS_LEDGER__MAX_LEASE_EXPIRIES": "10",
        "PROCBOTS_RETRY__INITIAL_S": "0.2",
        "PROCBOTS_RETRY__MAX_S": "1",
        "TMPDIR": str(tmpdir),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def slow_portal(tmp_path: Path) -> Iterator[SandboxServer]:
    """A portal slow enough (latency) that a run is caught half way; its database outlives a restart."""
    server = SandboxServer(
        seed=SEED, orders=SEEDED_ORDERS, chaos="latency_ms=120", db_path=tmp_path / "portal" / "portal.db"
    ).start()
    yield server
    server.stop()


class Run:
    """``procbots run <bot>`` in the background; output in files (a full pipe would stall it)."""

    def __init__(
        self, source: Path, portal: str, env: dict[str, str], *extra: str, bot: str = "purchase-orders"
    ) -> None:
        folder = Path(env["TMPDIR"]).parent / "runs"
        folder.mkdir(exist_ok=True)
        self.out_path = folder / f"{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        given = ["--input", str(source)] if bot == "purchase-orders" else ["--folder", str(source)]
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [str(PROCBOTS), "run", bot, *given, "--portal", portal, "--json", *extra],
                env=env, stdout=out, stderr=err, text=True,
                start_new_session=True,  # its own process group: a kill takes Chromium down with it
            )  # fmt: skip

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout_s: float) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout_s)
        return code, self.out_path.read_text(), self.err_path.read_text()


def wait_until(condition: Any, what: str, timeout_s: float = 120, run: Run | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline or (run is not None and run.proc.poll() is not None):
            lines = run.err_path.read_text().splitlines()[-25:] if run is not None else []
            output = "\n".join(line[:400] for line in lines)
            raise AssertionError(f"timed out waiting for {what} (or the run ended): {output}")
        time.sleep(0.1)


def process_state(pid: int) -> str:
    """The state letter of a process (``T``: stopped), from /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def json_output(stdout: str) -> dict[str, Any]:
    return json.loads(stdout[stdout.index('{\n  "run_id"') :])  # type: ignore[no-any-return]


def one_po_each(server: SandboxServer, prefix: str, refs: list[str]) -> dict[str, str]:
    orders = portal_orders(server, prefix)
    assert Counter(o["requisition_ref"] for o in orders) == Counter(dict.fromkeys(refs, 1))
    return {o["requisition_ref"]: o["po_number"] for o in orders}


def test_a_po_run_killed_at_three_random_moments_is_finished_exactly_once_by_the_same_command(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL three times part way (after a random number of POs, plus a random delay), wait
    for the leases to run out, run the same command again: one PO per requisition, all done,
    and the report names the PO the portal holds for each requisition."""
    server, prefix = slow_portal, "K-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 12, prefix=prefix)
    refs = [f"{prefix}REQ-2026-{n:06d}" for n in range(1, 13)]
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    for kill in range(3):
        raised_before = len(portal_orders(server, prefix))
        target = min(raised_before + rng.randint(1, 3), len(refs) - 1)
        run = Run(source, server.url, run_env, "--contexts", "2")
        wait_until(
            lambda t=target: len(portal_orders(server, prefix)) >= t,  # type: ignore[misc]
            f"{target} POs (kill {kill})",
            run=run,
        )
        time.sleep(rng.uniform(0, 0.6))
        run.kill()
        assert run.proc.returncode == -signal.SIGKILL, f"seed {seed}: the run ended before its kill"
        wait_for_leases_to_expire(run_env)

    final = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source), "--portal", server.url, "--json"],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert final.returncode == 0, f"seed {seed}: {final.stderr[-3000:]}"
    po_numbers = one_po_each(server, prefix, refs)
    report = json_output(final.stdout)
    assert {r["requisition_ref"]: r["status"] for r in report["results"]}.keys() == set(refs)
    for row in report["results"]:
        assert row["status"] in DONE_STATUSES, (seed, row)
        assert row["po_number"] == po_numbers[row["requisition_ref"]], (seed, row)
    assert {str(item.state) for item in ledger_items(run_env)} == {"done"}


def test_a_contract_run_killed_at_three_random_moments_is_finished_exactly_once_by_the_same_command(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """The drop of 20 contracts (14 valid): SIGKILL three times part way, wait for the leases,
    run the same command again: the files left in processing/ are taken again, each valid
    contract is in the register exactly once, and the report says each is in the register
    (uploaded now, found there, or done by an earlier run), never missing or failed."""
    from tests.test_contracts import build_drop
    from tests.test_contracts_e2e import assert_register_holds_exactly_the_valid_contracts, register

    server, root = slow_portal, tmp_path / "contracts"
    drop = build_drop(root)
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    for kill in range(3):
        before = len(register(server, "CT-T-"))
        target = min(before + rng.randint(1, 3), len(drop.valid) - 1)
        run = Run(root, server.url, run_env, "--stable-for", "0", bot="contract-uploads")
        wait_until(
            lambda t=target: len(register(server, "CT-T-")) >= t,  # type: ignore[misc]
            f"{target} contracts in the register (kill {kill})",
            run=run,
        )
        time.sleep(rng.uniform(0, 0.6))
        run.kill()
        assert run.proc.returncode == -signal.SIGKILL, f"seed {seed}: the run ended before its kill"
        wait_for_leases_to_expire(run_env, bot="contract_uploads")

    final = subprocess.run(
        [str(PROCBOTS), "run", "contract-uploads", "--folder", str(root), "--portal", server.url,
         "--stable-for", "0", "--json"],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert final.returncode == 1, f"seed {seed}: {final.stderr[-3000:]}"  # the 6 bad contracts
    report = json.loads(final.stdout[final.stdout.index("{") :])
    outcomes = {row["contract_id"]: row for row in report["contracts"]}
    assert_register_holds_exactly_the_valid_contracts(server, drop, "CT-T-")
    for cid in drop.valid:
        assert outcomes[cid]["outcome"] in ("uploaded", "found_in_register", "already_done"), (
            seed,
            outcomes[cid],
        )
    assert {
        cid: row["reason_code"] for cid, row in outcomes.items() if row["outcome"] == "rejected"
    } == drop.rejected
    assert not list((root / "processing").iterdir())
    assert len([p for p in (root / "done").iterdir() if p.suffix == ".pdf"]) == len(drop.valid)
    states = {str(item.state) for item in ledger_items(run_env, bot="contract_uploads")}
    assert states <= {"done", "business_exception"}, states


PAUSING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from connectors.portal.pages.new_po import NewPurchaseOrderPage
    from bots.purchase_orders import run_purchase_orders

    original = NewPurchaseOrderPage.create

    async def pause_then_create(self, order):
        # Stopped right before keying the order, as a machine that hangs would be.
        print("pausing before", order.requisition_ref, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        return await original(self, order)

    NewPurchaseOrderPage.create = pause_then_create
    run = run_purchase_orders(sys.argv[1], portal_url=sys.argv[2], contexts=1)
    print("paused run ended", run.counts, flush=True)
    """
)


def test_a_worker_paused_until_its_lease_was_taken_does_not_submit_when_resumed(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGSTOP a worker right before it keys an order; another run takes the item once the
    lease ran out and raises its PO; SIGCONT: the paused worker is fenced off (its lease is
    gone), so the portal holds one PO per requisition, not two."""
    server, prefix = slow_portal, "S-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 2, prefix=prefix)
    script = tmp_path / "pausing_run.py"
    script.write_text(PAUSING_RUN)
    errors = tmp_path / "paused.err"
    with errors.open("w") as err_file:
        paused = subprocess.Popen(
            [sys.executable, str(script), str(source), server.url],
            env=run_env, stdout=subprocess.PIPE, stderr=err_file, text=True,
        )  # fmt: skip
    assert paused.stdout is not None
    line = paused.stdout.readline()
    assert line.startswith("pausing before"), errors.read_text()[-3000:]
    ref = line.split()[-1]
    wait_until(lambda: process_state(paused.pid) == "T", "the worker to stop")
    wait_for_leases_to_expire(run_env)

    other = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source), "--portal", server.url, "--json"],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr[-3000:]
    po_numbers = one_po_each(server, prefix, [f"{prefix}REQ-2026-000001", f"{prefix}REQ-2026-000002"])

    os.kill(paused.pid, signal.SIGCONT)
    out, _ = paused.communicate(timeout=120)
    err = errors.read_text()
    assert "paused run ended" in out, err[-3000:]
    assert "lease lost" in err
    assert one_po_each(server, prefix, list(po_numbers)) == po_numbers  # nothing submitted after SIGCONT
    assert ref in po_numbers
    assert {str(item.state) for item in ledger_items(run_env)} == {"done"}


def test_a_portal_that_goes_away_stops_the_run_and_the_next_run_finishes_the_rest(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """Portal stopped after a few POs: the run ends within 30 s with PORTAL_UNAVAILABLE (exit 1),
    every requisition not done is pending with no attempt used; portal back on the same address,
    the same command raises the rest, one PO each."""
    server, prefix = slow_portal, "P-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 10, prefix=prefix)
    refs = [f"{prefix}REQ-2026-{n:06d}" for n in range(1, 11)]
    run = Run(source, server.url, run_env, "--contexts", "2")
    wait_until(lambda: len(portal_orders(server, prefix)) >= 3, "3 POs", run=run)
    server.stop()
    stopped_at = time.monotonic()
    code, out, err = run.wait(120)
    took = time.monotonic() - stopped_at
    assert took < 30, f"the run went on for {took:.0f} s after the portal stopped"
    assert code == 1, err[-3000:]
    assert "PORTAL_UNAVAILABLE" in err
    report = json_output(out)
    assert report["stopped"] == "PORTAL_UNAVAILABLE"
    items = ledger_items(run_env)
    left = [item for item in items if str(item.state) != "done"]
    assert left, "the portal stopped after the last requisition: nothing to check"
    assert {(str(item.state), item.attempts) for item in left} == {("pending", 0)}
    assert {
        r["status"] for r in report["results"] if r["requisition_ref"] in {i.idempotency_key for i in left}
    } == {"Not processed"}

    server.start()
    again = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source), "--portal", server.url, "--json"],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    one_po_each(server, prefix, refs)
    assert {str(item.state) for item in ledger_items(run_env)} == {"done"}


def test_a_wrong_password_stops_the_run_untouched_and_the_right_one_finishes_it(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """A wrong password: LOGIN_REJECTED (exit 2, a configuration problem), nothing raised, every
    item pending with no attempt used, the account not locked; the right password raises all."""
    server, prefix = slow_portal, "W-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 6, prefix=prefix)
    wrong = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source), "--portal", server.url, "--json"],
        env={**run_env, "PROCBOTS_PORTAL__PASSWORD": "not-the-password"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr[-3000:]
    assert "LOGIN_REJECTED" in wrong.stderr
    assert json_output(wrong.stdout)["stopped"] == "LOGIN_REJECTED"
    assert portal_orders(server, prefix) == []
    assert {(str(item.state), item.attempts) for item in ledger_items(run_env)} == {("pending", 0)}

    right = subprocess.run(
        [str(PROCBOTS), "run", "purchase-orders", "--input", str(source), "--portal", server.url],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert right.returncode == 0, right.stderr[-3000:]
    one_po_each(server, prefix, [f"{prefix}REQ-2026-{n:06d}" for n in range(1, 7)])


def secret_forms(secret: str) -> list[bytes]:
    """How a secret may sit in a file: as is, URL-encoded, and base64 at each of the 3 alignments."""
    raw = secret.encode()
    forms = {raw, quote(secret, safe="").encode(), quote_plus(secret).encode()}
    for pad in range(3):
        # The base64 characters made of the secret's bits alone, wherever it starts in a stream.
        encoded = base64.b64encode(b"\0" * pad + raw + b"\0\0")
        forms.add(encoded[-(-8 * pad // 6) : 8 * (pad + len(raw)) // 6])
    return sorted(forms)


def files_holding(folder: Path, forms: list[bytes]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path} ({form!r})" for form in forms if form in data]
    return found


def test_a_killed_run_leaves_no_file_holding_the_password_under_the_data_root_or_tmpdir(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """Kill a run mid-way (Playwright traces on), then search every file under the data root and
    the run's TMPDIR for the password, URL-encoded and base64 too. A planted copy of each form is
    found, so the search would see a leak."""
    server, prefix = slow_portal, "X-"
    source = write_requisitions(tmp_path / "requisitions.xlsx", 8, prefix=prefix)
    run = Run(source, server.url, run_env, "--contexts", "2")
    wait_until(lambda: len(portal_orders(server, prefix)) >= 2, "2 POs", run=run)
    run.kill()
    searched = [Path(run_env["PROCBOTS_PATHS__ROOT"]), Path(run_env["TMPDIR"])]
    assert any((searched[0] / "private" / "playwright").iterdir()), "the killed run left no Playwright files"
    forms = secret_forms(SANDBOX_PASSWORD)
    assert [files_holding(folder, forms) for folder in searched] == [[], []]

    control = tmp_path / "control"
    for number, form in enumerate(forms):
        (control / f"planted-{number}").parent.mkdir(exist_ok=True)
        (control / f"planted-{number}").write_bytes(b"noise " + form + b" noise")
    assert len(files_holding(control, forms)) >= len(forms)
    blob = control / "trace.network"
    blob.write_bytes(
        b'{"postData": "' + base64.b64encode(b"username=buyer1&password=" + SANDBOX_PASSWORD.encode()) + b'"}'
    )
    assert files_holding(control, [f for f in forms if f not in {SANDBOX_PASSWORD.encode()}]), (
        "base64 in a form body"
    )


def test_a_stopped_run_leaves_its_drop_folder_file_in_the_inbox_and_the_next_run_moves_it_to_done(
    slow_portal: SandboxServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    """Drop-folder mode with a wrong password: the run stops (LOGIN_REJECTED) and the file goes
    back to the inbox, not to done/; with the right password the next run raises its orders
    and only then moves it to done/."""
    server, prefix = slow_portal, "F-"
    folder = tmp_path / "requisitions"
    (folder / "inbox").mkdir(parents=True)
    write_requisitions(folder / "inbox" / "requisitions.xlsx", 3, prefix=prefix)
    command = [str(PROCBOTS), "run", "purchase-orders", "--drop-folder", str(folder), "--portal", server.url]
    env = run_env
    wrong = subprocess.run(
        command, env={**env, "PROCBOTS_PORTAL__PASSWORD": "not-the-password"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr[-3000:]
    assert [p.name for p in (folder / "inbox").iterdir()] == ["requisitions.xlsx"]
    assert not (folder / "done").exists() or not list((folder / "done").iterdir())
    assert {(str(item.state), item.attempts) for item in ledger_items(run_env)} == {("pending", 0)}

    right = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert right.returncode == 0, right.stderr[-3000:]
    assert [p.name for p in (folder / "done").iterdir()] == ["requisitions.xlsx"]
    one_po_each(server, prefix, [f"{prefix}REQ-2026-{n:06d}" for n in range(1, 4)])
