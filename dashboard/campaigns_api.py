"""Campaign management over HTTP: create and edit campaigns, start / pause / resume / stop
them, watch their progress, record results, and export them to Excel.

Campaign managers are supervisors and admins; agents record the results of the targets
they called and see their callbacks. See docs/outbound.md.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc, update_then_read
from hub.ids import utcnow
from hub.validation import validation_problems
from routing.approvals import prompt_tenant
from routing.campaigns import (
    DISPOSITION_CLASSES,
    Campaign,
    CampaignError,
    create_campaign,
    dispositions,
    get_campaign,
    outbound_block,
    progress,
    public_campaign,
    transition,
    update_campaign,
)
from routing.compliance import CallingRules, may_dial

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])
MANAGER = require_roles("supervisor", "admin")
AGENT = require_roles("agent", "supervisor", "admin")


def _invalid(exc: ValidationError) -> HTTPException:
    return HTTPException(422, validation_problems(exc))


async def _check_references(ctx: AppContext, tenant_id: str, body: dict[str, Any]) -> None:
    """The flow, questionnaire, queue, prompts and agents a campaign names must be the tenant's own.
    Run-time lookups are scoped to the tenant, so another tenant's (or a made-up) id would only
    make the campaign run without it, silently; refuse it when the campaign is saved (422)."""

    def named(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    owned = (
        ("flow_id", ctx.db.ivr_flows, "IVR flow"),
        ("questionnaire_id", ctx.db.questionnaires, "questionnaire"),
    )
    for key, collection, what in owned:
        if (value := named(body.get(key))) and not await collection.find_one(
            {"_id": value, "tenant_id": tenant_id}, {"_id": 1}
        ):
            raise HTTPException(422, f"{key}: no such {what} in this tenant")
    queue_id = named(body.get("queue_id"))
    if queue_id and not queue_id.startswith("skill:"):  # a skill's implicit queue, as the router names it
        if not await ctx.db.queues.find_one({"_id": queue_id, "tenant_id": tenant_id}, {"_id": 1}):
            raise HTTPException(422, "queue_id: no such queue in this tenant")
    amd = body.get("amd")
    amd = amd if isinstance(amd, dict) else {}
    for key, value in (
        ("prompt_id", body.get("prompt_id")),
        ("amd.message_prompt_id", amd.get("message_prompt_id")),
    ):
        if (prompt_id := named(value)) and await prompt_tenant(ctx, prompt_id) != tenant_id:
            raise HTTPException(422, f"{key}: no such audio prompt in this tenant")
    agent_ids = body.get("agent_ids")
    if isinstance(agent_ids, list) and (wanted := {a for a in agent_ids if isinstance(a, str)}):
        found = await ctx.db.users.count_documents({"_id": {"$in": sorted(wanted)}, "tenant_id": tenant_id})
        if found != len(wanted):
            raise HTTPException(422, "agent_ids: not every agent is a user of this tenant")


async def _campaign(ctx: AppContext, principal: Principal, campaign_id: str) -> Doc:
    found = await get_campaign(ctx, principal.tenant_id, campaign_id)
    if found is None:
        raise HTTPException(404, "no such campaign")
    return found


@router.get("")
async def list_campaigns(
    principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    cursor = ctx.db.campaigns.find({"tenant_id": principal.tenant_id}).sort(
        [("priority", -1), ("created_at", -1)]
    )
    return [public_campaign(doc) async for doc in cursor.limit(500)]


@router.post("", status_code=201)
async def new_campaign(
    body: dict[str, Any] = Body(...), principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _check_references(ctx, principal.tenant_id, body)
    try:
        doc = await create_campaign(ctx, principal.tenant_id, body, principal.user_id)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return public_campaign(doc)


@router.get("/mine")
async def my_campaigns(
    principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    """Running campaigns an agent works on: preview records to dial, results to record."""
    query: Doc = {
        "tenant_id": principal.tenant_id,
        "state": "running",
        "$or": [{"agent_ids": principal.user_id}, {"agent_ids": []}],
    }
    return [
        {"id": c["_id"], "name": c["name"], "type": c["type"], "questionnaire_id": c.get("questionnaire_id")}
        async for c in ctx.db.campaigns.find(query).sort("priority", -1).limit(50)
    ]


@router.get("/dispositions")
async def result_codes(
    principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, str]]:
    return await dispositions(ctx, principal.tenant_id)


class DispositionCode(BaseModel):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    label: str = Field(min_length=1, max_length=80)
    class_: str = Field(alias="class")


@router.put("/dispositions")
async def set_result_codes(
    body: list[DispositionCode], principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, str]]:
    """The tenant's own codes, each mapped to one of the five classes."""
    for code in body:
        if code.class_ not in DISPOSITION_CLASSES:
            raise HTTPException(422, f"{code.code}: class must be one of {', '.join(DISPOSITION_CLASSES)}")
    custom = [{"code": c.code, "label": c.label, "class": c.class_} for c in body]
    await ctx.db.tenants.update_one({"_id": principal.tenant_id}, {"$set": {"outbound_dispositions": custom}})
    return await dispositions(ctx, principal.tenant_id)


@router.get("/{campaign_id}")
async def campaign(
    campaign_id: str, principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    doc = await _campaign(ctx, principal, campaign_id)
    return {**public_campaign(doc), "progress": await progress(ctx, campaign_id)}


@router.put("/{campaign_id}")
async def edit_campaign(
    campaign_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = MANAGER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    await _campaign(ctx, principal, campaign_id)
    await _check_references(ctx, principal.tenant_id, body)
    try:
        doc = await update_campaign(ctx, principal.tenant_id, campaign_id, body)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except CampaignError as exc:
        raise HTTPException(409, str(exc)) from exc
    return public_campaign(doc)


def _control(action: str) -> Any:
    async def endpoint(
        campaign_id: str, principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
    ) -> dict[str, Any]:
        await _campaign(ctx, principal, campaign_id)
        try:
            doc = await transition(ctx, principal.tenant_id, campaign_id, action, principal.user_id)
        except CampaignError as exc:
            raise HTTPException(409, str(exc)) from exc
        return public_campaign(doc)

    endpoint.__name__ = f"{action}_campaign"
    endpoint.__doc__ = f"{action.capitalize()} the campaign (409 when its state does not allow it)."
    return endpoint


for _action in ("start", "pause", "resume", "stop"):
    router.add_api_route(f"/{{campaign_id}}/{_action}", _control(_action), methods=["POST"])


@router.get("/{campaign_id}/progress")
async def live_progress(
    campaign_id: str, principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    doc = await _campaign(ctx, principal, campaign_id)
    return {"state": doc["state"], **await progress(ctx, campaign_id)}


class ResultRequest(BaseModel):
    disposition: str = Field(min_length=1, max_length=40)
    note: str = Field(default="", max_length=2000)
    callback_at: datetime | None = None


@router.post("/{campaign_id}/targets/{target_id}/result")
async def record_result(
    campaign_id: str,
    target_id: str,
    body: ResultRequest,
    principal: Principal = AGENT,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The agent's result for a target; a callback is booked to the same agent."""
    await _campaign(ctx, principal, campaign_id)
    codes = {d["code"]: d for d in await dispositions(ctx, principal.tenant_id)}
    if body.disposition not in codes:
        raise HTTPException(422, f"unknown disposition {body.disposition!r}")
    now = utcnow()
    changes: Doc = {
        "disposition": body.disposition,
        "disposition_class": codes[body.disposition]["class"],
        "result_note": body.note.strip(),
        "result_by": principal.user_id,
        "result_at": now,
    }
    if body.callback_at is not None:
        when = body.callback_at if body.callback_at.tzinfo else body.callback_at.replace(tzinfo=now.tzinfo)
        if when <= now:
            raise HTTPException(422, "a callback must be in the future")
        changes.update(
            status="pending", callback_at=when, next_attempt_at=when, assigned_agent_id=principal.user_id
        )
    else:
        changes["status"] = "done"
    query: Doc = {"_id": target_id, "campaign_id": campaign_id, "tenant_id": principal.tenant_id}
    if not principal.has_any("supervisor", "admin"):
        query["$or"] = [{"assigned_agent_id": principal.user_id}, {"last_agent_id": principal.user_id}]
    updated = await update_then_read(ctx.db.campaign_targets, query, {"$set": changes})
    if updated is None:
        raise HTTPException(404, "no such target of yours in this campaign")
    return {"id": updated["_id"], "status": updated["status"], "disposition": updated["disposition"]}


@router.get("/{campaign_id}/next")
async def next_record(
    campaign_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Preview: the agent's next record (their due callbacks first, then their own or
    unassigned targets), held for them, with what the rules say about dialling it now."""
    doc = await _campaign(ctx, principal, campaign_id)
    if doc["type"] != "preview" or doc["state"] != "running":
        raise HTTPException(409, "only a running preview campaign hands out records")
    now = utcnow()
    held = await ctx.db.campaign_targets.find_one(
        {"campaign_id": campaign_id, "status": "previewing", "assigned_agent_id": principal.user_id}
    )
    if held is None:
        due: Doc = {"$or": [{"next_attempt_at": None}, {"next_attempt_at": {"$lte": now}}]}
        for query in (
            {
                "status": "pending",
                "assigned_agent_id": principal.user_id,
                "callback_at": {"$ne": None, "$lte": now},
            },
            {"status": "pending", "assigned_agent_id": principal.user_id, "callback_at": None, **due},
            {"status": "pending", "assigned_agent_id": None, "callback_at": None, **due},
        ):
            candidate = await ctx.db.campaign_targets.find_one(
                {"campaign_id": campaign_id, **query}, sort=[("_id", 1)]
            )
            if candidate is None:
                continue
            held = await update_then_read(
                ctx.db.campaign_targets,
                {"_id": candidate["_id"], "status": "pending"},
                {
                    "$set": {
                        "status": "previewing",
                        "assigned_agent_id": principal.user_id,
                        "previewing_since": now,
                    }
                },
            )
            if held is not None:
                break
    if held is None:
        return {"target": None}
    decision = await may_dial(ctx, principal.tenant_id, CallingRules.of_campaign(doc), held["number"], now)
    return {
        "target": public_target(held),
        "may_dial": decision.allowed,
        "reason": decision.reason,
        "needs_confirmation": decision.needs_confirmation,
        "retry_at": decision.retry_at.isoformat() if decision.retry_at else None,
    }


def public_target(target: Doc) -> dict[str, Any]:
    keep = (
        "number",
        "name",
        "fields",
        "status",
        "attempts",
        "last_outcome",
        "callback_at",
        "assigned_agent_id",
    )
    view: dict[str, Any] = {key: target.get(key) for key in keep}
    view["id"] = target["_id"]
    callback_at = target.get("callback_at")
    if isinstance(callback_at, datetime):
        view["callback_at"] = callback_at.isoformat()
    return view


class DialRequest(BaseModel):
    confirm: bool = Field(default=False, description="the agent confirms a grey-listed number")


@router.post("/{campaign_id}/targets/{target_id}/dial")
async def dial_record(
    campaign_id: str,
    target_id: str,
    body: DialRequest,
    principal: Principal = AGENT,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Preview: the agent dials the record they hold; the rules are checked again now."""
    doc = await _campaign(ctx, principal, campaign_id)
    target = await ctx.db.campaign_targets.find_one(
        {
            "_id": target_id,
            "campaign_id": campaign_id,
            "status": "previewing",
            "assigned_agent_id": principal.user_id,
        }
    )
    if target is None:
        raise HTTPException(404, "you hold no such record")
    now = utcnow()
    decision = await may_dial(
        ctx, principal.tenant_id, CallingRules.of_campaign(doc), target["number"], now, confirmed=body.confirm
    )
    if not decision.allowed:
        raise HTTPException(409, f"this number may not be dialled now: {decision.reason}")
    blocked = await outbound_block(ctx, principal.tenant_id)
    if blocked:
        raise HTTPException(409, f"no outbound calls now: {blocked}")
    dialer = ctx.extra.get("dialer")
    if dialer is None:
        raise HTTPException(503, "the dialer is not running on this hub")
    if not await dialer.dial(Campaign.from_doc(doc), target, now, agent_id=principal.user_id):
        raise HTTPException(409, "this record is being dialled already")
    attempt = await ctx.db.dial_attempts.find_one({"target_id": target_id}, sort=[("placed_at", -1)]) or {}
    return {
        "attempt_id": attempt.get("_id"),
        "outcome": attempt.get("outcome"),
        "call_sid": attempt.get("call_sid"),
    }


@router.post("/{campaign_id}/targets/{target_id}/release")
async def release_record(
    campaign_id: str, target_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    """Preview: hand a held record back without dialling it."""
    released = await ctx.db.campaign_targets.update_one(
        {
            "_id": target_id,
            "campaign_id": campaign_id,
            "status": "previewing",
            "assigned_agent_id": principal.user_id,
        },
        {"$set": {"status": "pending", "assigned_agent_id": None}},
    )
    if released.matched_count == 0:
        raise HTTPException(404, "you hold no such record")
    return {"status": "pending"}


@router.get("/{campaign_id}/results.xlsx")
async def export_results(
    campaign_id: str, principal: Principal = MANAGER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """Every target with its attempts and result, one row each (openpyxl, write-only)."""
    from openpyxl import Workbook

    doc = await _campaign(ctx, principal, campaign_id)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Results")
    sheet.append(
        [
            "Number",
            "Name",
            "Status",
            "Attempts",
            "Last outcome",
            "Disposition",
            "Class",
            "Agent",
            "Note",
            "Result at",
        ]
    )
    cursor = ctx.db.campaign_targets.find({"campaign_id": campaign_id, "tenant_id": principal.tenant_id})
    async for target in cursor.sort("_id", 1):
        result_at = target.get("result_at")
        sheet.append(
            [
                target.get("number"),
                target.get("name"),
                target.get("status"),
                target.get("attempts", 0),
                target.get("last_outcome"),
                target.get("disposition"),
                target.get("disposition_class"),
                target.get("result_by") or target.get("assigned_agent_id"),
                target.get("result_note"),
                result_at.replace(tzinfo=None) if isinstance(result_at, datetime) else None,
            ]
        )
    summary = book.create_sheet("Summary")
    figures = await progress(ctx, campaign_id)
    summary.append(["Campaign", doc["name"]])
    summary.append(["State", doc["state"]])
    summary.append(["Targets", figures["targets"]])
    summary.append(["Attempts", figures["attempts"]])
    summary.append(["Abandon rate", figures["abandon_rate"]])
    for klass in DISPOSITION_CLASSES:
        summary.append([klass, figures["by_class"].get(klass, 0)])
    buffer = io.BytesIO()
    book.save(buffer)
    name = f"campaign-{campaign_id[:8]}-results.xlsx"
    return Response(
        buffer.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
