"""`GET /api/kb/bot-sync`: whether the bot has learned the tenant's published FAQ yet.

Editors publish FAQ entries and want to know when the bot recognises them; the work itself
happens in `bot.faq_sync` (in the hub process that runs Rasa), this only reads its record.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from bot import faq_sync
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.ids import iso

router = APIRouter(prefix="/api/kb")
EDITORS = require_roles("editor", "admin")
_DATES = ("polled_at", "trained_at", "training_started_at", "last_error_at")


@router.get("/bot-sync")
async def bot_sync_status(ctx: AppContext = Depends(get_ctx), user: Principal = EDITORS) -> dict[str, Any]:
    """Last trained FAQ set, when, training in progress, last error, this tenant's examples."""
    body = await faq_sync.status(ctx, user.tenant_id)
    for key in _DATES:
        body[key] = iso(body.get(key))
    return body
