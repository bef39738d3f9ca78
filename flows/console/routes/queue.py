"""The queues: every bot's items by state and reason code, and one bot's items filtered."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bots.runtime.ledger import ItemState
from flows.console.web import console, render, signed_in

router = APIRouter()

#: States people act on, shown first and highlighted.
ATTENTION = ("business_exception", "failed", "needs_review")


@router.get("/")
def overview(request: Request) -> Response:
    session = signed_in(request)
    rows = console(request).queue.summary()
    bots: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ItemState, 0))
    reasons = [r for r in rows if r.state in ATTENTION]
    for row in rows:
        bots[row.bot][ItemState(row.state)] += row.count
    return render(
        request,
        "overview.html",
        {"bots": dict(bots), "states": list(ItemState), "reasons": reasons, "attention": ATTENTION},
        session=session,
    )


@router.get("/bots/{bot}")
def bot_queue(request: Request, bot: str, state: str = "", reason: str = "") -> Response:
    session = signed_in(request)
    if state and state not in {s.value for s in ItemState}:
        state = ""
    queue = console(request).queue
    summary = queue.summary(bot)
    items = queue.items(bot, state=state or None, reason_code=reason or None)
    return render(
        request,
        "bot.html",
        {"bot": bot, "summary": summary, "items": items, "state": state, "reason": reason},
        session=session,
    )
