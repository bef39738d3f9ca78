"""The contract register: list, upload form (Procurement Act 2023 contract details and the PDF), detail."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.forms import FormField, arrange, parse_decimal
from sandbox.portal import PAGE_SIZE
from sandbox.seed import CONTRACT_COLUMNS, CONTRACT_PLACEHOLDERS, vat_is_valid
from sandbox.ubl import money
from sandbox.web import Web

__all__ = ["MAX_KPIS", "MAX_KPI_CHARS", "MAX_UPLOAD_BYTES", "PROCEDURES", "register"]

PROCEDURES = (
    ("open", "Open procedure"),
    ("competitive_flexible", "Competitive flexible procedure"),
    ("direct_award", "Direct award"),
    ("framework_call_off", "Call-off from a framework"),
    ("dynamic_market", "Dynamic market"),
    ("below_threshold", "Below threshold"),
)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_KPIS = 100
MAX_KPI_CHARS = 250
"""KPIs on one contract, and characters in one KPI name, the register accepts."""


def register(app: FastAPI, web: Web) -> None:
    """Add ``/contracts``, ``/contracts/new`` and the contract pages."""
    portal, chaos, render, session_for = web.portal, web.chaos, web.render, web.session_for
    checked_form, not_found, page_of, pager = web.checked_form, web.not_found, web.page_of, web.pager

    @app.get("/contracts", response_class=HTMLResponse)
    def contracts(request: Request, q: str = "") -> HTMLResponse:
        session = session_for(request)
        page = page_of(request)
        where, args = "", []
        if q.strip():
            like = f"%{q.strip()}%"
            where = "WHERE contract_id LIKE ? OR title LIKE ? OR supplier_name LIKE ? OR supplier_vat LIKE ?"
            args = [like, like, like, like]
        with portal.db() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM contracts {where}", args).fetchone()[0]
            rows = conn.execute(
                "SELECT contract_id, title, supplier_name, value_net, start_date, end_date, uploaded_at "
                f"FROM contracts {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return render(
            request,
            "contracts.html",
            {"rows": rows, "q": q, "pager": pager(request, page, total)},
            session=session,
        )

    def contract_fields(values: dict[str, str], errors: dict[str, str]) -> list[FormField]:
        def f(name: str, label: str, kind: str = "text", hint: str = "", **kw: Any) -> FormField:
            return FormField(name, label, kind, values.get(name, ""), errors.get(name, ""), hint, **kw)

        return arrange(
            [
                f("contract_id", "Contract ID"),
                f("title", "Contract title"),
                f("supplier_name", "Supplier name"),
                f(
                    "supplier_vat",
                    "Supplier VAT number",
                    hint="GB and 9 digits; or give the Companies House number",
                ),
                f("companies_house", "Companies House number"),
                f("buyer_ods", "Buyer ODS code", hint="For example RX1"),
                f("cpv_codes", "CPV codes", hint="One or more, separated by commas, for example 33141420-0"),
                f("procedure", "Procedure", "select", options=[("", "Choose a procedure"), *PROCEDURES]),
                f("value_net", "Contract value excluding VAT", hint="In pounds, for example 125000.00"),
                f("value_gross", "Contract value including VAT"),
                f("start_date", "Start date", "date"),
                f("end_date", "End date", "date"),
                f("max_end_date", "Maximum end date (with extensions)", "date"),
                f("kpis", "KPIs", "textarea", hint="One key performance indicator per line"),
                f("sme", "Supplier is an SME", "checkbox"),
                f("document", "Contract document (PDF)", "file", attrs={"accept": "application/pdf,.pdf"}),
            ],
            chaos,
        )

    @app.get("/contracts/new", response_class=HTMLResponse)
    def new_contract(request: Request) -> HTMLResponse:
        session = session_for(request)
        return render(
            request, "contract_new.html", {"fields": contract_fields({}, {}), "errors": []}, session=session
        )

    @app.post("/contracts/new")
    async def upload_contract(request: Request) -> Response:
        session = session_for(request)
        form = await checked_form(request, session)
        names = (
            "contract_id",
            "title",
            "supplier_name",
            "supplier_vat",
            "companies_house",
            "buyer_ods",
            "cpv_codes",
            "procedure",
            "value_net",
            "value_gross",
            "start_date",
            "end_date",
            "max_end_date",
            "kpis",
            "kpi_count",
        )
        values = {n: str(form.get(n, "")).strip() for n in names}
        values["sme"] = "on" if form.get("sme") else ""
        upload = form.get("document")
        errors: dict[str, str] = {}
        for n, label in (
            ("contract_id", "a contract ID"),
            ("title", "a contract title"),
            ("supplier_name", "the supplier name"),
            ("buyer_ods", "the buyer ODS code"),
        ):
            if not values[n]:
                errors[n] = f"Enter {label}"
        if values["contract_id"] and not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}", values["contract_id"]
        ):
            errors["contract_id"] = "Contract ID: up to 64 letters, digits, / . - or _"
        vat = values["supplier_vat"].replace(" ", "").upper()
        if vat and not vat_is_valid(vat if vat.startswith("GB") else "GB" + vat):
            errors["supplier_vat"] = f"“{values['supplier_vat']}” is not a valid GB VAT number"
        ch = values["companies_house"].replace(" ", "").upper()
        if ch and not re.fullmatch(r"\d{8}|[A-Z]{2}\d{6}", ch):
            errors["companies_house"] = "Companies House number: 8 digits, or 2 letters and 6 digits"
        if not vat and not ch:
            errors["supplier_vat"] = "Enter the supplier VAT number or Companies House number"
        if values["buyer_ods"] and not re.fullmatch(r"[A-Za-z0-9]{3}|[A-Za-z0-9]{5}", values["buyer_ods"]):
            errors["buyer_ods"] = "Buyer ODS code: 3 or 5 letters and digits, for example RX1"
        cpvs = [c.strip() for c in re.split(r"[,;\s]+", values["cpv_codes"]) if c.strip()]
        if not cpvs:
            errors["cpv_codes"] = "Enter at least one CPV code"
        elif bad := [c for c in cpvs if not re.fullmatch(r"\d{8}(-\d)?", c)]:
            errors["cpv_codes"] = f"Not a CPV code: {', '.join(bad)} (expected 8 digits and a check digit)"
        if values["procedure"] not in {p for p, _ in PROCEDURES}:
            errors["procedure"] = "Choose a procedure"
        amounts = {}
        for n in ("value_net", "value_gross"):
            amount = parse_decimal(values[n].replace("£", "").replace(",", ""))
            if amount is None or amount < 0:
                errors[n] = "Enter an amount in pounds, for example 125000.00"
            else:
                amounts[n] = money(amount)
        if len(amounts) == 2 and amounts["value_gross"] < amounts["value_net"]:
            errors["value_gross"] = "The value including VAT cannot be less than the value excluding VAT"
        dates: dict[str, dt.date] = {}
        for n, label in (
            ("start_date", "start date"),
            ("end_date", "end date"),
            ("max_end_date", "maximum end date"),
        ):
            if not values[n] and n == "max_end_date":
                continue
            try:
                dates[n] = dt.date.fromisoformat(values[n])
            except ValueError:
                errors[n] = f"Enter the {label} as a real date, for example 2026-04-01"
        if "start_date" in dates and "end_date" in dates and dates["end_date"] < dates["start_date"]:
            errors["end_date"] = "The end date must be on or after the start date"
        if "max_end_date" in dates and "end_date" in dates and dates["max_end_date"] < dates["end_date"]:
            errors["max_end_date"] = "The maximum end date must be on or after the end date"
        kpis = [k.strip() for k in values["kpis"].splitlines() if k.strip()]
        if len(kpis) > MAX_KPIS:
            errors["kpis"] = f"List at most {MAX_KPIS} KPIs (there are {len(kpis)})"
        elif long := [n for n, k in enumerate(kpis, 1) if len(k) > MAX_KPI_CHARS]:
            errors["kpis"] = f"KPI {long[0]} is longer than {MAX_KPI_CHARS} characters"
        # The form no longer asks for a count; a scripted client that still sends one
        # is told when it disagrees with the names rather than losing its KPIs silently.
        if values["kpi_count"] and values["kpi_count"] != str(len(kpis)):
            errors["kpis"] = (
                f"Number of KPIs {values['kpi_count']} does not match the {len(kpis)} KPIs listed "
                "(one per line)"
            )
        data = b""
        filename = ""
        if upload is None or not getattr(upload, "filename", ""):
            errors["document"] = "Choose the contract PDF"
        else:
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            filename = Path(str(upload.filename)).name
            if len(data) > MAX_UPLOAD_BYTES:
                errors["document"] = "The file is larger than 10 MB"
            elif not data.startswith(b"%PDF-"):
                errors["document"] = f"“{filename}” is not a PDF file"
        with portal.db() as conn:
            if (
                values["contract_id"]
                and conn.execute(
                    "SELECT 1 FROM contracts WHERE contract_id = ?", (values["contract_id"],)
                ).fetchone()
            ):
                errors["contract_id"] = (
                    f"A contract with ID {values['contract_id']} is already in the register"
                )
            if errors:
                return render(
                    request,
                    "contract_new.html",
                    {"fields": contract_fields(values, errors), "errors": list(errors.items())},
                    status=422,
                    session=session,
                )
            conn.execute(
                f"INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ({CONTRACT_PLACEHOLDERS})",
                (
                    values["contract_id"],
                    values["title"],
                    values["supplier_name"],
                    vat or None,
                    ch or None,
                    values["buyer_ods"].upper(),
                    ",".join(cpvs),
                    values["procedure"],
                    str(amounts["value_net"]),
                    str(amounts["value_gross"]),
                    dates["start_date"].isoformat(),
                    dates["end_date"].isoformat(),
                    dates["max_end_date"].isoformat() if "max_end_date" in dates else None,
                    len(kpis),
                    int(bool(values["sme"])),
                    filename,
                    data,
                    hashlib.sha256(data).hexdigest(),
                    portal.now_iso(),
                    session.username,
                    json.dumps(kpis),
                ),
            )
        return RedirectResponse(
            f"/contracts/{quote(values['contract_id'], safe='')}?uploaded=1", status_code=303
        )

    @app.get("/contracts/{contract_id}/document")
    def contract_document(request: Request, contract_id: str) -> Response:
        session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT filename, document FROM contracts WHERE contract_id = ?", (contract_id,)
            ).fetchone()
        if row is None:
            return Response("no such contract", status_code=404)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["filename"]) or "contract.pdf"
        return Response(
            row["document"],
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{safe}"'},
        )

    @app.get("/contracts/{contract_id}", response_class=HTMLResponse)
    def contract_detail(request: Request, contract_id: str, uploaded: str = "") -> HTMLResponse:
        session = session_for(request)
        with portal.db() as conn:
            row = conn.execute(
                "SELECT *, length(document) AS size FROM contracts WHERE contract_id = ?", (contract_id,)
            ).fetchone()
        if row is None:
            return not_found(request, session, f"There is no contract {contract_id}.")
        procedure = dict(PROCEDURES).get(row["procedure"], row["procedure"])
        return render(
            request,
            "contract_detail.html",
            {"c": row, "procedure": procedure, "kpis": json.loads(row["kpis"]), "uploaded": bool(uploaded)},
            session=session,
        )
