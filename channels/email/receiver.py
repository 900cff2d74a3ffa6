"""The optional SMTP receiver (aiosmtpd), started by the hub when HUB_SMTP_RECEIVER_PORT is set.

Why in the hub's own event loop (not aiosmtpd's threaded Controller): handlers then share the
hub's database client and bus. Recipients no tenant owns are refused at RCPT (550); a database
outage answers 451 so the sending server retries later and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from pymongo.errors import PyMongoError

from channels.email import inbound
from channels.email.config import tenant_of_address
from hub.context import AppContext

log = logging.getLogger(__name__)
# Above the 25 MB attachment limit, so an oversized mail still arrives and gets a clear bounce.
DATA_SIZE_LIMIT = 40 * 1024 * 1024


class Handler:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            tenant = await tenant_of_address(self.ctx, address)
        except PyMongoError:
            return "451 4.3.0 temporarily unavailable, try again later"
        if tenant is None:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        try:
            await inbound.receive(self.ctx, data, [str(r) for r in envelope.rcpt_tos])
        except PyMongoError as exc:
            log.warning("SMTP receiver: database error, asking the sender to retry: %s", exc)
            return "451 4.3.0 temporarily unavailable, try again later"
        return "250 Message accepted"


async def start(ctx: AppContext, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    handler = Handler(ctx)

    def factory() -> Any:
        return SMTP(handler, data_size_limit=DATA_SIZE_LIMIT, decode_data=False, loop=loop)

    server = await loop.create_server(factory, host, port)
    log.info("SMTP receiver on %s:%s", host, port)
    return server


def configured_port() -> int | None:
    value = os.environ.get("HUB_SMTP_RECEIVER_PORT")
    return int(value) if value else None


def configured_host() -> str:
    return os.environ.get("HUB_SMTP_RECEIVER_HOST", "127.0.0.1")
