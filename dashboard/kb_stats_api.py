"""Knowledge-base usage for staff: the statistics editors read, and the agents' view events.

`GET /api/kb/stats` (editor, supervisor, admin): views, bot uses, votes and the helpful ratio
per article, searches without a good result (content gaps) and the top searches, over the last
`days` days (knowledge/usage.py). `POST /api/kb/usage/view` records that an agent opened a
suggested or searched article in the desktop (published articles of the caller's tenant only).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from knowledge import usage

router = APIRouter(prefix="/api/kb")
READERS = require_roles("editor", "supervisor", "admin")
STAFF = require_roles("agent", "supervisor", "admin", "editor")


@router.get("/stats")
async def kb_stats(
    days: int = Query(30, ge=0, le=3660, description="0 for all time"),
    principal: Principal = READERS,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await usage.statistics(ctx, principal.tenant_id, days=days or None)


class ViewRequest(BaseModel):
    article_id: str = Field(min_length=1, max_length=64)
    contact_id: str | None = Field(default=None, max_length=64)


@router.post("/usage/view")
async def agent_view(
    body: ViewRequest, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    article = await ctx.db.kb_articles.find_one(
        {"_id": body.article_id, "tenant_id": principal.tenant_id, "status": {"$in": ["published", None]}},
        {"_id": 1},
    )
    if article is None:
        raise HTTPException(404, "no such article")
    contact_id = None
    if body.contact_id:
        contact = await ctx.db.contacts.find_one(
            {"_id": body.contact_id, "tenant_id": principal.tenant_id}, {"_id": 1}
        )
        contact_id = contact["_id"] if contact is not None else None
    await usage.record(ctx, principal.tenant_id, "view", article["_id"], "agent", contact_id=contact_id)
    return {"status": "recorded"}
