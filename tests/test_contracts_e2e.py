"""Contract uploads against the sandbox portal through real Chromium: 20 contracts in,
14 in the register byte for byte with their details, the rest quarantined with reasons;
a rerun uploads nothing; under chaos every valid contract is in the register exactly once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from bots.contracts import run_contract_uploads
from bots.runtime.ledger import Ledger
from sandbox.server import SandboxServer
from tests.plugins.sandbox import SANDBOX_PASSWORD
from tests.test_contracts import TODAY, Drop, build_drop

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def portal_env(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[SandboxServer], Any]]:
    """Points procbots settings at a sandbox portal (password from the environment, quick retries)."""
    from config.settings import get_settings

    def point(server: SandboxServer) -> Any:
        monkeypatch.setenv("PROCBOTS_PORTAL__URL", server.url)
        monkeypatch.setenv("PROCBOTS_PORTAL__PASSWORD", SANDBOX_PASSWORD)
        monkeypatch.setenv("PROCBOTS_RETRY__INITIAL_S", "0.1")
        monkeypatch.setenv("PROCBOTS_RETRY__MAX_S", "1")
        monkeypatch.setenv("PROCBOTS_RETRY__MAX_ATTEMPTS", "6")
        get_settings.cache_clear()
        return get_settings()

    yield point
    get_settings.cache_clear()


def register(server: SandboxServer, prefix: str) -> list[dict[str, Any]]:
    return [c for c in server.state(sections="contracts")["contracts"] if c["contract_id"].startswith(prefix)]


def assert_register_holds_exactly_the_valid_contracts(server: SandboxServer, drop: Drop, prefix: str) -> None:
    rows = register(server, prefix)
    counts = Counter(r["contract_id"] for r in rows)
    assert counts == Counter(dict.fromkeys(drop.valid, 1)), "each valid contract exactly once, nothing else"
    for row in rows:
        cid = row["contract_id"]
        details = drop.details[cid]
        assert row["sha256"] == hashlib.sha256(drop.valid[cid]).hexdigest()
        assert row["title"] == details["title"]
        assert row["supplier_name"] == details["supplier_name"]
        assert row["supplier_vat"] == details["supplier_vat"]
        assert row["buyer_ods"] == details["buyer_ods"]
        assert row["cpv_codes"] == [details["cpv_codes"]]
        assert row["procedure"] == details["procedure"]
        assert Decimal(row["value_net"]) == Decimal(details["value_net"])
        assert Decimal(row["value_gross"]) == Decimal(details["value_gross"])
        assert row["start_date"] == details["start_date"]
        assert row["end_date"] == details["end_date"]
        assert row["max_end_date"] == details["max_end_date"]
        assert row["kpis"] == drop.kpis[cid], "KPI names round-trip through the register"
        assert row["kpi_count"] == len(drop.kpis[cid])
        assert row["sme"] is (details["sme"] == "yes")


def test_twenty_contracts_fourteen_in_the_register_the_rest_quarantined_and_a_rerun_adds_nothing(
    sandbox_factory: Callable[..., SandboxServer], portal_env: Callable[[SandboxServer], Any], tmp_path: Path
) -> None:
    server = sandbox_factory(seed=3, orders=10)
    portal_env(server)
    root = tmp_path / "contracts"
    drop = build_drop(root)  # dropped straight into the folder, as `procbots sandbox data` writes them

    result = run_contract_uploads(root, stable_for_s=0, today=TODAY)

    assert_register_holds_exactly_the_valid_contracts(server, drop, "CT-T-")
    outcomes = {o.contract_id: o for o in result.outcomes}
    assert {cid for cid, o in outcomes.items() if o.outcome in ("uploaded", "found_in_register")} == set(
        drop.valid
    )
    assert {cid: o.reason_code for cid, o in outcomes.items() if o.outcome == "rejected"} == drop.rejected
    assert result.exit_code == 1

    # Every file is kept: good ones in done/, bad ones in quarantine/ with their reason beside them.
    done = {p.name for p in (root / "done").iterdir()}
    assert "metadata.xlsx" in done
    assert "Contrat signé – Café Müller CT-0013.pdf" in done
    assert any(name.startswith("CT-0014 signed framework") and name.endswith(".pdf") for name in done)
    assert len([n for n in done if n.endswith(".pdf")]) == 14
    reasons = {}
    for sidecar in (root / "quarantine").glob("*.reason.json"):
        record = json.loads(sidecar.read_text("utf-8"))
        reasons[record["original_name"]] = record["reason"]
    assert reasons == {
        "CT-T-0015.pdf": "DATES_INCONSISTENT",
        "CT-T-0016.pdf": "HIGH_VALUE_KPIS",
        "CT-T-0017.pdf": "SUPPLIER_ID_INVALID",
        "CT-T-0018.pdf": "MISSING_FIELD",
        "CT-T-0019.pdf": "PDF_ENCRYPTED",
        "CT-T-0020.pdf": "NOT_A_PDF",
    }
    assert not list((root / "inbox").iterdir())
    assert not list((root / "processing").iterdir())

    # The report: uploaded, rejected with reasons, ending soon with its chart.
    assert result.report is not None
    wb = load_workbook(result.report)
    assert len(list(wb["Uploaded"].iter_rows(min_row=2))) == 14
    rejected_codes = {row[2] for row in wb["Rejected"].iter_rows(min_row=2, values_only=True)}
    assert rejected_codes == set(drop.rejected.values())
    ending = {row[0] for row in wb["Ending soon"].iter_rows(min_row=2, values_only=True)}
    assert ending == {cid for cid in drop.valid if int(cid[-4:]) * 20 <= 180}
    assert len(wb["Summary"]._charts) == 1

    # A rerun: the same files dropped again upload nothing new.
    before = register(server, "CT-T-")
    build_drop(root / "inbox")
    again = run_contract_uploads(root, stable_for_s=0, today=TODAY)
    assert register(server, "CT-T-") == before
    assert Counter(o.outcome for o in again.outcomes) == Counter(already_done=14, rejected=7)


def seeded_contract_sidecar(record: Any, **changes: Any) -> dict[str, Any]:
    return {
        "contract_id": record.contract_id,
        "title": record.title,
        "supplier_name": record.supplier_name,
        "supplier_vat": record.supplier_vat,
        "companies_house": record.companies_house,
        "buyer_ods": record.buyer_ods,
        "cpv_codes": record.cpv_codes,
        "procedure": record.procedure,
        "value_net": str(record.value_net),
        "value_gross": str(record.value_gross),
        "start_date": record.start_date.isoformat(),
        "end_date": record.end_date.isoformat(),
        "max_end_date": record.max_end_date.isoformat(),
        "kpis": "; ".join(record.kpis),
        "kpi_count": record.kpi_count,
        "sme": record.sme,
        **changes,
    }


def test_a_contract_already_in_the_register_is_verified_not_uploaded_and_a_conflict_is_reported(
    sandbox: SandboxServer, portal_env: Callable[[SandboxServer], Any], tmp_path: Path
) -> None:
    """The ledger knows nothing (a new machine, a lost database): the portal search decides."""
    from sandbox.pdf import text_pdf
    from sandbox.seed import generate

    portal_env(sandbox)
    seeded = generate(sandbox.seed, sandbox.orders).contracts[:4]
    before = {c["contract_id"]: c for c in sandbox.state(sections="contracts")["contracts"]}
    inbox = tmp_path / "contracts" / "inbox"
    inbox.mkdir(parents=True)
    same, other_document, other_title, other_kpis = seeded
    assert same.kpis, "the seeded contract names its KPIs, so the match covers them"
    for record, document, changes in (
        (same, same.document, {}),
        (other_document, text_pdf(["A different signed copy"]), {}),
        (other_title, other_title.document, {"title": "A title the register does not have"}),
        (other_kpis, other_kpis.document, {"kpis": "A KPI the register does not list", "kpi_count": None}),
    ):
        (inbox / record.filename).write_bytes(document)
        sidecar = seeded_contract_sidecar(record, **changes)
        (inbox / f"{record.contract_id}.json").write_text(json.dumps(sidecar), "utf-8")
    ledger = Ledger(f"sqlite:///{tmp_path / 'new-ledger.db'}")

    result = run_contract_uploads(tmp_path / "contracts", stable_for_s=0, today=TODAY, ledger=ledger)

    outcomes = {o.contract_id: (o.outcome, o.reason_code) for o in result.outcomes}
    assert outcomes == {
        same.contract_id: ("found_in_register", None),
        other_document.contract_id: ("rejected", "REGISTER_DOCUMENT_MISMATCH"),
        other_title.contract_id: ("rejected", "REGISTER_DETAILS_MISMATCH"),
        other_kpis.contract_id: ("rejected", "REGISTER_DETAILS_MISMATCH"),
    }
    assert {c["contract_id"]: c for c in sandbox.state(sections="contracts")["contracts"]} == before
    title_problem = next(o for o in result.outcomes if o.contract_id == other_title.contract_id)
    assert "Contract title: the register shows" in (title_problem.reason or "")
    kpi_problem = next(o for o in result.outcomes if o.contract_id == other_kpis.contract_id)
    assert "expected 'A KPI the register does not list'" in (kpi_problem.reason or "")


def test_under_chaos_each_valid_contract_is_in_the_register_exactly_once(
    sandbox_factory: Callable[..., SandboxServer], portal_env: Callable[[SandboxServer], Any], tmp_path: Path
) -> None:
    server = sandbox_factory(seed=4, orders=10, chaos="error_rate=0.1,session_ttl_s=20,seed=11")
    portal_env(server)
    root = tmp_path / "contracts"
    drop = build_drop(root / "inbox", prefix="CT-C")
    # Once the first contract is in, the portal's clock jumps past the session TTL, so every
    # open session certainly ends mid-run however quick this machine is.
    stop = threading.Event()

    def expire_sessions_once() -> None:
        while not stop.wait(0.5):
            if register(server, "CT-C-"):
                server.advance_clock(21)
                return

    ticker = threading.Thread(target=expire_sessions_once, daemon=True)
    ticker.start()
    try:
        result = run_contract_uploads(root, stable_for_s=0, today=TODAY)
    finally:
        stop.set()
        ticker.join()

    assert_register_holds_exactly_the_valid_contracts(server, drop, "CT-C-")
    logins = server.state(sections="logins")["logins"]
    assert logins["sessions_expired"] >= 1
    assert logins["succeeded"] > 2  # two browser contexts signed in again after expiry
    outcomes = Counter(o.outcome for o in result.outcomes)
    assert outcomes["uploaded"] + outcomes["found_in_register"] == 14
    assert outcomes["rejected"] == 7
    assert outcomes["failed"] == 0


@pytest.mark.prefect
def test_the_flow_completes_through_the_prefect_api_with_its_artifacts(
    prefect_api: None, sandbox: SandboxServer, portal_env: Callable[[SandboxServer], Any], tmp_path: Path
) -> None:
    """``contract-uploads`` through the Prefect API: Completed (a rejection does not fail it),
    a summary, a table row per contract and a link to the report."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from bots.bot_parameters import ContractUploadsParameters
    from flows.bot_flows import contract_uploads_flow
    from sandbox.pdf import text_pdf
    from tests.test_contracts import good_details, vat

    portal_env(sandbox)
    inbox = tmp_path / "contracts" / "inbox"
    inbox.mkdir(parents=True)
    documents = {}
    for n, changes in ((1, {}), (2, {}), (3, {"end_date": "2020-01-01"})):
        cid = f"CT-F-{n:04d}"
        documents[cid] = text_pdf([f"Contract {cid}"], title=cid)
        (inbox / f"{cid}.pdf").write_bytes(documents[cid])
        details = good_details(cid, supplier_vat=vat(f"{2000000 + n:07d}"), **changes)
        (inbox / f"{cid}.json").write_text(json.dumps(details), "utf-8")
    params = ContractUploadsParameters(
        folder=str(tmp_path / "contracts"), portal_url=sandbox.url, workers=1, stable_for_s=0
    )

    state = contract_uploads_flow(params, return_state=True)

    assert state.is_completed(), state.message
    assert "2 uploaded" in str(state.message)
    assert "1 business_exception" in str(state.message)
    stored = {c["contract_id"]: c["sha256"] for c in register(sandbox, "CT-F-")}
    assert stored == {cid: hashlib.sha256(documents[cid]).hexdigest() for cid in ("CT-F-0001", "CT-F-0002")}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {a.key: a for a in artifacts}
    table = json.loads(str(by_key["contract-uploads-items"].data))
    assert [(row["contract_id"], row["outcome"], row["reason_code"]) for row in table] == [
        ("CT-F-0001", "uploaded", ""),
        ("CT-F-0002", "uploaded", ""),
        ("CT-F-0003", "rejected", "DATES_INCONSISTENT"),
    ]
    assert "| uploaded | 2 |" in str(by_key["contract-uploads-summary"].data)
    link = str(by_key["contract-uploads-link-contracts-report"].data)
    report = Path(link.split("(file://", 1)[1].rstrip(")"))
    assert report.suffix == ".xlsx"
    assert len(list(load_workbook(report)["Uploaded"].iter_rows(min_row=2))) == 2
