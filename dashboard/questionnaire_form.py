"""The respondent's questionnaire form: `GET/POST /q/{token}`, public, for links in emails.

The token (from `bot.questionnaire_store.answer_link`) is signed with the hub's secret and
names the tenant, the contact and the questionnaire, so the page needs no login and one
link answers for one contact only. Answers walk the same branches as every other channel
(`replay`); a partly valid form is saved as far as it is valid and shown again with the
problem marked. Once completed, the link only thanks the respondent.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from bot.questionnaire import Questionnaire, render_html, render_message_page, replay
from bot.questionnaire_store import (
    load_questionnaire,
    read_answer_token,
    save_session,
    stored_answers,
)
from hub.auth import AuthError
from hub.context import AppContext, get_ctx
from hub.db import Doc

router = APIRouter(include_in_schema=False)
HEADERS = {"Cache-Control": "no-store"}


def _page(title: str, message: str, status: int) -> HTMLResponse:
    return HTMLResponse(render_message_page(title, message), status_code=status, headers=HEADERS)


async def _open(ctx: AppContext, token: str) -> tuple[Questionnaire, Doc, Doc | None] | HTMLResponse:
    """The questionnaire, the contact and its stored answers of a link, or the page to show instead."""
    try:
        grant = read_answer_token(ctx.settings.secret, token)
    except AuthError as exc:
        if "expired" in str(exc):
            return _page("This link has expired", "Thank you for your interest; the survey is closed.", 410)
        return _page("Survey not found", "This link is not valid.", 404)
    contact = await ctx.db.contacts.find_one({"_id": grant.contact_id, "tenant_id": grant.tenant_id})
    questionnaire = await load_questionnaire(ctx, grant.tenant_id, grant.questionnaire_id)
    if contact is None or questionnaire is None:
        return _page("Survey not found", "This link is not valid.", 404)
    stored = await stored_answers(ctx, grant.tenant_id, questionnaire.id, contact["_id"])
    return questionnaire, contact, stored


def _thanks(questionnaire: Questionnaire, stored: Doc, status: int = 200) -> HTMLResponse:
    text = questionnaire.ending_text(stored.get("ending") or "end")
    return _page("Thank you", f"Your answers have been received. {text}", status)


@router.get("/q/{token}")
async def form(token: str, ctx: AppContext = Depends(get_ctx)) -> HTMLResponse:
    opened = await _open(ctx, token)
    if isinstance(opened, HTMLResponse):
        return opened
    questionnaire, _, stored = opened
    if stored and stored.get("completed"):
        return _thanks(questionnaire, stored)
    values = (stored or {}).get("answers") or {}
    return HTMLResponse(render_html(questionnaire, f"/q/{token}", values=values), headers=HEADERS)


@router.post("/q/{token}")
async def submit(token: str, request: Request, ctx: AppContext = Depends(get_ctx)) -> HTMLResponse:
    opened = await _open(ctx, token)
    if isinstance(opened, HTMLResponse):
        return opened
    questionnaire, contact, stored = opened
    if stored and stored.get("completed"):
        return _thanks(questionnaire, stored, status=409)
    submitted = await request.form()
    values: dict[str, Any] = {}
    for question in questionnaire.questions:
        given = [str(v) for v in submitted.getlist(question.key)]
        values[question.key] = given if question.kind == "multiple" else (given[0] if given else "")
    result = replay(questionnaire, values, until_missing=False)
    session = result.session
    saved: Doc = {}
    if session.path:  # keep what is valid, even when a later answer needs fixing
        saved = await save_session(
            ctx, questionnaire=questionnaire, contact=contact, session=session, channel="email"
        )
    if result.errors:
        page = render_html(
            questionnaire,
            f"/q/{token}",
            values=values,
            errors=result.errors,
            notice="Please check the answer marked below.",
        )
        return HTMLResponse(page, status_code=422, headers=HEADERS)
    return _thanks(questionnaire, saved)
