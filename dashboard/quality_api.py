"""Quality inspection API (`/api/quality`): scorecards, evaluations of contacts, the queue of
contacts to score, re-contact requests and reports.

Collections:

- `scorecards`: one document per version {_id, tenant_id, family_id, version, name,
  description, sections, status: active | superseded | archived, used, superseded_by, ...}.
  Editing a version that has been used for an evaluation inserts the next version of the
  family and marks the old one superseded; an unused one is edited in place. Deleting
  a family that was never used removes it; otherwise its current version is archived.
  `used` is set atomically by the first evaluation (which scores against the document as
  it was at that moment), and in-place edits require `used` unset, so an evaluation's
  version never changes under it.
- `evaluations`: {_id, tenant_id, contact_id, channel, queue_id, customer_id, recording_id,
  agent_id, agent_name, scorecard_id (the version), scorecard_family_id, scorecard_version,
  scorecard_name, answers, comments, item_comments, recontact {requested, note, task_id},
  total_pct, raw_pct, auto_failed, failed_critical, by_item, items [{key, pct, na}],
  auto_fail_n, recontact_n, evaluator_id, evaluator_name, created_at, updated_at,
  revision, history [earlier states], acknowledgement {at, comment, dispute} | None}.
  `items`, `auto_fail_n` and `recontact_n` are there for the report's aggregation.

A re-contact request creates a task (kind "recontact") for the evaluated agent in `tasks`
and publishes it on `user:<agent_id>`.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from pymongo.errors import DuplicateKeyError

from dashboard.quality import Scorecard, ScoreError, score
from dashboard.tasks_api import public_task
from hub.auth import Principal, require_roles
from hub.contacts import messages_after, public_contact, public_message
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow

router = APIRouter(prefix="/api/quality")
SUPERVISOR = require_roles("supervisor", "admin")
STAFF = require_roles("agent", "supervisor", "admin")
GROUPS = {"agent": "agent_id", "queue": "queue_id", "scorecard": "scorecard_family_id"}
REPORT_DAYS_MAX = 400


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"] for e in exc.errors()
    )


def _is_supervisor(principal: Principal) -> bool:
    return principal.has_any("supervisor", "admin")


def _when(value: str | None, name: str, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date-time (naive = UTC); a bare date as `until` means the end of that day."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(422, f"{name}: not an ISO date or date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------ scorecards


def _scorecard(body: dict[str, Any]) -> Scorecard:
    try:
        return Scorecard.model_validate(body)
    except ValidationError as exc:
        raise HTTPException(422, _problems(exc)) from exc


def public_scorecard(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "family_id": doc["family_id"],
        "version": doc["version"],
        "name": doc["name"],
        "description": doc.get("description", ""),
        "sections": doc["sections"],
        "status": doc["status"],
        "used": bool(doc.get("used")),
        "supersedes": doc.get("supersedes"),
        "superseded_by": doc.get("superseded_by"),
        "created_at": iso(doc.get("created_at")),
        "created_by": doc.get("created_by"),
        "updated_at": iso(doc.get("updated_at")),
    }


def _content(card: Scorecard) -> Doc:
    data = card.model_dump(mode="json")
    return {"name": data["name"], "description": data["description"], "sections": data["sections"]}


async def _get_scorecard(ctx: AppContext, tenant_id: str, scorecard_id: str) -> Doc:
    doc = await ctx.db.scorecards.find_one({"_id": scorecard_id, "tenant_id": tenant_id})
    if doc is None:
        raise HTTPException(404, "no such scorecard")
    return doc


@router.get("/scorecards")
async def list_scorecards(
    include_archived: bool = False,
    all_versions: bool = False,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Current versions (active; archived too on request; every version with `all_versions`)."""
    query: Doc = {"tenant_id": principal.tenant_id}
    if not all_versions:
        query["status"] = {"$in": ["active", "archived"]} if include_archived else "active"
    cursor = ctx.db.scorecards.find(query).sort([("name", 1), ("version", 1)])
    return [public_scorecard(doc) async for doc in cursor.limit(1000)]


@router.post("/scorecards", status_code=201)
async def create_scorecard(
    body: dict[str, Any] = Body(...), principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    card = _scorecard(body)
    now = utcnow()
    scorecard_id = new_id()
    doc: Doc = {
        "_id": scorecard_id,
        "tenant_id": principal.tenant_id,
        "family_id": scorecard_id,
        "version": 1,
        **_content(card),
        "status": "active",
        "used": False,
        "supersedes": None,
        "superseded_by": None,
        "created_at": now,
        "created_by": principal.user_id,
        "updated_at": now,
    }
    await ctx.db.scorecards.insert_one(doc)
    return public_scorecard(doc)


@router.get("/scorecards/{scorecard_id}")
async def get_scorecard(
    scorecard_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """One version, with the list of all versions of its family."""
    doc = await _get_scorecard(ctx, principal.tenant_id, scorecard_id)
    versions = ctx.db.scorecards.find(
        {"tenant_id": principal.tenant_id, "family_id": doc["family_id"]},
        {"version": 1, "status": 1, "created_at": 1, "used": 1},
    ).sort("version", 1)
    out = public_scorecard(doc)
    out["versions"] = [
        {"id": v["_id"], "version": v["version"], "status": v["status"], "used": bool(v.get("used"))}
        async for v in versions
    ]
    return out


@router.put("/scorecards/{scorecard_id}")
async def update_scorecard(
    scorecard_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Edit in place while unused; once used, a new version (the answer's `id` is the new one)."""
    card = _scorecard(body)
    content = _content(card)
    for _ in range(3):
        doc = await _get_scorecard(ctx, principal.tenant_id, scorecard_id)
        if doc["status"] == "superseded":
            raise HTTPException(
                409, f"version {doc['version']} was revised; edit the current one ({doc['superseded_by']})"
            )
        if doc["status"] == "archived":
            raise HTTPException(409, "this scorecard is archived")
        now = utcnow()
        if not doc.get("used"):
            result = await ctx.db.scorecards.update_one(
                {"_id": scorecard_id, "status": "active", "used": {"$ne": True}},
                {"$set": {**content, "updated_at": now}},
            )
            if result.matched_count:
                return public_scorecard({**doc, **content, "updated_at": now})
            continue  # an evaluation used it meanwhile: make a version
        new_id_ = new_id()
        result = await ctx.db.scorecards.update_one(
            {"_id": scorecard_id, "status": "active"},
            {"$set": {"status": "superseded", "superseded_by": new_id_, "updated_at": now}},
        )
        if not result.matched_count:
            continue
        version: Doc = {
            "_id": new_id_,
            "tenant_id": principal.tenant_id,
            "family_id": doc["family_id"],
            "version": doc["version"] + 1,
            **content,
            "status": "active",
            "used": False,
            "supersedes": scorecard_id,
            "superseded_by": None,
            "created_at": now,
            "created_by": principal.user_id,
            "updated_at": now,
        }
        await ctx.db.scorecards.insert_one(version)
        return public_scorecard(version)
    raise HTTPException(409, "the scorecard changed meanwhile; reload and retry")


@router.delete("/scorecards/{scorecard_id}")
async def delete_scorecard(
    scorecard_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Delete a never-used scorecard (all its versions); archive one that has evaluations."""
    doc = await _get_scorecard(ctx, principal.tenant_id, scorecard_id)
    family = {"tenant_id": principal.tenant_id, "family_id": doc["family_id"]}
    used = await ctx.db.scorecards.find_one({**family, "used": True}, {"_id": 1})
    if used is None:
        # a delete only if still unused: an evaluation marks `used` before scoring
        result = await ctx.db.scorecards.delete_many({**family, "used": {"$ne": True}})
        if result.deleted_count and not await ctx.db.scorecards.find_one(family, {"_id": 1}):
            return {"id": scorecard_id, "status": "deleted"}
    await ctx.db.scorecards.update_many(
        {**family, "status": "active"}, {"$set": {"status": "archived", "updated_at": utcnow()}}
    )
    return {"id": scorecard_id, "status": "archived"}


# ------------------------------------------------------------------ evaluations


class Recontact(BaseModel):
    requested: bool = False
    note: str = Field(default="", max_length=2000)


class EvaluationIn(BaseModel):
    contact_id: str = Field(min_length=1, max_length=64)
    recording_id: str | None = Field(default=None, max_length=64)
    scorecard_id: str = Field(min_length=1, max_length=64)
    answers: dict[str, Any] = Field(max_length=60)
    comments: str = Field(default="", max_length=5000)
    item_comments: dict[str, str] = Field(default_factory=dict, max_length=60)
    recontact: Recontact = Field(default_factory=Recontact)


class EvaluationUpdate(BaseModel):
    answers: dict[str, Any] = Field(max_length=60)
    comments: str = Field(default="", max_length=5000)
    item_comments: dict[str, str] = Field(default_factory=dict, max_length=60)
    recontact: Recontact | None = None


class Acknowledgement(BaseModel):
    comment: str = Field(default="", max_length=2000)
    dispute: bool = False


def _item_comments(card: Scorecard, comments: dict[str, str]) -> dict[str, str]:
    unknown = sorted(k for k in comments if card.item(k) is None)
    if unknown:
        raise HTTPException(422, f"item_comments: no such item on this scorecard: {', '.join(unknown)}")
    bad = sorted(k for k, text in comments.items() if len(text) > 2000)
    if bad:
        raise HTTPException(422, f"item_comments: at most 2000 characters ({', '.join(bad)})")
    return {k: text.strip() for k, text in comments.items() if text.strip()}


def _scored(card: Scorecard, answers: dict[str, Any]) -> Doc:
    """The score fields stored on an evaluation (422 when the answers do not fit)."""
    try:
        result = score(card, answers)
    except ScoreError as exc:
        raise HTTPException(422, f"answers: {exc}") from exc
    by_item = result["by_item"]
    return {
        "answers": {key: item["value"] for key, item in by_item.items()},
        "total_pct": result["total_pct"],
        "raw_pct": result["raw_pct"],
        "auto_failed": result["auto_failed"],
        "failed_critical": result["failed_critical"],
        "by_item": by_item,
        "items": [{"key": key, "pct": item["pct"], "na": item["na"]} for key, item in by_item.items()],
        "auto_fail_n": int(result["auto_failed"]),
    }


def public_evaluation(doc: Doc) -> dict[str, Any]:
    ack = doc.get("acknowledgement")
    return {
        "id": doc["_id"],
        "contact_id": doc["contact_id"],
        "channel": doc.get("channel"),
        "queue_id": doc.get("queue_id"),
        "customer_id": doc.get("customer_id"),
        "recording_id": doc.get("recording_id"),
        "agent_id": doc["agent_id"],
        "agent_name": doc.get("agent_name"),
        "scorecard_id": doc["scorecard_id"],
        "scorecard_family_id": doc["scorecard_family_id"],
        "scorecard_version": doc["scorecard_version"],
        "scorecard_name": doc.get("scorecard_name"),
        "answers": doc["answers"],
        "by_item": doc["by_item"],
        "total_pct": doc["total_pct"],
        "raw_pct": doc["raw_pct"],
        "auto_failed": doc["auto_failed"],
        "failed_critical": doc.get("failed_critical", []),
        "comments": doc.get("comments", ""),
        "item_comments": doc.get("item_comments", {}),
        "recontact": doc.get("recontact") or {"requested": False, "note": "", "task_id": None},
        "evaluator_id": doc["evaluator_id"],
        "evaluator_name": doc.get("evaluator_name"),
        "contact_opened_at": iso(doc.get("contact_opened_at")),
        "contact_closed_at": iso(doc.get("contact_closed_at")),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
        "revision": doc.get("revision", 1),
        "history": [
            {**h, "at": iso(h.get("at")), "updated_at": iso(h.get("updated_at"))}
            for h in doc.get("history", [])
        ],
        "acknowledgement": None
        if not ack
        else {
            "at": iso(ack.get("at")),
            "comment": ack.get("comment", ""),
            "dispute": bool(ack.get("dispute")),
        },
    }


async def _contact_reachability(ctx: AppContext, contact: Doc) -> tuple[str | None, str | None]:
    """A phone number and an email for a re-contact: the contact's own, else the customer's."""
    phone = contact.get("from_number") or contact.get("phone")
    email = contact.get("email") or contact.get("from_email")
    if (not phone or not email) and contact.get("customer_id"):
        customer = await ctx.db.customers.find_one(
            {"_id": contact["customer_id"], "tenant_id": contact["tenant_id"]}, {"phones": 1, "emails": 1}
        )
        if customer is not None:
            phone = phone or (customer.get("phones") or [None])[0]
            email = email or (customer.get("emails") or [None])[0]
    return phone, email


async def _recontact_task(
    ctx: AppContext, evaluation: Doc, contact: Doc, note: str, principal: Principal
) -> Doc:
    phone, email = await _contact_reachability(ctx, contact)
    task: Doc = {
        "_id": evaluation["recontact"]["task_id"],
        "tenant_id": evaluation["tenant_id"],
        "kind": "recontact",
        "contact_id": contact["_id"],
        "customer_id": contact.get("customer_id"),
        "phone": phone,
        "email": email,
        "agent_id": evaluation["agent_id"],
        "note": note,
        "evaluation_id": evaluation["_id"],
        "audio_id": None,
        "status": "open",
        "created_at": utcnow(),
        "created_by": principal.user_id,
    }
    try:
        await ctx.db.tasks.insert_one(task)
    except DuplicateKeyError:  # a retried request: the task is there already
        return task
    ctx.bus.publish(f"user:{evaluation['agent_id']}", {"type": "task", "task": public_task(task)})
    return task


async def _use_scorecard(ctx: AppContext, tenant_id: str, scorecard_id: str) -> Doc:
    """The active version, marked used atomically (so it is no longer edited in place)."""
    doc = await ctx.db.scorecards.find_one_and_update(
        {"_id": scorecard_id, "tenant_id": tenant_id, "status": "active"},
        {"$set": {"used": True}},
        return_document=True,
    )
    if doc is not None:
        return doc
    existing = await _get_scorecard(ctx, tenant_id, scorecard_id)
    if existing["status"] == "superseded":
        raise HTTPException(409, f"this scorecard was revised; score with {existing['superseded_by']}")
    raise HTTPException(409, "this scorecard is archived")


def _card_of(doc: Doc) -> Scorecard:
    return Scorecard.model_validate(
        {"name": doc["name"], "description": doc.get("description", ""), "sections": doc["sections"]}
    )


@router.post("/evaluations", status_code=201)
async def create_evaluation(
    body: EvaluationIn, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    contact = await ctx.db.contacts.find_one({"_id": body.contact_id, "tenant_id": principal.tenant_id})
    if contact is None:
        raise HTTPException(404, "no such contact")
    if not contact.get("agent_id"):
        raise HTTPException(422, "this contact was not handled by an agent")
    if contact["agent_id"] == principal.user_id:
        raise HTTPException(403, "you cannot score your own contact")
    if body.recording_id is not None:
        recording = await ctx.db.recordings.find_one(
            {"_id": body.recording_id, "tenant_id": principal.tenant_id, "contact_id": contact["_id"]},
            {"_id": 1},
        )
        if recording is None and body.recording_id not in (contact.get("recording_ids") or []):
            raise HTTPException(422, "recording_id: no such recording of this contact")
    # validate the answers against the current content before marking the scorecard used
    card = _card_of(await _get_scorecard(ctx, principal.tenant_id, body.scorecard_id))
    _scored(card, body.answers)
    _item_comments(card, body.item_comments)
    scorecard = await _use_scorecard(ctx, principal.tenant_id, body.scorecard_id)
    card = _card_of(scorecard)  # what it is now that it can no longer change
    scored = _scored(card, body.answers)
    now = utcnow()
    evaluation: Doc = {
        "_id": new_id(),
        "tenant_id": principal.tenant_id,
        "contact_id": contact["_id"],
        "channel": contact.get("channel"),
        "queue_id": contact.get("queue_id"),
        "customer_id": contact.get("customer_id"),
        "recording_id": body.recording_id,
        "agent_id": contact["agent_id"],
        "agent_name": contact.get("agent_name"),
        "contact_opened_at": contact.get("opened_at"),
        "contact_closed_at": contact.get("closed_at"),
        "scorecard_id": scorecard["_id"],
        "scorecard_family_id": scorecard["family_id"],
        "scorecard_version": scorecard["version"],
        "scorecard_name": scorecard["name"],
        **scored,
        "comments": body.comments.strip(),
        "item_comments": _item_comments(card, body.item_comments),
        "recontact": {
            "requested": body.recontact.requested,
            "note": body.recontact.note.strip(),
            "task_id": new_id() if body.recontact.requested else None,
        },
        "recontact_n": int(body.recontact.requested),
        "evaluator_id": principal.user_id,
        "evaluator_name": principal.name,
        "created_at": now,
        "updated_at": now,
        "revision": 1,
        "history": [],
        "acknowledgement": None,
    }
    await ctx.db.evaluations.insert_one(evaluation)
    if body.recontact.requested:
        await _recontact_task(ctx, evaluation, contact, evaluation["recontact"]["note"], principal)
    ctx.bus.publish(
        f"user:{evaluation['agent_id']}",
        {"type": "evaluation", "evaluation": {"id": evaluation["_id"], "total_pct": evaluation["total_pct"]}},
    )
    return public_evaluation(evaluation)


@router.get("/evaluations")
async def list_evaluations(
    agent_id: str | None = None,
    scorecard_id: str | None = None,
    contact_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = Query(200, ge=1, le=500),
    principal: Principal = STAFF,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Newest first. Supervisors and admins see the tenant's; agents only their own.

    `scorecard_id` matches every version of that scorecard's family.
    """
    query: Doc = {"tenant_id": principal.tenant_id}
    if not _is_supervisor(principal):
        if agent_id is not None and agent_id != principal.user_id:
            raise HTTPException(403, "agents see only their own evaluations")
        agent_id = principal.user_id
    if agent_id is not None:
        query["agent_id"] = agent_id
    if contact_id is not None:
        query["contact_id"] = contact_id
    if scorecard_id is not None:
        card = await ctx.db.scorecards.find_one(
            {"_id": scorecard_id, "tenant_id": principal.tenant_id}, {"family_id": 1}
        )
        query["scorecard_family_id"] = card["family_id"] if card else scorecard_id
    start, end = _when(since, "since"), _when(until, "until", end_of_day=True)
    if start or end:
        query["created_at"] = {**({"$gte": start} if start else {}), **({"$lt": end} if end else {})}
    cursor = ctx.db.evaluations.find(query).sort("created_at", -1).limit(limit)
    return [public_evaluation(doc) async for doc in cursor]


async def _visible_evaluation(ctx: AppContext, evaluation_id: str, principal: Principal) -> Doc:
    doc = await ctx.db.evaluations.find_one({"_id": evaluation_id, "tenant_id": principal.tenant_id})
    if doc is None or not (_is_supervisor(principal) or doc["agent_id"] == principal.user_id):
        raise HTTPException(404, "no such evaluation")
    return doc


@router.get("/evaluations/{evaluation_id}")
async def get_evaluation(
    evaluation_id: str, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """One evaluation with the scorecard version it was scored on."""
    doc = await _visible_evaluation(ctx, evaluation_id, principal)
    out = public_evaluation(doc)
    card = await ctx.db.scorecards.find_one({"_id": doc["scorecard_id"], "tenant_id": principal.tenant_id})
    out["scorecard"] = public_scorecard(card) if card else None
    return out


@router.put("/evaluations/{evaluation_id}")
async def amend_evaluation(
    evaluation_id: str,
    body: EvaluationUpdate,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The evaluator or an admin amends it; the earlier state goes to `history` and an
    acknowledgement is cleared (the agent acknowledges the amended evaluation again)."""
    doc = await _visible_evaluation(ctx, evaluation_id, principal)
    if doc["evaluator_id"] != principal.user_id and not principal.has_any("admin"):
        raise HTTPException(403, "only the evaluator or an admin can amend an evaluation")
    scorecard = await _get_scorecard(ctx, principal.tenant_id, doc["scorecard_id"])
    card = _card_of(scorecard)  # the version it was scored on, even if revised since
    scored = _scored(card, body.answers)
    recontact = dict(doc.get("recontact") or {"requested": False, "note": "", "task_id": None})
    new_task = False
    if body.recontact is not None:
        if body.recontact.requested and not recontact.get("task_id"):
            recontact = {"requested": True, "note": body.recontact.note.strip(), "task_id": new_id()}
            new_task = True
        elif recontact.get("task_id"):
            recontact["note"] = body.recontact.note.strip() or recontact.get("note", "")
    now = utcnow()
    previous = {
        "at": now,
        "by_id": principal.user_id,
        "by_name": principal.name,
        "revision": doc.get("revision", 1),
        "answers": doc["answers"],
        "total_pct": doc["total_pct"],
        "auto_failed": doc["auto_failed"],
        "comments": doc.get("comments", ""),
        "item_comments": doc.get("item_comments", {}),
        "recontact": doc.get("recontact"),
        "acknowledgement": doc.get("acknowledgement"),
        "updated_at": doc.get("updated_at"),
    }
    changes: Doc = {
        **scored,
        "comments": body.comments.strip(),
        "item_comments": _item_comments(card, body.item_comments),
        "recontact": recontact,
        "recontact_n": int(bool(recontact.get("requested"))),
        "acknowledgement": None,
        "updated_at": now,
        "amended_by": principal.user_id,
    }
    result = await ctx.db.evaluations.update_one(
        {"_id": evaluation_id, "tenant_id": principal.tenant_id, "revision": doc.get("revision", 1)},
        {"$set": changes, "$inc": {"revision": 1}, "$push": {"history": previous}},
    )
    if result.matched_count == 0:
        raise HTTPException(409, "the evaluation changed meanwhile; reload and retry")
    updated = {
        **doc,
        **changes,
        "revision": doc.get("revision", 1) + 1,
        "history": [*doc.get("history", []), previous],
    }
    if new_task:
        contact = await ctx.db.contacts.find_one({"_id": doc["contact_id"], "tenant_id": principal.tenant_id})
        await _recontact_task(
            ctx, updated, contact or {"_id": doc["contact_id"]}, recontact["note"], principal
        )
    return public_evaluation(updated)


@router.post("/evaluations/{evaluation_id}/acknowledge")
async def acknowledge(
    evaluation_id: str,
    body: Acknowledgement | None = None,
    principal: Principal = STAFF,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The evaluated agent confirms they have read it, with a comment; `dispute` flags disagreement."""
    body = body or Acknowledgement()
    doc = await _visible_evaluation(ctx, evaluation_id, principal)
    if doc["agent_id"] != principal.user_id:
        raise HTTPException(403, "only the evaluated agent can acknowledge an evaluation")
    ack = {"at": utcnow(), "comment": body.comment.strip(), "dispute": body.dispute}
    result = await ctx.db.evaluations.update_one(
        {"_id": evaluation_id, "agent_id": principal.user_id, "revision": doc.get("revision", 1)},
        {"$set": {"acknowledgement": ack}},
    )
    if result.matched_count == 0:
        raise HTTPException(409, "the evaluation was amended meanwhile; reload it")
    ctx.bus.publish(
        f"user:{doc['evaluator_id']}",
        {"type": "evaluation_acknowledged", "evaluation_id": evaluation_id, "dispute": body.dispute},
    )
    return public_evaluation({**doc, "acknowledgement": ack})


# ------------------------------------------------------------------ contacts to score


def _queue_entry(contact: Doc) -> dict[str, Any]:
    return {
        **public_contact(contact),
        "queue_id": contact.get("queue_id"),
        "recording_ids": list(contact.get("recording_ids") or []),
        "from_number": contact.get("from_number"),
    }


QUEUE_FIELDS = {
    field: 1
    for field in (
        "channel status skill reason intent customer_id agent_id agent_name opened_at closed_at "
        "disposition note queue_id recording_ids from_number tenant_id"
    ).split()
}


@router.get("/queue")
async def scoring_queue(
    channel: str | None = None,
    agent_id: str | None = None,
    days: int = Query(7, ge=1, le=365),
    sample: int | None = Query(None, ge=1, le=100),
    limit: int = Query(100, ge=1, le=100),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Closed contacts handled by an agent in the last `days` and not evaluated yet, newest
    first; `sample=N` picks N of them at random (still listed newest first)."""
    query: Doc = {
        "tenant_id": principal.tenant_id,
        "status": "closed",
        "closed_at": {"$gte": utcnow() - timedelta(days=days)},
        "agent_id": {"$ne": None},
    }
    if channel:
        query["channel"] = channel
    if agent_id:
        query["agent_id"] = agent_id
    wanted = 2000 if sample else limit  # the pool to sample from
    found: list[Doc] = []
    cursor = ctx.db.contacts.find(query, QUEUE_FIELDS).sort("closed_at", -1).limit(10_000)
    batch: list[Doc] = []

    async def flush() -> None:
        ids = [c["_id"] for c in batch]
        scored = await ctx.db.evaluations.distinct(
            "contact_id", {"tenant_id": principal.tenant_id, "contact_id": {"$in": ids}}
        )
        done = set(scored)
        found.extend(c for c in batch if c["_id"] not in done)
        batch.clear()

    async for contact in cursor:
        batch.append(contact)
        if len(batch) >= 200:
            await flush()
            if len(found) >= wanted:
                break
    if batch and len(found) < wanted:
        await flush()
    if sample:
        found = random.sample(found, min(sample, len(found)))
        found.sort(key=lambda c: c.get("closed_at") or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [_queue_entry(c) for c in found[: sample or limit]]


@router.get("/contacts/{contact_id}")
async def contact_for_scoring(
    contact_id: str, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """The contact, its transcript, its recordings and its evaluations (an agent: their own)."""
    contact = await ctx.db.contacts.find_one({"_id": contact_id, "tenant_id": principal.tenant_id})
    if contact is None or not (_is_supervisor(principal) or contact.get("agent_id") == principal.user_id):
        raise HTTPException(404, "no such contact")
    recordings = ctx.db.recordings.find(
        {"tenant_id": principal.tenant_id, "contact_id": contact_id, "deleted_at": None},
        {"started_at": 1, "ended_at": 1, "duration_s": 1, "channels": 1, "agent_names": 1},
    ).sort("started_at", 1)
    evaluations: Doc = {"tenant_id": principal.tenant_id, "contact_id": contact_id}
    if not _is_supervisor(principal):
        evaluations["agent_id"] = principal.user_id
    return {
        "contact": _queue_entry(contact),
        "messages": [public_message(m) for m in await messages_after(ctx, contact_id)],
        "recordings": [
            {
                "id": r["_id"],
                "started_at": iso(r.get("started_at")),
                "duration_s": r.get("duration_s"),
                "channels": r.get("channels", []),
                "agent_names": r.get("agent_names", []),
                "audio_url": f"/api/recordings/{r['_id']}/audio",
            }
            async for r in recordings
        ],
        "evaluations": [
            public_evaluation(e)
            async for e in ctx.db.evaluations.find(evaluations).sort("created_at", -1).limit(50)
        ],
    }


# ------------------------------------------------------------------ report


def _avg(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def build_report(
    ctx: AppContext,
    tenant_id: str,
    since: datetime,
    until: datetime,
    group: str,
    agent_id: str | None = None,
) -> dict[str, Any]:
    """Per group: evaluations, average total, auto-fails, re-contacts and per-item averages
    (N/A answers excluded), by aggregation on (tenant_id[, agent_id], created_at)."""
    field = GROUPS[group]
    match: Doc = {"tenant_id": tenant_id}
    if agent_id:
        match["agent_id"] = agent_id
    match["created_at"] = {"$gte": since, "$lt": until}
    totals_group: Doc = {
        "count": {"$sum": 1},
        "avg_total_pct": {"$avg": "$total_pct"},
        "auto_fail_count": {"$sum": "$auto_fail_n"},
        "recontact_count": {"$sum": "$recontact_n"},
    }
    by_group = await (
        await ctx.db.evaluations.aggregate(
            [
                {"$match": match},
                {"$sort": {"created_at": 1}},
                {
                    "$group": {
                        "_id": f"${field}",
                        **totals_group,
                        "agent_name": {"$last": "$agent_name"},
                        "scorecard_name": {"$last": "$scorecard_name"},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
    ).to_list(None)
    overall = await (
        await ctx.db.evaluations.aggregate([{"$match": match}, {"$group": {"_id": None, **totals_group}}])
    ).to_list(None)
    per_item = await (
        await ctx.db.evaluations.aggregate(
            [
                {"$match": match},
                {"$unwind": "$items"},
                {"$match": {"items.na": False}},
                {
                    "$group": {
                        "_id": {"g": f"${field}", "k": "$items.key"},
                        "avg_pct": {"$avg": "$items.pct"},
                        "count": {"$sum": 1},
                    }
                },
            ]
        )
    ).to_list(None)
    item_totals = await (
        await ctx.db.evaluations.aggregate(
            [
                {"$match": match},
                {"$unwind": "$items"},
                {"$match": {"items.na": False}},
                {"$group": {"_id": "$items.key", "avg_pct": {"$avg": "$items.pct"}, "count": {"$sum": 1}}},
            ]
        )
    ).to_list(None)
    # labels of the items, from the scorecard versions used (newest version's label wins)
    used = await ctx.db.evaluations.distinct("scorecard_id", match)
    labels: dict[str, str] = {}
    async for card in ctx.db.scorecards.find({"_id": {"$in": used}, "tenant_id": tenant_id}).sort(
        "created_at", 1
    ):
        for section in card.get("sections", []):
            for item in section.get("items", []):
                labels[item["key"]] = item["label"]
    names: dict[Any, str] = {}
    if group == "queue":
        ids = [row["_id"] for row in by_group if row["_id"]]
        async for queue in ctx.db.queues.find({"_id": {"$in": ids}, "tenant_id": tenant_id}, {"name": 1}):
            names[queue["_id"]] = queue["name"]
    items_of: dict[Any, dict[str, dict[str, Any]]] = {}
    for row in per_item:
        items_of.setdefault(row["_id"]["g"], {})[row["_id"]["k"]] = {
            "avg_pct": _avg(row["avg_pct"]),
            "count": row["count"],
        }

    def name_of(row: Doc) -> str:
        if group == "agent":
            return str(row.get("agent_name") or row["_id"] or "")
        if group == "scorecard":
            return str(row.get("scorecard_name") or row["_id"] or "")
        return names.get(row["_id"], row["_id"] or "(no queue)")

    rows = [
        {
            "key": row["_id"],
            "name": name_of(row),
            "count": row["count"],
            "avg_total_pct": _avg(row["avg_total_pct"]),
            "auto_fail_count": row["auto_fail_count"],
            "recontact_count": row["recontact_count"],
            "items": items_of.get(row["_id"], {}),
        }
        for row in by_group
    ]
    rows.sort(key=lambda r: (r["name"].lower(), str(r["key"])))
    total = overall[0] if overall else {"count": 0, "avg_total_pct": None, "auto_fail_count": 0}
    return {
        "since": iso(since),
        "until": iso(until),
        "group": group,
        "rows": rows,
        "total": {
            "count": total["count"],
            "avg_total_pct": _avg(total["avg_total_pct"]),
            "auto_fail_count": total.get("auto_fail_count", 0),
            "recontact_count": total.get("recontact_count", 0),
            "items": {
                row["_id"]: {"avg_pct": _avg(row["avg_pct"]), "count": row["count"]} for row in item_totals
            },
        },
        "item_labels": {key: labels.get(key, key) for key in sorted({r["_id"] for r in item_totals})},
    }


def _report_window(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = _when(until, "until", end_of_day=True) or utcnow()
    start = _when(since, "since") or end - timedelta(days=30)
    if start >= end:
        raise HTTPException(422, "since must be before until")
    if end - start > timedelta(days=REPORT_DAYS_MAX):
        raise HTTPException(422, f"at most {REPORT_DAYS_MAX} days per report")
    return start, end


def _group(group: str) -> str:
    if group not in GROUPS:
        raise HTTPException(422, f"group is one of {', '.join(GROUPS)}")
    return group


@router.get("/report")
async def report(
    since: str | None = None,
    until: str | None = None,
    group: str = "agent",
    agent_id: str | None = None,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    start, end = _report_window(since, until)
    return await build_report(ctx, principal.tenant_id, start, end, _group(group), agent_id)


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@router.get("/report.csv")
async def report_csv(
    since: str | None = None,
    until: str | None = None,
    group: str = "agent",
    agent_id: str | None = None,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    start, end = _report_window(since, until)
    data = await build_report(ctx, principal.tenant_id, start, end, _group(group), agent_id)
    keys = list(data["item_labels"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            group,
            "id",
            "evaluations",
            "avg_total_pct",
            "auto_fails",
            "recontacts",
            *(f"{data['item_labels'][k]} ({k})" for k in keys),
        ]
    )
    for row in [*data["rows"], {**data["total"], "name": "Total", "key": ""}]:
        writer.writerow(
            [
                _cell(row["name"]),
                _cell(row["key"]),
                row["count"],
                _cell(row["avg_total_pct"]),
                row["auto_fail_count"],
                row["recontact_count"],
                *(_cell((row["items"].get(k) or {}).get("avg_pct")) for k in keys),
            ]
        )
    filename = f"quality-{group}-{start.date().isoformat()}-{end.date().isoformat()}.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
