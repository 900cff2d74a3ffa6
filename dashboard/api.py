"""Dashboard HTTP API: login, presence, offers, conversations, screen pop, wrap-up, KB."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from dashboard.screen_pop import call_context, recent_utterances, suggestions
from hub.audit import record_sign_in
from hub.auth import (
    SESSION_COOKIE,
    Principal,
    authenticate,
    current_user,
    require_roles,
    session_token,
    signed_in_user,
)
from hub.branding import effective_branding, public_branding
from hub.contacts import append_message, get_contact, messages_after, public_contact, public_message
from hub.context import AppContext, get_ctx
from hub.csrf import CSRF_COOKIE, new_csrf_token
from hub.db import Doc
from hub.ids import iso
from hub.ratelimit import client_ip, login_limits, retry_after_header
from knowledge.customers import get_customer, public_customer
from knowledge.kb import public_article, search
from routing.assignment import RoutingError, offered_agents
from routing.presence import ensure_agent, public_presence, tenant_routing

router = APIRouter(prefix="/api")
AGENT = require_roles("agent", "supervisor", "admin")
STAFF = require_roles("agent", "supervisor", "admin", "editor")


class LoginRequest(BaseModel):
    tenant: str = Field(min_length=1, max_length=60)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=512)


class PresenceRequest(BaseModel):
    state: str = Field(pattern="^(available|not_ready|offline)$")
    reason: str | None = Field(default=None, max_length=60, description="why not ready, e.g. break")


class ReplyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    client_id: str | None = Field(default=None, max_length=100)


class WrapUpRequest(BaseModel):
    disposition: str = Field(min_length=1, max_length=60)
    note: str = Field(default="", max_length=2000)


def me_view(p: Principal, skills: list[str]) -> dict[str, Any]:
    return {
        "id": p.user_id,
        "tenant_id": p.tenant_id,
        "tenant_slug": p.tenant_slug,
        "tenant_name": p.tenant_name,
        "email": p.email,
        "name": p.name,
        "roles": list(p.roles),
        "skills": skills,
        "permissions": sorted(p.permissions),
        "tenant_level": p.tenant_level,
    }


@router.post("/auth/login")
async def login(
    body: LoginRequest, request: Request, response: Response, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    # failures are limited per account and per address (hub/ratelimit.py); while locked even
    # the right password is refused, or a guesser would simply keep going
    ip = client_ip(request.scope)
    limits = login_limits(ctx.extra, ctx.settings)
    wait = limits.retry_after(body.tenant, body.email, ip)
    if wait > 0:
        seconds = retry_after_header(wait)
        raise HTTPException(
            429,
            f"Too many failed sign-ins. Try again in {seconds} seconds.",
            headers={"Retry-After": seconds},
        )
    principal = await authenticate(ctx, body.tenant, body.email, body.password)
    await record_sign_in(ctx, principal, body.tenant, body.email, ip)
    if principal is None:
        limits.failed(body.tenant, body.email, ip)
        raise HTTPException(401, "invalid credentials")
    token = session_token(ctx, principal)
    # the double-submit token cookie pages echo in X-CSRF-Token (hub/csrf.py)
    response.set_cookie(
        CSRF_COOKIE,
        new_csrf_token(),
        max_age=ctx.settings.session_ttl_s,
        httponly=False,  # the pages' scripts read it
        samesite="strict",
        secure=ctx.settings.secure_cookies,
        path="/",
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ctx.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.secure_cookies,
        path="/",
    )
    return {"user": me_view(principal, []), "token": session_token(ctx, principal, "api")}


@router.post("/auth/token")
async def api_token(
    principal: Principal = Depends(current_user), ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return {"token": session_token(ctx, principal, "api"), "expires_in": ctx.settings.api_token_ttl_s}


@router.post("/auth/logout")
async def logout(response: Response) -> dict[str, str]:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"status": "signed out"}


@router.get("/me")
async def me(
    principal: Principal = Depends(signed_in_user),  # answers during a pending password change
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    user = await ctx.db.users.find_one({"_id": principal.user_id}, {"skills": 1, "must_change_password": 1})
    tenant = await ctx.db.tenants.find_one({"_id": principal.tenant_id}) or {"_id": principal.tenant_id}
    return {
        **me_view(principal, (user or {}).get("skills", [])),
        "must_change_password": bool((user or {}).get("must_change_password")),
        # the name and logo for the top bar: the tenant's own or the nearest ancestor's
        "branding": public_branding(principal.tenant_slug, await effective_branding(ctx, tenant)),
    }


async def _agent(ctx: AppContext, principal: Principal) -> Doc:
    user = await ctx.db.users.find_one({"_id": principal.user_id, "tenant_id": principal.tenant_id})
    if user is None:
        raise HTTPException(401, "not signed in")
    return await ensure_agent(ctx, user)


@router.get("/agent/presence")
async def get_presence(principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return public_presence(await _agent(ctx, principal))


@router.post("/agent/presence")
async def set_presence(
    body: PresenceRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _agent(ctx, principal)
    try:
        agent = await ctx.require_router().set_presence(principal.user_id, body.state, body.reason)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    assert agent is not None
    return public_presence(agent)


@router.get("/agent/contacts")
async def my_contacts(principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    router_ = ctx.require_router()
    offers = [
        await router_.offer_view(c)
        async for c in ctx.db.contacts.find(
            {"tenant_id": principal.tenant_id, "status": "offered", "offer.agent_ids": principal.user_id}
        )
    ]
    assigned = [
        public_contact(c)
        async for c in ctx.db.contacts.find(
            {"tenant_id": principal.tenant_id, "status": "assigned", "agent_id": principal.user_id}
        ).sort("assigned_at", 1)
    ]
    return {"offers": offers, "assigned": assigned}


async def _tenant_contact(ctx: AppContext, contact_id: str, principal: Principal) -> Doc:
    contact = await get_contact(ctx, contact_id, principal.tenant_id)
    if contact is None:
        raise HTTPException(404, "no such contact")
    return contact


def _may_see(contact: Doc, principal: Principal) -> bool:
    """Agents see contacts offered or assigned to them; supervisors and admins all of the tenant's."""
    if principal.has_any("supervisor", "admin"):
        return True
    if contact.get("agent_id"):
        return bool(contact["agent_id"] == principal.user_id)
    return principal.user_id in offered_agents(contact)  # every agent a ring-all offer rings


@router.post("/contacts/{contact_id}/accept")
async def accept(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _tenant_contact(ctx, contact_id, principal)
    try:
        contact = await ctx.require_router().accept(
            contact_id, principal.user_id, principal.name, principal.tenant_id
        )
    except RoutingError as exc:
        raise HTTPException(409, str(exc)) from exc
    return public_contact(contact)


@router.post("/contacts/{contact_id}/decline")
async def decline(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    await _tenant_contact(ctx, contact_id, principal)
    try:
        await ctx.require_router().decline(contact_id, principal.user_id, principal.tenant_id)
    except RoutingError as exc:
        raise HTTPException(409, str(exc)) from exc
    return {"status": "declined"}


@router.get("/contacts/{contact_id}")
async def screen_pop(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    contact = await _tenant_contact(ctx, contact_id, principal)
    if not _may_see(contact, principal):
        raise HTTPException(403, "this contact is not yours")
    customer = None
    history: list[dict[str, Any]] = []
    if contact.get("customer_id"):
        found = await get_customer(ctx, contact["customer_id"], principal.tenant_id)
        if found is not None:
            customer = public_customer(found)
            history = await customer_history(ctx, found, exclude=contact_id)
    messages = [public_message(m) for m in await messages_after(ctx, contact_id)]
    return {
        "contact": public_contact(contact),
        "messages": messages,
        "customer": customer,
        "history": history,
        "context": await call_context(ctx, contact),
        "suggestions": await suggestions(ctx, principal.tenant_id, await recent_utterances(ctx, contact_id)),
    }


@router.get("/contacts/{contact_id}/suggestions")
async def contact_suggestions(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Knowledge-base articles for what the customer said last (refreshed as the transcript grows)."""
    contact = await _tenant_contact(ctx, contact_id, principal)
    if not _may_see(contact, principal):
        raise HTTPException(403, "this contact is not yours")
    utterances = await recent_utterances(ctx, contact_id)
    return {
        "contact_id": contact_id,
        "based_on": utterances[:1],
        "suggestions": await suggestions(ctx, principal.tenant_id, utterances),
    }


@router.post("/contacts/{contact_id}/messages")
async def reply(
    contact_id: str, body: ReplyRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    contact = await _tenant_contact(ctx, contact_id, principal)
    if contact["status"] != "assigned" or contact.get("agent_id") != principal.user_id:
        raise HTTPException(409, "you can only write in a conversation assigned to you")
    message, _ = await append_message(
        ctx,
        contact,
        "agent",
        body.text.strip(),
        client_id=body.client_id,
        author_id=principal.user_id,
        author_name=principal.name,
    )
    return public_message(message)


@router.post("/contacts/{contact_id}/wrapup")
async def wrap_up(
    contact_id: str, body: WrapUpRequest, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    await _tenant_contact(ctx, contact_id, principal)
    try:
        contact = await ctx.require_router().wrap_up(
            contact_id, principal.user_id, principal.tenant_id, body.disposition, body.note
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    except RoutingError as exc:
        raise HTTPException(409, str(exc)) from exc
    return public_contact(contact)


@router.get("/dispositions")
async def dispositions(
    principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, str]]:
    tenant = await ctx.db.tenants.find_one({"_id": principal.tenant_id})
    return list((tenant or {}).get("dispositions", []))


@router.get("/customers/{customer_id}")
async def customer(
    customer_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    found = await get_customer(ctx, customer_id, principal.tenant_id)
    if found is None:
        raise HTTPException(404, "no such customer")
    return {"customer": public_customer(found), "history": await customer_history(ctx, found)}


async def customer_history(
    ctx: AppContext, customer: Doc, exclude: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The customer's previous contacts on every channel, newest first, with transcripts."""
    query: Doc = {"tenant_id": customer["tenant_id"], "customer_id": customer["_id"]}
    if exclude:
        query["_id"] = {"$ne": exclude}
    out = []
    async for contact in ctx.db.contacts.find(query).sort("opened_at", -1).limit(limit):
        view = public_contact(contact)
        view["messages"] = [public_message(m) for m in await messages_after(ctx, contact["_id"])]
        out.append(view)
    return out


@router.get("/kb/search")
async def kb_search(
    q: str = "", principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    if not q.strip():
        return []
    return [
        public_article(h.article, h.score) for h in await search(ctx, principal.tenant_id, q[:500], limit=8)
    ]


class AssignRequest(BaseModel):
    agent_id: str = Field(min_length=1, max_length=64)


class MoveRequest(BaseModel):
    """Where a waiting contact goes: a queue, a skill group, or one agent (direct routing)."""

    queue_id: str | None = Field(default=None, max_length=64)
    skill: str | None = Field(default=None, min_length=1, max_length=60)
    agent_id: str | None = Field(default=None, max_length=64)


SUPERVISOR = require_roles("supervisor", "admin")


@router.get("/queue")
async def waiting_contacts(
    principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    """Everything waiting in the tenant, oldest first (for pickup and supervision)."""
    cursor = ctx.db.contacts.find(
        {"tenant_id": principal.tenant_id, "status": {"$in": ["queued", "offered"]}}
    ).sort("queued_at", 1)
    return [{**public_contact(c), "queued_at": iso(c.get("queued_at"))} async for c in cursor.limit(200)]


@router.post("/contacts/{contact_id}/pickup")
async def pickup(
    contact_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """An agent takes a waiting contact from any queue (where the tenant allows it)."""
    settings = await tenant_routing(ctx, principal.tenant_id)
    if not settings.allow_pickup and not principal.has_any("supervisor", "admin"):
        raise HTTPException(403, "picking up from other queues is not allowed in this tenant")
    await _agent(ctx, principal)
    return await _assign(ctx, contact_id, principal.user_id, principal)


async def _assign(ctx: AppContext, contact_id: str, agent_id: str, principal: Principal) -> dict[str, Any]:
    try:
        contact = await ctx.require_router().assign_to(
            contact_id, agent_id, principal.tenant_id, by=principal.user_id
        )
    except RoutingError as exc:
        raise HTTPException(409, str(exc)) from exc
    return public_contact(contact)


@router.post("/contacts/{contact_id}/assign")
async def force_assign(
    contact_id: str,
    body: AssignRequest,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    user = await ctx.db.users.find_one({"_id": body.agent_id, "tenant_id": principal.tenant_id})
    if user is None:
        raise HTTPException(404, "no such agent")
    await ensure_agent(ctx, user)
    return await _assign(ctx, contact_id, body.agent_id, principal)


@router.post("/contacts/{contact_id}/move")
async def move(
    contact_id: str, body: MoveRequest, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    if not (body.queue_id or body.skill or body.agent_id):
        raise HTTPException(422, "give a queue_id, a skill or an agent_id")
    if body.agent_id and not await ctx.db.agents.find_one(
        {"_id": body.agent_id, "tenant_id": principal.tenant_id}
    ):
        raise HTTPException(404, "no such agent")
    try:
        contact = await ctx.require_router().move(
            contact_id, principal.tenant_id, skill=body.skill, queue_id=body.queue_id, agent_id=body.agent_id
        )
    except RoutingError as exc:
        raise HTTPException(409, str(exc)) from exc
    return public_contact(contact)
