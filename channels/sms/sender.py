"""The outbox's SMS sender: Twilio Messaging through the real `twilio` client.

Twilio's Messages API has no idempotency key, so `find_sent` looks a crashed send up by
recipient, sender number and body among the messages created since the send started.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException

from channels.twilio.outbound import client_for
from hub.context import AppContext
from hub.db import Doc
from hub.outbox import SendError

log = logging.getLogger(__name__)
CHANNEL = "sms"
CLOCK_SLACK = timedelta(minutes=2)  # provider and hub clocks differ a little


def status_callback_url(ctx: AppContext, outbox_id: str) -> str:
    return f"{ctx.settings.public_url}/twilio/sms/status?{urlencode({'outbox': outbox_id})}"


def _error(exc: Exception) -> SendError:
    if isinstance(exc, TwilioRestException):
        retryable = exc.status >= 500 or exc.status == 429
        return SendError(exc.msg or str(exc), retryable=retryable, code=str(exc.code or exc.status))
    return SendError(str(exc) or type(exc).__name__, retryable=True, code="network")


class TwilioSmsSender:
    """Registered with the outbox as channel "sms"."""

    async def send(self, ctx: AppContext, row: Doc) -> str:
        meta = row.get("meta") or {}
        if not meta.get("transactional"):
            customer = await ctx.db.customers.find_one(
                {"tenant_id": row["tenant_id"], "phones": row["to"], "sms_opt_out": True}, {"_id": 1}
            )
            if customer is not None:
                raise SendError("the recipient opted out (STOP)", retryable=False, code="opted_out")
        try:
            client = await client_for(ctx, row["tenant_id"])
            message = await client.messages.create_async(
                to=row["to"],
                from_=meta["from"],
                body=row["body"],
                status_callback=status_callback_url(ctx, row["_id"]),
            )
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc) from exc
        return str(message.sid)

    async def find_sent(self, ctx: AppContext, row: Doc) -> str | None:
        meta = row.get("meta") or {}
        started = row.get("send_started_at")
        try:
            messages = (await client_for(ctx, row["tenant_id"])).messages
            if started is not None:
                found = await messages.list_async(
                    to=row["to"], from_=meta["from"], date_sent_after=started - CLOCK_SLACK
                )
            else:
                found = await messages.list_async(to=row["to"], from_=meta["from"])
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            raise _error(exc) from exc
        for message in found:
            if message.body == row["body"]:
                return str(message.sid)
        return None
