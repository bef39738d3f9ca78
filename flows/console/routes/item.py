"""One item: payload, result, history, evidence, flow run; and a person's actions on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from bots.runtime.ledger import ACTIVE_STATES, WorkItem
from flows.console.auth import Session
from flows.console.flowruns import run_ids
from flows.console.web import checked_form, console, operator, render, signed_in
from flows.console.workqueue import actionable, payload_model

router = APIRouter()

_SCREENSHOT = {".png", ".jpg", ".jpeg"}
_ACTIONS = {"retry", "release", "resolve"}


def _evidence(item: WorkItem) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"screenshots": [], "pages": [], "other": []}
    for evidence in item.evidence:
        suffix = Path(evidence.path).suffix.lower()
        kind = "screenshots" if suffix in _SCREENSHOT else "pages" if suffix in (".html", ".htm") else "other"
        kinds[kind].append(evidence.path)
    return kinds


def _page(
    request: Request, item_id: int, session: Session, *, error: str | None = None, status: int = 200
) -> Response:
    queue = console(request).queue
    try:
        item = queue.item(item_id)
    except LookupError as exc:
        return render(request, "message.html", {"title": "Not found", "message": str(exc)}, status=404,
                      session=session)  # fmt: skip
    history = queue.history(item_id)
    finder = console(request).flow_runs
    runs = run_ids(item, history)
    flow_run_id = next((found for run in runs if (found := finder.find(run))), None)
    return render(
        request,
        "item.html",
        {
            "item": item,
            "payload": json.dumps(item.payload, indent=2, ensure_ascii=False),
            "result": json.dumps(item.result, indent=2, ensure_ascii=False) if item.result else "",
            "history": history,
            "evidence": _evidence(item),
            "run_id": runs[0] if runs else None,
            "flow_run_id": flow_run_id,
            "flow_run_url": finder.link(flow_run_id) if flow_run_id else None,
            "actionable": actionable(item),
            "leased": item.state in ACTIVE_STATES,
            "error": error,
        },
        status=status,
        session=session,
    )


@router.get("/items/{item_id}")
def item_page(request: Request, item_id: int) -> Response:
    return _page(request, item_id, signed_in(request))


@router.post("/items/{item_id}/{action}")
async def act(request: Request, item_id: int, action: str) -> Response:
    session, form = await checked_form(request)
    if action == "replace":
        return _replace(request, item_id, session, form)
    if action not in _ACTIONS:
        return render(request, "message.html", {"title": "Not found", "message": f"no action {action!r}"},
                      status=404, session=session)  # fmt: skip
    reason = form.get("reason", "").strip()
    if not reason:
        return _page(request, item_id, session, error=f"Say why you {action} this item.", status=400)
    queue, person = console(request).queue, operator(session)
    try:
        if action == "retry":
            queue.retry(item_id, person, reason)
        elif action == "release":
            queue.release(item_id, person, reason)
        else:
            queue.resolve(item_id, person, reason)
    except (LookupError, ValueError) as exc:
        return _page(request, item_id, session, error=str(exc), status=409)
    return RedirectResponse(f"/items/{item_id}", status_code=303)


# -- replace data and retry ----------------------------------------------------------


def _fields(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's top-level fields as form controls: scalars as text, the rest as JSON."""
    out = []
    for name, value in payload.items():
        scalar = value is None or isinstance(value, str | int | float | bool)
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        out.append({"name": name, "scalar": scalar, "text": text if scalar else json.dumps(value, indent=2)})
    return out


def _parsed(original: dict[str, Any], form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The form's fields as a payload: JSON where the field holds a structure, text otherwise."""
    payload: dict[str, Any] = {}
    errors = []
    for name, old in original.items():
        text = form.get(f"field.{name}", "")
        structured = old is not None and not isinstance(old, str | int | float | bool)
        # An empty field (None) may be given a structure (a problem, a list) as JSON.
        if structured or (old is None and text.strip()[:1] in ("{", "[")):
            try:
                payload[name] = json.loads(text)
            except ValueError as exc:
                errors.append(f"{name}: not valid JSON ({exc})")
        elif isinstance(old, bool | int | float) and text.strip():
            try:
                payload[name] = json.loads(text)
            except ValueError:
                payload[name] = text  # the model (when known) says what is wrong with it
        else:
            payload[name] = None if (old is None and not text.strip()) else text
    return payload, errors


def _replace_form(
    request: Request, item: WorkItem, session: Session, fields: list[dict[str, Any]], *,
    errors: list[str] | None = None, reason: str = "", status: int = 200,
) -> Response:  # fmt: skip
    model = payload_model(item.bot)
    return render(
        request,
        "replace.html",
        {"item": item, "fields": fields, "errors": errors or [], "reason": reason,
         "model": model.__name__ if model else None},
        status=status,
        session=session,
    )  # fmt: skip


@router.get("/items/{item_id}/replace")
def replace_page(request: Request, item_id: int) -> Response:
    session = signed_in(request)
    item = console(request).queue.item(item_id)
    return _replace_form(request, item, session, _fields(item.payload))


def _replace(request: Request, item_id: int, session: Session, form: dict[str, str]) -> Response:
    queue = console(request).queue
    item = queue.item(item_id)
    payload, errors = _parsed(item.payload, form)
    reason = form.get("reason", "").strip()
    if not reason:
        errors.append("reason: say what you corrected and why")
    if not errors:
        try:
            queue.replace_and_retry(item_id, operator(session), payload, reason)
            return RedirectResponse(f"/items/{item_id}", status_code=303)
        except ValidationError as exc:
            errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        except (LookupError, ValueError) as exc:
            errors = [str(exc)]
    shown = [
        {**field, "text": form.get(f"field.{field['name']}", field["text"])}
        for field in _fields(item.payload)
    ]
    return _replace_form(request, item, session, shown, errors=errors, reason=reason, status=400)
