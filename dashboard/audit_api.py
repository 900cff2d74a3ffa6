"""Reading the audit log (`GET /api/audit`, the /audit page): holders of `audit.view`.

The caller sees its own tenant's rows (changes to it, and changes its staff made below it) and,
with `?tenant_id=`, the rows of a tenant below it; any other tenant is a 404, as everywhere.
Filters: actor, action prefix (`billing.` or `http.`), period; paging by offset; `format=csv`
exports what the filters select (at most EXPORT_ROWS rows).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from hub.auth import Principal, require_permission
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso

router = APIRouter(prefix="/api/audit", tags=["audit"])
AUDIT = require_permission("audit.view")
EXPORT_ROWS = 10_000
CSV_COLUMNS = (
    "at",
    "action",
    "actor_name",
    "actor_id",
    "actor_tenant_id",
    "tenant_id",
    "target",
    "changes",
    "status",
    "ip",
)


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HTTPException(422, f"{name}: not an ISO date or date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _scope(ctx: AppContext, principal: Principal, tenant_id: str | None) -> Doc:
    """The query selecting the tenant the caller may read."""
    if not tenant_id or tenant_id == principal.tenant_id:
        mine = principal.tenant_id
        return {"$or": [{"tenant_id": mine}, {"actor_tenant_id": mine}]}
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"path": 1})
    if tenant is None or not principal.manages(tenant):
        raise HTTPException(404, "no such tenant")
    return {"tenant_id": tenant_id}


def public_entry(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "at": iso(doc.get("at")),
        "tenant_id": doc.get("tenant_id"),
        "actor_id": doc.get("actor_id"),
        "actor_name": doc.get("actor_name"),
        "actor_tenant_id": doc.get("actor_tenant_id"),
        "action": doc.get("action"),
        "target": doc.get("target") or {},
        "changes": doc.get("changes") or {},
        "status": doc.get("status"),
        "ip": doc.get("ip"),
    }


async def _with_names(ctx: AppContext, docs: list[Doc]) -> list[Doc]:
    """Fill in actor names the request middleware left for the reader (one query per page)."""
    missing = {d["actor_id"] for d in docs if d.get("actor_id") and not d.get("actor_name")}
    if missing:
        users = ctx.db.users.find({"_id": {"$in": sorted(missing)}}, {"name": 1, "email": 1})
        names = {u["_id"]: u.get("name") or u.get("email") for u in await users.to_list(None)}
        for d in docs:
            if d.get("actor_id") in names and not d.get("actor_name"):
                d["actor_name"] = names[d["actor_id"]]
    return docs


def _csv(entries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        row = []
        for column in CSV_COLUMNS:
            value = e.get(column)
            row.append(
                json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, dict) else value
            )
        # a leading = + - @ would run as a formula in a spreadsheet
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in "=+-@" else v for v in row])
    return out.getvalue()


@router.get("")
async def list_audit(
    tenant_id: str | None = Query(default=None, max_length=64),
    actor: str | None = Query(default=None, max_length=64, description="the actor's user id"),
    action: str | None = Query(default=None, max_length=60, description="an action prefix, e.g. billing."),
    since: str | None = Query(default=None, max_length=40, description="ISO date or date-time"),
    until: str | None = Query(default=None, max_length=40, description="ISO date or date-time (exclusive)"),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    limit: int = Query(default=50, ge=1, le=200),
    format: Literal["json", "csv"] = "json",
    principal: Principal = AUDIT,
    ctx: AppContext = Depends(get_ctx),
) -> Any:
    query: Doc = await _scope(ctx, principal, tenant_id)
    if actor:
        query["actor_id"] = actor
    if action:
        query["action"] = {"$regex": "^" + re.escape(action)}
    start, end = _when(since, "since"), _when(until, "until")
    if start or end:
        query["at"] = {**({"$gte": start} if start else {}), **({"$lt": end} if end else {})}
    cursor = ctx.db.audit_log.find(query).sort([("at", -1), ("_id", -1)])
    if format == "csv":
        docs = await _with_names(ctx, await cursor.limit(EXPORT_ROWS).to_list(None))
        return Response(
            _csv([public_entry(d) for d in docs]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    docs = await _with_names(ctx, await cursor.skip(offset).limit(limit + 1).to_list(None))
    return {
        "entries": [public_entry(d) for d in docs[:limit]],
        "offset": offset,
        "limit": limit,
        "more": len(docs) > limit,
    }
