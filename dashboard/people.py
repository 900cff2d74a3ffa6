"""Display names of a tenant's staff, for pages that show who added or reviewed something.

Records keep user ids (names change); the pages want names. One query per page of records,
filtered by tenant so another tenant's id never resolves.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.context import AppContext


async def user_names(ctx: AppContext, tenant_id: str, ids: Iterable[str | None]) -> dict[str, str]:
    """`{user_id: name}` for the given ids that are users of the tenant."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    cursor = ctx.db.users.find({"tenant_id": tenant_id, "_id": {"$in": wanted}}, {"name": 1, "email": 1})
    return {doc["_id"]: str(doc.get("name") or doc.get("email") or doc["_id"]) async for doc in cursor}
