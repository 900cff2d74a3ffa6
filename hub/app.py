"""The FastAPI application factory and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pymongo.errors import PyMongoError

from billing import accounts as billing_accounts
from billing.rater import Rater
from bot import actions, csat
from bot.rasa_client import RasaClient
from bot.turns import BotTurns
from channels.email import api as email_api
from channels.email import campaign as email_campaign
from channels.email import imap as email_imap
from channels.email import inbound as email_inbound
from channels.email import receiver as email_receiver
from channels.email import relay as email_relay
from channels.email import unsubscribe as email_unsubscribe
from channels.email.sender import SmtpEmailSender
from channels.sms import campaign as sms_campaign
from channels.sms import relay as sms_relay
from channels.sms import webhook as sms_webhook
from channels.sms.sender import TwilioSmsSender
from channels.twilio import media as twilio_media
from channels.twilio import outbound as twilio_outbound
from channels.twilio import voice as twilio_voice
from channels.webchat import assets as webchat_assets
from channels.webchat import socket as webchat_socket
from channels.webrtc import call as webrtc_call
from channels.webrtc import softphone as webrtc_softphone
from dashboard import admin_api as dashboard_admin
from dashboard import announcements_api as dashboard_announcements
from dashboard import api as dashboard_api
from dashboard import approvals_api as dashboard_approvals
from dashboard import audit_api as dashboard_audit
from dashboard import billing_api as dashboard_billing
from dashboard import bot_analytics_api as dashboard_bot_analytics
from dashboard import branding_api as dashboard_branding
from dashboard import calls_api as dashboard_calls
from dashboard import campaigns_api as dashboard_campaigns
from dashboard import canned_api as dashboard_canned
from dashboard import dnc_api as dashboard_dnc
from dashboard import help_center as dashboard_help_center
from dashboard import ivr_api as dashboard_ivr
from dashboard import kb_api as dashboard_kb
from dashboard import kb_stats_api as dashboard_kb_stats
from dashboard import kb_sync_api as dashboard_kb_sync
from dashboard import lists_api as dashboard_lists
from dashboard import live as dashboard_live
from dashboard import pages as dashboard_pages
from dashboard import quality_api as dashboard_quality
from dashboard import questionnaire_form as dashboard_questionnaire_form
from dashboard import questionnaires_api as dashboard_questionnaires
from dashboard import recordings_api as dashboard_recordings
from dashboard import report_schedules_api as dashboard_report_schedules
from dashboard import reports_api as dashboard_reports
from dashboard import routing_api as dashboard_routing
from dashboard import tasks_api as dashboard_tasks
from dashboard import telephony_api as dashboard_telephony
from dashboard import wallboard as dashboard_wallboard
from dashboard import workforce_api as dashboard_workforce
from hub import logmask, outbox
from hub.audit_middleware import AuditMiddleware
from hub.auth import PasswordChangeRequired, password_change_refusal
from hub.context import AppContext
from hub.csrf import CsrfMiddleware
from hub.db import Database
from hub.embedded_db import EmbeddedDatabase, port_is_open
from hub.events import EventBus
from hub.ratelimit import WebhookRateLimit
from hub.security_headers import SecurityHeaders
from hub.settings import Settings
from media.models import ModelsConfig
from media.readiness import dtmf_only_numbers, speech_status
from media.retention import retention_loop
from reports import schedule as report_schedule
from reports.facts import FactUpdater
from routing.assignment import Router
from routing.dialer import Dialer

log = logging.getLogger(__name__)
Starter = Callable[[AppContext], Coroutine[Any, Any, None]]
STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"


async def wait_for_db(db: Database, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await db.ping():
        if loop.time() > deadline:
            raise RuntimeError("database did not answer; is MONGODB_URI right?")
        await asyncio.sleep(0.5)


def create_app(settings: Settings | None = None, starters: list[Starter] | None = None) -> FastAPI:
    """Build the hub. `starters` run as background tasks once the database is up (e.g. Rasa)."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logmask.install()  # uvicorn has set up its handlers by now: mask personal data in them
        embedded: EmbeddedDatabase | None = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedDatabase(settings.var_dir / "db", settings.embedded_db_port)
            if not port_is_open("127.0.0.1", settings.embedded_db_port):
                await embedded.start()
            uri = embedded.uri
        db = Database(uri, settings.db_name)
        await wait_for_db(db)
        await db.ensure_indexes()
        ctx = AppContext(settings=settings, db=db, bus=EventBus())
        ctx.extra["embedded_db"] = embedded
        ctx.rasa = RasaClient(settings.rasa_url, settings.rasa_timeout_s)
        ctx.router = Router(ctx)
        ctx.bot = BotTurns(ctx)
        app.state.ctx = ctx
        tasks = [
            asyncio.create_task(ctx.router.run(), name="router"),
            asyncio.create_task(retention_loop(ctx), name="recording-retention"),
        ]
        dialer = Dialer(
            ctx,
            place=twilio_outbound.place_call,
            hang_up=lambda call_sid: twilio_outbound.hang_up(ctx, call_sid),
            send_text=sms_campaign.send_campaign_text,
            send_mail=email_campaign.send_campaign_mail,
        )
        # billing's low-balance stop, consulted by the dialer (routing never imports billing)
        ctx.extra.setdefault("outbound_guards", []).append(billing_accounts.may_place_outbound)
        dialer.install()
        ctx.extra["dialer"] = dialer
        tasks.append(asyncio.create_task(dialer.run(), name="dialer"))
        tasks += [
            asyncio.create_task(start(ctx), name=getattr(start, "__name__", "starter"))
            for start in starters or []
        ]
        outbox.register(ctx, "sms", TwilioSmsSender())
        ctx.extra.setdefault("message_hooks", []).append(sms_relay.on_message)
        await sms_relay.resend_pending(ctx)
        outbox.register(ctx, "email", SmtpEmailSender())
        ctx.extra["message_hooks"].append(email_relay.on_message)
        ctx.extra.setdefault("agent_closed_hooks", []).append(csat.ask)
        await email_relay.resend_pending(ctx)
        await email_inbound.recover(ctx)
        tasks.append(asyncio.create_task(email_imap.run(ctx), name="imap"))
        smtp_port, smtp_host = email_receiver.configured_port(), email_receiver.configured_host()
        smtp_server = await email_receiver.start(ctx, smtp_host, smtp_port) if smtp_port else None
        tasks.append(asyncio.create_task(outbox.run(ctx), name="outbox"))
        tasks.append(asyncio.create_task(FactUpdater(ctx).run(), name="contact-facts"))
        tasks.append(asyncio.create_task(Rater(ctx).run(), name="billing-rater"))
        mail_report = email_relay.send_report_mail  # reports/ never imports a channel
        tasks.append(asyncio.create_task(report_schedule.run(ctx, mail_report), name="report-schedules"))
        await ctx.bot.recover()
        log.info("hub ready on %s", settings.public_url)
        try:
            yield
        finally:
            if smtp_server is not None:
                smtp_server.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            desk = ctx.extra.get("voice_desk")
            if desk is not None:
                with contextlib.suppress(Exception):
                    await desk.close()
            await ctx.rasa.close()
            await twilio_outbound.close_rest_client(ctx)
            await db.close()
            if embedded is not None:
                await embedded.stop()

    app = FastAPI(title="Contact hub", lifespan=lifespan)

    # innermost first: the audit sees only requests the CSRF check let through; webhook limits
    # answer before anything else; every answer (429 and 403 included) gets the headers
    app.add_middleware(AuditMiddleware, settings=settings)
    app.add_middleware(CsrfMiddleware, settings=settings)
    app.add_middleware(WebhookRateLimit, settings=settings)
    app.add_middleware(SecurityHeaders, settings=settings)

    # 403 with code password_change_required: the pages send the user to the password form
    app.add_exception_handler(PasswordChangeRequired, password_change_refusal)

    @app.exception_handler(PyMongoError)
    async def storage_unavailable(request: Request, exc: PyMongoError) -> JSONResponse:
        log.warning("database error on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": "storage unavailable, retry shortly"}, status_code=503, headers={"Retry-After": "2"}
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        ctx: AppContext = request.app.state.ctx
        return await health(ctx)

    for module in (
        actions,
        webchat_assets,
        webchat_socket,
        dashboard_kb_sync,  # before any /api/kb/{id} route that would shadow /api/kb/bot-sync
        dashboard_kb_stats,  # likewise for /api/kb/stats and /api/kb/usage/view
        dashboard_help_center,
        dashboard_api,
        dashboard_announcements,
        dashboard_ivr,
        dashboard_live,
        dashboard_pages,
        dashboard_tasks,
        dashboard_routing,
        dashboard_quality,
        dashboard_recordings,
        dashboard_wallboard,
        dashboard_workforce,  # /api/reports/erlang, /staffing: before any /api/reports/{...} route
        dashboard_bot_analytics,  # /api/reports/bot
        dashboard_report_schedules,  # /api/reports/schedules
        dashboard_reports,  # /api/reports/historical, /api/reports/templates/{report}
        twilio_voice,
        twilio_media,
        twilio_outbound,
        sms_webhook,
        email_api,
        email_unsubscribe,
        dashboard_canned,
        webrtc_call,
        webrtc_softphone,
        dashboard_calls,
        dashboard_campaigns,
        dashboard_lists,
        dashboard_dnc,
        dashboard_approvals,
        dashboard_audit,  # /api/audit
        dashboard_telephony,  # /api/admin/telephony/...
        dashboard_admin,  # /api/admin/tenants, users, roles, branding; /api/me/password
        dashboard_branding,  # public /branding/{slug}: the login page
        dashboard_billing,
        dashboard_questionnaires,
        dashboard_questionnaire_form,
        dashboard_kb,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def health(ctx: AppContext) -> JSONResponse:
    db_ok = await ctx.db.ping()
    rasa_ok = ctx.rasa is not None and await ctx.rasa.ready()
    server = ctx.extra.get("rasa_server")
    rasa_state = (
        "ok" if rasa_ok else (getattr(server, "state", None) or ctx.extra.get("rasa_state") or "down")
    )
    embedded: EmbeddedDatabase | None = ctx.extra.get("embedded_db")
    speech = speech_status(
        ctx.settings.asr_model, ctx.settings.tts_voice, ModelsConfig(ctx.settings.models_dir)
    )
    components: dict[str, Any] = {
        "db": "ok" if db_ok else "down",
        "rasa": rasa_state,
        "embedded_db": "external"
        if embedded is None
        else ("running" if embedded.running or db_ok else "down"),
        "asr": speech["asr"],
        "tts": speech["tts"],
    }
    body: dict[str, Any] = {
        "status": "ok" if db_ok and rasa_ok else ("degraded" if db_ok else "down"),
        "components": components,
    }
    if db_ok:
        # a count only: this endpoint is public, the numbers are in GET /api/ivr/speech
        body["dtmf_only_numbers"] = len(await dtmf_only_numbers(ctx))
    return JSONResponse(body, status_code=200 if db_ok else 503)
