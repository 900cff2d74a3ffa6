"""Starts and watches the Rasa server for `hub serve` (train or reuse the model first)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot import faq_sync
from bot.actions import action_url
from bot.rasa_server import RasaServer
from bot.training import default_model_cache, ensure_model
from hub.context import AppContext

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
RASA_PROJECT = ROOT / "bot" / "rasa"
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"


async def run_rasa(ctx: AppContext) -> None:
    """Background task: model (cached by content hash) -> server -> restart on death."""
    if not RASA_BIN.exists():
        ctx.extra["rasa_state"] = "not installed (run scripts/install_rasa.sh)"
        log.error("Rasa is not installed at %s; the bot hands every chat to agents", RASA_BIN)
        return
    ctx.extra["rasa_state"] = "training"
    try:
        model = await asyncio.to_thread(ensure_model, RASA_PROJECT, RASA_BIN, default_model_cache(), log.info)
    except RuntimeError as exc:
        ctx.extra["rasa_state"] = "training failed"
        log.error("Rasa training failed: %s", exc)
        return
    # Start with the last model trained from the published FAQ when it still fits.
    model, loaded_hash = await faq_sync.initial_model(ctx, RASA_PROJECT, model)
    work_dir = ctx.settings.var_dir / "rasa"
    work_dir.mkdir(parents=True, exist_ok=True)
    server = RasaServer(
        RASA_BIN,
        RASA_PROJECT,
        model,
        ctx.settings.rasa_port,
        action_url(ctx),
        work_dir,
        ctx.settings.var_dir / "rasa.log",
    )
    ctx.extra["rasa_server"] = server
    await server.start()
    sync = faq_sync.FaqSync(
        ctx,
        server,
        RASA_PROJECT,
        RASA_BIN,
        default_model_cache(),
        work_dir / "faq",
        loaded_hash=loaded_hash,
        timing=faq_sync.Timing.from_env(),
    )
    sync_task = asyncio.create_task(sync.run(), name="faq-sync")
    try:
        await server.watch()
    finally:
        sync_task.cancel()
        await asyncio.gather(sync_task, return_exceptions=True)
        await server.stop()
