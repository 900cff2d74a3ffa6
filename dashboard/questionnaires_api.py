"""Questionnaire API: the designer's CRUD, preview and statistics (supervisors and admins), and
the agent's script: the questionnaire of the contact on screen and saving its answers.

Answers are always checked by replaying them through `bot.questionnaire.QuestionnaireSession`,
so the branches an agent follows are the ones a robot call or an SMS conversation follows.
A questionnaire with stored answers is locked: edit a copy (`POST .../copy`, a new version).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException
from pydantic import BaseModel, Field

from bot.questionnaire import (
    Questionnaire,
    QuestionnaireError,
    QuestionnaireSession,
    render_html,
    render_text,
    replay,
    validate_questionnaire,
)
from bot.questionnaire_store import (
    from_doc,
    load_questionnaire,
    questionnaire_doc,
    questionnaire_for_contact,
    questionnaire_stats,
    save_session,
    stored_answers,
)
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow

router = APIRouter(prefix="/api")
SUPERVISOR = require_roles("supervisor", "admin")
AGENT = require_roles("agent", "supervisor", "admin")
# Fields the client may not set: the server owns identity, versions and the lock.
_SERVER_FIELDS = ("id", "_id", "tenant_id", "version", "family_id", "locked", "used_at", "created_at")
SAVE_STATUSES = ("assigned", "wrapup")


def public_questionnaire(doc: Doc) -> dict[str, Any]:
    questionnaire = from_doc(doc)
    return {
        **questionnaire.to_doc(),
        "family_id": doc.get("family_id", questionnaire.id),
        "locked": bool(doc.get("locked")),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
    }


def _parse(body: dict[str, Any], questionnaire_id: str, version: int) -> Questionnaire:
    data = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
    try:
        return validate_questionnaire({**data, "id": questionnaire_id, "version": version})
    except QuestionnaireError as exc:
        raise HTTPException(422, str(exc)) from exc


async def _doc(ctx: AppContext, principal: Principal, questionnaire_id: str) -> Doc:
    doc = await ctx.db.questionnaires.find_one({"_id": questionnaire_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise HTTPException(404, "no such questionnaire")
    return doc


@router.get("/questionnaires")
async def list_questionnaires(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    cursor = ctx.db.questionnaires.find({"tenant_id": principal.tenant_id}).sort(
        [("name", 1), ("version", 1)]
    )
    return [
        {
            "id": d["_id"],
            "name": d["name"],
            "version": d.get("version", 1),
            "family_id": d.get("family_id", d["_id"]),
            "locked": bool(d.get("locked")),
            "questions": len(d.get("questions", [])),
            "updated_at": iso(d.get("updated_at")),
        }
        async for d in cursor.limit(500)
    ]


@router.post("/questionnaires", status_code=201)
async def create_questionnaire(
    body: dict[str, Any] = Body(...), principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    questionnaire_id = new_id()
    questionnaire = _parse(body, questionnaire_id, 1)
    now = utcnow()
    doc = questionnaire_doc(
        questionnaire,
        principal.tenant_id,
        family_id=questionnaire_id,
        locked=False,
        created_at=now,
        created_by=principal.user_id,
        updated_at=now,
        updated_by=principal.user_id,
    )
    await ctx.db.questionnaires.insert_one(doc)
    return public_questionnaire(doc)


@router.get("/questionnaires/{questionnaire_id}")
async def get_questionnaire(
    questionnaire_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return public_questionnaire(await _doc(ctx, principal, questionnaire_id))


@router.put("/questionnaires/{questionnaire_id}")
async def replace_questionnaire(
    questionnaire_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Edit a questionnaire nobody has answered yet (409 once locked: copy it instead)."""
    current = await _doc(ctx, principal, questionnaire_id)
    questionnaire = _parse(body, questionnaire_id, int(current.get("version", 1)))
    changes = questionnaire_doc(
        questionnaire, principal.tenant_id, updated_at=utcnow(), updated_by=principal.user_id
    )
    changes.pop("_id")
    result = await ctx.db.questionnaires.update_one(
        {"_id": questionnaire_id, "tenant_id": principal.tenant_id, "locked": {"$ne": True}},
        {"$set": changes},
    )
    if result.matched_count == 0:
        raise HTTPException(409, "this questionnaire already has answers; copy it to make a new version")
    return public_questionnaire(await _doc(ctx, principal, questionnaire_id))


@router.delete("/questionnaires/{questionnaire_id}", status_code=204)
async def delete_questionnaire(
    questionnaire_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> None:
    await _doc(ctx, principal, questionnaire_id)
    in_use = await ctx.db.campaigns.find_one(
        {"tenant_id": principal.tenant_id, "questionnaire_id": questionnaire_id}, {"name": 1}
    )
    if in_use is not None:
        raise HTTPException(409, f"campaign {in_use.get('name', in_use['_id'])!r} uses this questionnaire")
    result = await ctx.db.questionnaires.delete_one(
        {"_id": questionnaire_id, "tenant_id": principal.tenant_id, "locked": {"$ne": True}}
    )
    if result.deleted_count == 0:
        raise HTTPException(409, "this questionnaire has answers and is kept with them")


@router.post("/questionnaires/{questionnaire_id}/copy", status_code=201)
async def copy_questionnaire(
    questionnaire_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """A new, unlocked version in the same family (the way to change a locked questionnaire)."""
    source = await _doc(ctx, principal, questionnaire_id)
    family_id = source.get("family_id", questionnaire_id)
    latest = await ctx.db.questionnaires.find_one(
        {"tenant_id": principal.tenant_id, "family_id": family_id}, sort=[("version", -1)]
    )
    version = int((latest or source).get("version", 1)) + 1
    copy_id = new_id()
    questionnaire = from_doc(source).model_copy(update={"id": copy_id, "version": version})
    now = utcnow()
    doc = questionnaire_doc(
        questionnaire,
        principal.tenant_id,
        family_id=family_id,
        locked=False,
        created_at=now,
        created_by=principal.user_id,
        updated_at=now,
        updated_by=principal.user_id,
    )
    await ctx.db.questionnaires.insert_one(doc)
    return public_questionnaire(doc)


class PreviewRequest(BaseModel):
    questionnaire: dict[str, Any]
    inputs: list[str] = Field(default_factory=list, max_length=200)
    channel: Literal["text", "voice"] = "text"


@router.post("/questionnaires/preview")
async def preview(body: PreviewRequest, principal: Principal = SUPERVISOR) -> dict[str, Any]:
    """The designer's preview of an unsaved questionnaire: problems, or the text and form
    renderings and a conversation with `inputs` typed (text) or keyed / said (voice)."""
    data = {k: v for k, v in body.questionnaire.items() if k not in _SERVER_FIELDS}
    try:
        questionnaire = validate_questionnaire({**data, "id": "preview"})
    except QuestionnaireError as exc:
        return {"valid": False, "problems": str(exc).split("; ")}
    session = QuestionnaireSession(questionnaire)
    say = (lambda p: p.as_voice()) if body.channel == "voice" else (lambda p: p.as_text())
    transcript = [{"from": "questionnaire", "text": say(session.start())}]
    for raw in body.inputs:
        if session.done:
            break
        transcript.append({"from": "respondent", "text": raw})
        step = session.answer(raw)
        if step.error:
            transcript.append({"from": "questionnaire", "text": step.error, "error": True})
        if step.prompt is not None:
            transcript.append({"from": "questionnaire", "text": say(step.prompt)})
        elif step.done:
            transcript.append({"from": "questionnaire", "text": step.end_text or ""})
    return {
        "valid": True,
        "problems": [],
        "text": render_text(questionnaire),
        "html": render_html(questionnaire, "#"),
        "transcript": transcript,
        "state": session.state(),
    }


@router.get("/questionnaires/{questionnaire_id}/stats")
async def stats(
    questionnaire_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    questionnaire = from_doc(await _doc(ctx, principal, questionnaire_id))
    return await questionnaire_stats(ctx, principal.tenant_id, questionnaire)


# --------------------------------------------------------------------------- the agent's script


async def _contact(ctx: AppContext, principal: Principal, contact_id: str) -> Doc:
    contact = await ctx.db.contacts.find_one({"_id": contact_id, "tenant_id": principal.tenant_id})
    if contact is None:
        raise HTTPException(404, "no such contact")
    return contact


def _holds(contact: Doc, principal: Principal) -> bool:
    return bool(contact.get("agent_id") == principal.user_id and contact.get("status") in SAVE_STATUSES)


@router.get("/contacts/{contact_id}/script")
async def script(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """The questionnaire of the contact (its own, else its campaign's) with the answers so far
    and the question to ask now; `questionnaire` is null when there is none."""
    contact = await _contact(ctx, principal, contact_id)
    holder = contact.get("agent_id") == principal.user_id
    if not holder and not principal.has_any("supervisor", "admin"):
        raise HTTPException(403, "this contact is not yours")
    questionnaire = await questionnaire_for_contact(ctx, contact)
    if questionnaire is None:
        return {"contact_id": contact_id, "questionnaire": None, "state": None, "editable": False}
    stored = await stored_answers(ctx, principal.tenant_id, questionnaire.id, contact_id)
    session = replay(questionnaire, (stored or {}).get("answers") or {}).session
    return {
        "contact_id": contact_id,
        "questionnaire": questionnaire.to_doc(),
        "state": session.state(),
        "editable": _holds(contact, principal),
    }


class AnswersRequest(BaseModel):
    questionnaire_id: str = Field(min_length=1, max_length=64)
    answers: dict[str, Any] = Field(default_factory=dict, max_length=100)


@router.post("/contacts/{contact_id}/answers")
async def save_answers(
    contact_id: str, body: AnswersRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Store the answers given so far (all of them each time) by the agent holding the contact;
    returns the next question or the end, as the branches decide."""
    contact = await _contact(ctx, principal, contact_id)
    if contact.get("agent_id") != principal.user_id:
        raise HTTPException(403, "only the agent holding this contact can record its answers")
    if contact.get("status") not in SAVE_STATUSES:
        raise HTTPException(409, "this contact is closed; its answers can no longer change")
    questionnaire = await load_questionnaire(ctx, principal.tenant_id, body.questionnaire_id)
    if questionnaire is None:
        raise HTTPException(404, "no such questionnaire")
    result = replay(questionnaire, body.answers)
    if result.errors:
        raise HTTPException(422, "; ".join(f"{key}: {message}" for key, message in result.errors.items()))
    if result.off_path:
        raise HTTPException(
            422, f"answers to questions the branches do not ask: {', '.join(sorted(result.off_path))}"
        )
    saved = await save_session(
        ctx,
        questionnaire=questionnaire,
        contact=contact,
        session=result.session,
        channel="agent",
        by=principal.user_id,
    )
    return {"questionnaire_id": questionnaire.id, "completed": saved["completed"], **result.session.state()}
