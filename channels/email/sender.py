"""The outbox's email sender: SMTP through aiosmtplib, with the tenant's server settings.

SMTP cannot be asked "did you already get this?", so right after the server accepts a mail the
sender writes `smtp_accepted` (the Message-ID) on the outbox row; `find_sent` answers from it
after a crash. The window left is between the server's 250 reply and that one write.
"""

from __future__ import annotations

import aiosmtplib

from channels.email.compose import build
from channels.email.config import smtp_server
from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow
from hub.outbox import SendError

CHANNEL = "email"
TIMEOUT_S = 30.0


class SmtpEmailSender:
    """Registered with the outbox as channel "email"."""

    async def send(self, ctx: AppContext, row: Doc) -> str:
        tenant = await ctx.db.tenants.find_one({"_id": row["tenant_id"]})
        server = smtp_server(tenant or {})
        if server is None:
            raise SendError("no SMTP server configured for this tenant", retryable=False, code="no_smtp")
        message = build(row)
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.user,
                password=server.password,
                start_tls=server.tls,
                timeout=TIMEOUT_S,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendError(str(exc), retryable=False, code="refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(exc.message, retryable=exc.code < 500, code=str(exc.code)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(str(exc) or type(exc).__name__, retryable=True, code="network") from exc
        message_id = str(message["Message-ID"])
        await ctx.db.outbox.update_one(
            {"_id": row["_id"]}, {"$set": {"smtp_accepted": message_id, "smtp_accepted_at": utcnow()}}
        )
        return message_id

    async def find_sent(self, ctx: AppContext, row: Doc) -> str | None:
        stored = await ctx.db.outbox.find_one({"_id": row["_id"]}, {"smtp_accepted": 1})
        return str(stored["smtp_accepted"]) if stored and stored.get("smtp_accepted") else None
