"""Call controls for the agent softphone and the supervisor's live monitoring.

Agents act on the call they are on (hold, mute, keys, transfers, consult, conference,
hang up); supervisors see every live call of their tenant and listen, whisper, barge
in or force-release it. Answering is accepting the offer (POST /api/contacts/{id}/accept).
The audio side is media/voice_desk.py; the contact moves through routing/assignment.py.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from hub.auth import Principal, require_roles
from hub.contacts import get_contact
from hub.context import AppContext, get_ctx
from hub.ids import utcnow
from media.dtmf import valid_digits
from media.voice_desk import CallError, VoiceDesk, voice_desk
from routing.assignment import RoutingError

router = APIRouter(prefix="/api/calls", tags=["calls"])
AGENT = require_roles("agent", "supervisor", "admin")
SUPERVISOR = require_roles("supervisor", "admin")


class Toggle(BaseModel):
    on: bool = True


class HangupRequest(BaseModel):
    after: Literal["survey", "ivr", "end"] = "survey"


class TransferRequest(BaseModel):
    agent_id: str | None = Field(default=None, max_length=64)
    queue_id: str | None = Field(default=None, max_length=64)
    skill: str | None = Field(default=None, min_length=1, max_length=60)


class AgentRequest(BaseModel):
    agent_id: str = Field(min_length=1, max_length=64)


class KeysRequest(BaseModel):
    digits: str = Field(min_length=1, max_length=32)


class MonitorRequest(BaseModel):
    mode: Literal["listen", "whisper", "barge"]


def _desk(ctx: AppContext) -> VoiceDesk:
    return voice_desk(ctx)


T = TypeVar("T")


async def _attempt(action: Awaitable[T]) -> T:
    """A call control that cannot be done now is a 409 with the reason for the user."""
    try:
        return await action
    except (CallError, RoutingError) as exc:
        raise HTTPException(409, str(exc)) from exc


async def _my_call(ctx: AppContext, contact_id: str, principal: Principal) -> None:
    """404 for another tenant's (or an unknown) contact: existence is not leaked."""
    if await get_contact(ctx, contact_id, principal.tenant_id) is None:
        raise HTTPException(404, "no such call")


@router.get("/live")
async def live_calls(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    calls = _desk(ctx).live_calls(principal.tenant_id)
    for call in calls:
        if call["contact_id"]:
            contact = await get_contact(ctx, call["contact_id"], principal.tenant_id) or {}
            call.update(
                channel=contact.get("channel"),
                from_number=contact.get("from_number"),
                agent_id=contact.get("agent_id"),
                agent_name=contact.get("agent_name"),
                queue_name=contact.get("queue_name"),
                customer_id=contact.get("customer_id"),
            )
    return calls


@router.get("/stats")
async def desk_stats(principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """This hub process's mixer figures (all tenants' calls share one mixer clock)."""
    return _desk(ctx).stats()


@router.get("/directory")
async def directory(principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """Who and where a call can go: the tenant's agents (state, softphone on) and queues."""
    desk = _desk(ctx)
    agents = []
    async for user in ctx.db.users.find(
        {"tenant_id": principal.tenant_id, "roles": "agent", "disabled": {"$ne": True}}, {"name": 1}
    ).sort("name", 1):
        presence = await ctx.db.agents.find_one({"_id": user["_id"]}, {"state": 1}) or {}
        line = desk.line_of(user["_id"])
        agents.append(
            {
                "id": user["_id"],
                "name": user.get("name"),
                "state": presence.get("state", "offline"),
                "softphone": line is not None,
                "on_call": line is not None and line.bridge is not None,
            }
        )
    queues = [
        {"id": q["_id"], "name": q.get("name")}
        async for q in ctx.db.queues.find({"tenant_id": principal.tenant_id}, {"name": 1}).sort("name", 1)
    ]
    return {"me": principal.user_id, "agents": agents, "queues": queues}


@router.get("/mine")
async def my_call(principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return _desk(ctx).call_view_for(principal.user_id) or {"connected": False, "bridge": None}


@router.get("/invites")
async def my_invites(
    principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    """Invitations ringing me (consult, conference, internal call)."""
    desk = _desk(ctx)
    return [desk.invite_view(i) for i in desk.invites.values() if i.to_user == principal.user_id]


@router.post("/{contact_id}/hold")
async def hold(
    contact_id: str, body: Toggle, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, bool]:
    await _my_call(ctx, contact_id, principal)
    await _attempt(_desk(ctx).hold(contact_id, principal.tenant_id, principal.user_id, body.on))
    if body.on:
        await ctx.db.contacts.update_one(
            {"_id": contact_id}, {"$inc": {"holds": 1}, "$set": {"held_since": utcnow()}}
        )
    else:
        contact = await get_contact(ctx, contact_id) or {}
        if contact.get("held_since"):
            held_s = (utcnow() - contact["held_since"]).total_seconds()
            await ctx.db.contacts.update_one(
                {"_id": contact_id}, {"$inc": {"hold_s": round(held_s, 1)}, "$set": {"held_since": None}}
            )
    return {"held": body.on}


@router.post("/mute")
async def mute(
    body: Toggle, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, bool]:
    await _attempt(_desk(ctx).mute(principal.user_id, body.on))
    return {"muted": body.on}


@router.post("/dtmf")
async def keys(
    body: KeysRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    if not valid_digits(body.digits):
        raise HTTPException(422, "digits may be 0-9, *, # and A-D")
    await _attempt(_desk(ctx).dtmf(principal.user_id, body.digits))
    return {"sent": body.digits}


@router.post("/leave")
async def leave(principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)) -> dict[str, str]:
    """Leave the current call without ending it (a conference party, a supervisor)."""
    await _attempt(_desk(ctx).leave(principal.user_id))
    return {"status": "left"}


@router.post("/{contact_id}/hangup")
async def hang_up(
    contact_id: str, body: HangupRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    await _my_call(ctx, contact_id, principal)
    await _attempt(_desk(ctx).agent_hangs_up(contact_id, principal.tenant_id, principal.user_id, body.after))
    return {"status": "hung_up", "after": body.after}


@router.post("/{contact_id}/transfer")
async def transfer(
    contact_id: str, body: TransferRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _my_call(ctx, contact_id, principal)
    contact = await _attempt(
        _desk(ctx).transfer(
            contact_id,
            principal.tenant_id,
            principal.user_id,
            agent_id=body.agent_id,
            queue_id=body.queue_id,
            skill=body.skill,
        )
    )
    return {"status": contact["status"], "queue_id": contact.get("queue_id")}


@router.post("/{contact_id}/consult")
async def consult(
    contact_id: str, body: AgentRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _my_call(ctx, contact_id, principal)
    invite = await _attempt(
        _desk(ctx).invite("consult", principal.user_id, principal.tenant_id, body.agent_id, contact_id)
    )
    return _desk(ctx).invite_view(invite)


@router.post("/{contact_id}/consult/complete")
async def complete_consult(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _my_call(ctx, contact_id, principal)
    contact = await _attempt(_desk(ctx).complete_consult(contact_id, principal.tenant_id, principal.user_id))
    return {"status": "transferred", "agent_id": contact["agent_id"]}


@router.post("/{contact_id}/consult/cancel")
async def cancel_consult(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    await _my_call(ctx, contact_id, principal)
    await _attempt(_desk(ctx).cancel_consult(contact_id, principal.tenant_id, principal.user_id))
    return {"status": "back_to_caller"}


@router.post("/{contact_id}/conference")
async def conference(
    contact_id: str, body: AgentRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _my_call(ctx, contact_id, principal)
    invite = await _attempt(
        _desk(ctx).invite("conference", principal.user_id, principal.tenant_id, body.agent_id, contact_id)
    )
    return _desk(ctx).invite_view(invite)


@router.post("/internal")
async def internal_call(
    body: AgentRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    invite = await _attempt(
        _desk(ctx).invite("internal", principal.user_id, principal.tenant_id, body.agent_id, None)
    )
    return _desk(ctx).invite_view(invite)


@router.post("/invites/{invite_id}/accept")
async def accept_invite(
    invite_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    invite = await _attempt(_desk(ctx).accept(invite_id, principal.user_id))
    return _desk(ctx).bridge_view(invite.bridge)


@router.post("/invites/{invite_id}/decline")
async def decline_invite(
    invite_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    await _attempt(_desk(ctx).decline(invite_id, principal.user_id))
    return {"status": "declined"}


@router.post("/{contact_id}/monitor")
async def monitor(
    contact_id: str,
    body: MonitorRequest,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    await _my_call(ctx, contact_id, principal)
    await _attempt(_desk(ctx).monitor(contact_id, principal.tenant_id, principal.user_id, body.mode))
    return _desk(ctx).bridge_view(_desk(ctx).call(contact_id, principal.tenant_id))


@router.post("/{contact_id}/release")
async def force_release(
    contact_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    """End the call for everyone; the agent goes on to wrap up as after any call."""
    await _my_call(ctx, contact_id, principal)
    await _attempt(_desk(ctx).force_release(contact_id, principal.tenant_id, principal.user_id))
    return {"status": "released"}
