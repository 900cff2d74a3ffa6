"""The application context: one object holding the process-wide services.

Handlers get it through the `get_ctx` dependency instead of module globals, so
tests can run several hubs in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request, WebSocket

from hub.db import Database
from hub.events import EventBus
from hub.settings import Settings

if TYPE_CHECKING:
    from bot.rasa_client import RasaClient
    from bot.turns import BotTurns
    from routing.assignment import Router


@dataclass
class AppContext:
    settings: Settings
    db: Database
    bus: EventBus = field(default_factory=EventBus)
    rasa: RasaClient | None = None
    bot: BotTurns | None = None
    router: Router | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def require_router(self) -> Router:
        assert self.router is not None, "router not started"
        return self.router

    def require_bot(self) -> BotTurns:
        assert self.bot is not None, "bot not started"
        return self.bot


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def get_ws_ctx(ws: WebSocket) -> AppContext:
    ctx: AppContext = ws.app.state.ctx
    return ctx
