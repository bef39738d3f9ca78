"""The console's rules over HTTP (the real app in-process): sign-in, CSRF, downloads, actions, audit.

The browser tests (tests/test_console_browser.py) walk a person's day; these pin the
rules each page must keep, against a real SQLite ledger, real files and the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bots.purchase_orders import BOT, Requisition, RequisitionLine
from bots.runtime.ledger import Evidence, Ledger
from config.settings import Settings, get_settings
from connectors.audit import reset_default_audit_log, verify_audit
from connectors.console_links import console_link, download_path
from flows.console.app import create_app
from flows.console.auth import SessionStore, hash_password, verify_password
from flows.console.workqueue import PAYLOAD_MODELS, payload_model

PASSWORD = "Console-Test-Password-1"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def settings(settings_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    users = {"jsmith": {"name": "Jane Smith", "password_hash": hash_password(PASSWORD)}}
    monkeypatch.setenv("PROCBOTS_CONSOLE__USERS", json.dumps(users))
    get_settings.cache_clear()
    reset_default_audit_log()
    yield get_settings()
    reset_default_audit_log()


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    ledger = Ledger.from_settings(settings)
    yield ledger
    ledger.close()


@pytest.fixture
def client(settings: Settings, ledger: Ledger) -> Iterator[TestClient]:
    with TestClient(create_app(settings, ledger), follow_redirects=False) as client:
        yield client


def requisition(ref: str, need_by: dt.date) -> Requisition:
    return Requisition(
        requisition_ref=ref,
        supplier_id="SUP-00001",
        supplier_vat="GB980780684",
        cost_centre="CC-100",
        delivery_site="RJ1",
        need_by=need_by,
        lines=[RequisitionLine(row=3, item_code="5000157024671", description="Gloves", quantity=2)],
    )


def business_exception(ledger: Ledger, ref: str, settings: Settings, *, screenshot: bool = False) -> int:
    """A purchase-order item ended as a NEED_BY_IN_PAST business exception (optionally with a screenshot)."""
    ledger.add(BOT, ref, requisition(ref, dt.date(2020, 1, 31)))
    item = ledger.claim(BOT, owner="test-worker")
    assert item is not None
    if screenshot:
        shot = settings.paths.resolve("evidence") / "run-1" / str(item.id) / "page.png"
        shot.parent.mkdir(parents=True)
        shot.write_bytes(PNG)
        ledger.add_evidence(item, [Evidence(path=str(shot), sha256="0" * 64)])
    ledger.business_exception(item, "NEED_BY_IN_PAST", f"Requisition {ref}: need-by date is before today")
    return item.id


def sign_in(client: TestClient, password: str = PASSWORD) -> int:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_token": token.group(1), "username": "jsmith", "password": password, "next": "/"}
    return client.post("/login", data=form).status_code


def csrf(client: TestClient, path: str = "/") -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert token is not None
    return token.group(1)


def audit_records(settings: Settings) -> list[dict[str, object]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines()]


def test_a_password_hash_verifies_its_own_password_only() -> None:
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapler", encoded)
    assert not verify_password("anything", None)
    assert not verify_password("anything", "md5$abc")
    assert hash_password("same") != hash_password("same")  # salted


def test_a_session_ends_when_its_time_is_up() -> None:
    now = [1000.0]
    store = SessionStore(ttl_s=60, clock=lambda: now[0])
    token, session = store.start("jsmith", "Jane Smith")
    assert store.get(token) is session
    now[0] += 59
    assert store.get(token) is session
    now[0] += 2
    assert store.get(token) is None


def test_pages_need_a_sign_in_and_a_wrong_password_is_refused(client: TestClient, ledger: Ledger) -> None:
    assert client.get("/").status_code == 303
    assert client.get("/").headers["location"] == "/login?next=/"
    assert sign_in(client, password="not-the-password") == 401
    assert client.get("/").status_code == 303
    assert sign_in(client) == 303
    page = client.get("/")
    assert page.status_code == 200
    assert "Signed in as <strong>Jane Smith</strong>" in page.text


def test_sign_in_without_the_forms_token_is_refused(client: TestClient) -> None:
    refused = client.post("/login", data={"username": "jsmith", "password": PASSWORD, "next": "/"})
    assert refused.status_code == 403
    assert client.get("/").status_code == 303


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    item_id = business_exception(ledger, "REQ-CSRF-1", settings)
    sign_in(client)
    refused = client.post(f"/items/{item_id}/retry", data={"reason": "try again"})
    assert refused.status_code == 403
    wrong = client.post(f"/items/{item_id}/retry", data={"reason": "try again", "csrf_token": "forged"})
    assert wrong.status_code == 403
    assert str(ledger.get(item_id).state) == "business_exception"
    done = client.post(f"/items/{item_id}/retry", data={"reason": "try again", "csrf_token": csrf(client)})
    assert done.status_code == 303
    assert str(ledger.get(item_id).state) == "pending"


def test_the_queue_shows_exceptions_by_reason_code(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    for number in range(3):
        business_exception(ledger, f"REQ-Q-{number}", settings)
    sign_in(client)
    overview = client.get("/").text
    assert "NEED_BY_IN_PAST" in overview
    assert f'<a href="/bots/{BOT}?state=business_exception&amp;reason=NEED_BY_IN_PAST">3</a>' in overview
    queue = client.get(f"/bots/{BOT}", params={"state": "business_exception", "reason": "NEED_BY_IN_PAST"})
    assert queue.status_code == 200
    assert all(f"REQ-Q-{number}" in queue.text for number in range(3))


def test_an_evidence_file_downloads_with_its_bytes_and_a_page_loads_with_scripts_off(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    item_id = business_exception(ledger, "REQ-EVIDENCE-1", settings, screenshot=True)
    page_html = settings.paths.resolve("evidence") / "run-1" / str(item_id) / "page.html"
    page_html.write_text("<html><script>alert(1)</script></html>")
    report = settings.paths.resolve("outbox") / "purchase-orders-1.xlsx"
    report.parent.mkdir(parents=True)
    report.write_bytes(b"PK\x03\x04 a workbook")
    sign_in(client)
    item_page = client.get(f"/items/{item_id}").text
    assert f'src="/files/evidence/run-1/{item_id}/page.png"' in item_page
    shot = client.get(f"/files/evidence/run-1/{item_id}/page.png")
    assert (shot.status_code, shot.headers["content-type"], shot.content) == (200, "image/png", PNG)
    download = client.get("/files/outbox/purchase-orders-1.xlsx")
    assert download.status_code == 200
    assert download.content == report.read_bytes()
    assert download.headers["content-disposition"].startswith("attachment")
    html = client.get(f"/files/evidence/run-1/{item_id}/page.html")
    assert html.status_code == 200
    assert html.headers["content-security-policy"].startswith("sandbox")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/files/evidence/../ledger.db", id="dot-dot"),
        pytest.param("/files/evidence/%2e%2e/ledger.db", id="encoded-dot-dot"),
        pytest.param("/files/evidence/run-1/..%2f..%2fledger.db", id="encoded-slash"),
        pytest.param("/files/evidence//etc/passwd", id="absolute"),
        pytest.param("/files/inbox/requisitions.xlsx", id="unserved-folder"),
        pytest.param("/files/evidence/link/ledger.db", id="symlink-out"),
    ],
)
def test_a_path_outside_the_served_folders_is_refused(
    client: TestClient, ledger: Ledger, settings: Settings, path: str
) -> None:
    evidence = settings.paths.resolve("evidence")
    evidence.mkdir(parents=True, exist_ok=True)
    (evidence / "link").symlink_to(settings.paths.root)
    inbox = settings.paths.resolve("inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "requisitions.xlsx").write_bytes(b"secret rows")
    sign_in(client)
    response = client.get(path)
    assert response.status_code in (403, 404), response.status_code
    assert b"SQLite format" not in response.content
    assert b"secret rows" not in response.content
    assert b"root:" not in response.content


def test_download_path_refuses_traversal_and_names_the_folder(settings: Settings) -> None:
    with pytest.raises(PermissionError, match="is not a path inside evidence/"):
        download_path("evidence", "../ledger.db", settings)
    with pytest.raises(PermissionError, match="not a folder the console serves"):
        download_path("quarantine", "x", settings)
    with pytest.raises(FileNotFoundError, match=r"outbox/nothing\.xlsx: no such file"):
        download_path("outbox", "nothing.xlsx", settings)


def test_console_link_points_at_the_console_when_a_public_url_is_set(tmp_path: Path) -> None:
    settings = Settings(paths={"root": str(tmp_path)}, console={"public_url": "https://pb.example.nhs.uk/"})
    report = tmp_path / "outbox" / "run 1" / "purchase-orders.xlsx"
    assert (
        console_link(report, settings)
        == "https://pb.example.nhs.uk/files/outbox/run%201/purchase-orders.xlsx"
    )
    outside = tmp_path / "inbox" / "requisitions.xlsx"
    assert console_link(outside, settings) == outside.as_uri()
    assert console_link(report, Settings(paths={"root": str(tmp_path)})) == report.as_uri()


def test_replace_data_and_retry_stores_the_checked_payload_and_the_audit_names_the_person(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    item_id = business_exception(ledger, "REQ-REPLACE-1", settings)
    sign_in(client)
    form_page = client.get(f"/items/{item_id}/replace")
    assert form_page.status_code == 200
    assert 'name="field.need_by" value="2020-01-31"' in form_page.text
    original = ledger.get(item_id).payload
    form = {
        f"field.{name}": (json.dumps(v) if isinstance(v, list | dict) else str(v))
        for name, v in original.items()
    }
    form.update(
        {
            "field.need_by": "2031-03-31",
            "reason": "need-by corrected with the ward",
            "csrf_token": csrf(client),
        }
    )

    bad = client.post(f"/items/{item_id}/replace", data={**form, "field.need_by": "31st of never"})
    assert bad.status_code == 400
    assert "need_by: Input should be a valid date" in bad.text
    assert ledger.get(item_id).payload["need_by"] == "2020-01-31"

    saved = client.post(f"/items/{item_id}/replace", data=form)
    assert saved.status_code == 303
    item = ledger.get(item_id)
    assert str(item.state) == "pending"
    assert item.payload == {**original, "need_by": "2031-03-31"}
    (replaced,) = [t for t in ledger.history(item_id) if t.event == "payload_replaced"]
    assert replaced.owner == "Jane Smith (jsmith)"
    assert (
        replaced.detail == 'need-by corrected with the ward (changed: need_by "2020-01-31" -> "2031-03-31")'
    )

    (record,) = [r for r in audit_records(settings) if r["event"] == "workitem.payload_replaced"]
    assert record["operator"] == "Jane Smith (jsmith)"
    assert str(record["reason"]).startswith("need-by corrected with the ward")
    assert record["old_payload"]["need_by"] == "2020-01-31"  # type: ignore[index]
    assert record["new_payload"]["need_by"] == "2031-03-31"  # type: ignore[index]
    assert verify_audit(settings.audit_path).ok


def test_resolve_needs_a_note_and_marks_the_item_done_by_the_person(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    item_id = business_exception(ledger, "REQ-RESOLVE-1", settings)
    sign_in(client)
    token = csrf(client)
    empty = client.post(f"/items/{item_id}/resolve", data={"reason": " ", "csrf_token": token})
    assert empty.status_code == 400
    assert str(ledger.get(item_id).state) == "business_exception"
    done = client.post(
        f"/items/{item_id}/resolve", data={"reason": "raised by phone as PO-9", "csrf_token": token}
    )
    assert done.status_code == 303
    item = ledger.get(item_id)
    assert str(item.state) == "done"
    assert item.result is not None
    assert (item.result["resolved_by"], item.result["note"], item.result["reason_code"]) == (
        "Jane Smith (jsmith)",
        "raised by phone as PO-9",
        "NEED_BY_IN_PAST",
    )
    again = client.post(f"/items/{item_id}/resolve", data={"reason": "twice", "csrf_token": token})
    assert again.status_code == 409
    (record,) = [r for r in audit_records(settings) if r["event"] == "workitem.resolved"]
    assert (record["operator"], record["reason"], record["to_state"]) == (
        "Jane Smith (jsmith)",
        "raised by phone as PO-9",
        "done",
    )


def test_release_frees_a_stuck_item_and_names_its_holder(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    ledger.add(BOT, "REQ-STUCK-1", requisition("REQ-STUCK-1", dt.date(2031, 1, 1)))
    item = ledger.claim(BOT, owner="dead-host:4242")
    assert item is not None
    sign_in(client)
    page = client.get(f"/items/{item.id}").text
    assert "dead-host:4242" in page
    released = client.post(
        f"/items/{item.id}/release", data={"reason": "host rebooted", "csrf_token": csrf(client)}
    )
    assert released.status_code == 303
    assert str(ledger.get(item.id).state) == "pending"
    (record,) = [r for r in audit_records(settings) if r["event"] == "workitem.released"]
    assert (record["operator"], record["lease_owner_was"]) == ("Jane Smith (jsmith)", "dead-host:4242")


def test_hash_password_prints_settings_lines_that_sign_the_person_in(settings_env: Path) -> None:
    import tomllib

    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(
        app,
        ["console", "hash-password", "jsmith", "--name", 'Jane "JJ" Smith'],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    lines = result.output[result.output.index("[console.users.jsmith]") :]
    user = tomllib.loads(lines)["console"]["users"]["jsmith"]
    assert user["name"] == 'Jane "JJ" Smith'
    assert verify_password(PASSWORD, user["password_hash"])
    assert PASSWORD not in result.output.replace("Password:", "")


def test_procbots_console_without_users_says_how_to_add_one(settings_env: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["console", "--port", "0"])
    assert result.exit_code == 2
    assert "no console users are configured" in result.output
    assert "procbots console hash-password" in result.output


def test_run_ids_are_read_from_evidence_folders_and_history(ledger: Ledger, settings: Settings) -> None:
    from flows.console.flowruns import FlowRunFinder, run_ids

    item_id = business_exception(ledger, "REQ-RUN-1", settings)
    evidence = settings.paths.resolve("evidence") / "20261207T101500Z-1a2b3c4d" / str(item_id) / "page.png"
    ledger.add_evidence(item_id, [Evidence(path=str(evidence), sha256="0" * 64)])
    item = ledger.get(item_id)
    assert run_ids(item, ledger.history(item_id)) == ["20261207T101500Z-1a2b3c4d"]
    offline = FlowRunFinder(api_url=None, ui_url=None)
    assert offline.find("20261207T101500Z-1a2b3c4d") is None  # no API: no lookup, no link
    uuid = "1a2b3c4d-0000-4000-8000-000000000001"
    assert offline.find(uuid) == uuid


def test_the_run_that_claimed_an_item_is_read_from_its_claim(ledger: Ledger) -> None:
    """The runner records its run id on each claim, so every claimed item can be linked."""
    from flows.console.flowruns import run_ids

    ledger.add("run_link_bot", "REQ-RUN-2", {})
    claimed = ledger.claim("run_link_bot", "host:1:abc/w0", run_id="20261207T101500Z-5e6f7a8b")
    assert claimed is not None
    assert run_ids(ledger.get(claimed.id), ledger.history(claimed.id)) == ["20261207T101500Z-5e6f7a8b"]


@pytest.mark.prefect
def test_an_items_flow_run_is_found_through_the_prefect_api_and_linked(
    prefect_api: None, ledger: Ledger, settings: Settings
) -> None:
    from prefect import flow

    from flows.common import current_flow_run_id
    from flows.console.flowruns import FlowRunFinder

    @flow(name="console-flow-run-lookup")
    def a_bot_run() -> str:
        return str(current_flow_run_id())

    flow_run_id = a_bot_run()
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{flow_run_id[:8]}"
    item_id = business_exception(ledger, "REQ-RUN-2", settings)
    evidence = settings.paths.resolve("evidence") / run_id / str(item_id) / "page.png"
    ledger.add_evidence(item_id, [Evidence(path=str(evidence), sha256="0" * 64)])

    finder = FlowRunFinder.from_prefect_settings()
    assert finder.find(run_id) == flow_run_id
    assert finder.find(f"{run_id[:-8]}00000000") is None  # a run id of no flow run
    with TestClient(create_app(settings, ledger, flow_runs=finder), follow_redirects=False) as client:
        sign_in(client)
        page = client.get(f"/items/{item_id}").text
    assert f"Open flow run {flow_run_id} in the Prefect UI" in page
    assert finder.ui_url, "the harness's Prefect settings give a UI address"
    assert f'href="{finder.ui_url}/runs/flow-run/{flow_run_id}"' in page


def test_every_registered_bot_has_a_payload_model_for_the_replace_form() -> None:
    from bots import registry

    ledger_bots = {bot.ledger_bot for bot in registry.bots() if bot.ledger_bot}
    assert ledger_bots  # control: the registry was read
    assert ledger_bots <= set(PAYLOAD_MODELS)


@pytest.mark.parametrize("bot", sorted(PAYLOAD_MODELS))
def test_each_payload_model_is_the_model_its_bot_files_items_as(bot: str) -> None:
    import importlib

    from pydantic import BaseModel

    model = payload_model(bot)
    assert model is not None
    assert issubclass(model, BaseModel)
    assert bot == importlib.import_module(PAYLOAD_MODELS[bot].split(":")[0]).BOT


def test_run_summary_links_point_at_the_console_when_it_has_a_public_address(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.common import render_summary_markdown

    report = settings_env / "outbox" / "purchase-orders-1.xlsx"
    monkeypatch.setenv("PROCBOTS_CONSOLE__PUBLIC_URL", "https://procbots.trust.nhs.uk")
    get_settings.cache_clear()
    text = render_summary_markdown("Purchase orders", {"raised": 1}, [], {"results": report})
    assert "- [results](https://procbots.trust.nhs.uk/files/outbox/purchase-orders-1.xlsx)" in text
    monkeypatch.delenv("PROCBOTS_CONSOLE__PUBLIC_URL")
    get_settings.cache_clear()
    text = render_summary_markdown("Purchase orders", {"raised": 1}, [], {"results": report})
    assert f"- [results]({report.resolve().as_uri()})" in text


def test_sign_in_never_redirects_off_the_console_and_sign_out_ends_the_session(client: TestClient) -> None:
    page = client.get("/login", params={"next": "//evil.example/phish"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    assert 'name="next" value="/"' in page.text
    form = {
        "csrf_token": token.group(1),
        "username": "jsmith",
        "password": PASSWORD,
        "next": "https://evil.example",
    }
    signed = client.post("/login", data=form)
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
    assert client.get("/").status_code == 200
    session_cookie = client.cookies["procbots_console"]
    assert client.post("/logout", data={"csrf_token": csrf(client)}).status_code == 303
    client.cookies.set("procbots_console", session_cookie)  # replayed: the server forgot it
    assert client.get("/").status_code == 303


def test_the_reports_page_lists_the_newest_reports_and_the_audit_log_as_downloads(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    business_exception(ledger, "REQ-REPORTS-1", settings)  # writes the audit log
    report = settings.paths.resolve("outbox") / "orders" / "PO-000123.xml"
    report.parent.mkdir(parents=True)
    report.write_bytes(b"<Order/>")
    sign_in(client)
    page = client.get("/files").text
    assert '<a href="/files/outbox/orders/PO-000123.xml">orders/PO-000123.xml</a>' in page
    assert '<a href="/files/audit/audit.jsonl">audit.jsonl</a>' in page
    assert client.get("/files/outbox/orders/PO-000123.xml").content == b"<Order/>"
    assert client.get("/files/audit/audit.jsonl").content == settings.audit_path.read_bytes()


def test_replace_data_refuses_a_structured_field_that_is_not_json_and_keeps_the_old_data(
    client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    item_id = business_exception(ledger, "REQ-REPLACE-2", settings)
    sign_in(client)
    original = ledger.get(item_id).payload
    form = {f"field.{k}": json.dumps(v) if isinstance(v, list) else str(v or "") for k, v in original.items()}
    form.update({"field.lines": "[{row: 3", "reason": "fix lines", "csrf_token": csrf(client)})
    refused = client.post(f"/items/{item_id}/replace", data=form)
    assert refused.status_code == 400
    assert "lines: not valid JSON" in refused.text
    assert "[{row: 3" in refused.text  # what the person typed is kept in the form
    assert ledger.get(item_id).payload == original
    assert str(ledger.get(item_id).state) == "business_exception"
