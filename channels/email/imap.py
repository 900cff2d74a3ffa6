"""Inbound mail by IMAP (aioimaplib): IDLE where the server supports it, polling otherwise.

One watcher per tenant with `tenants.email.imap`. Unseen mail in INBOX is fetched, handed to
`inbound.receive`, then flagged \\Seen; a crash between the two re-fetches the mail, and the
Message-ID dedupe in `inbound.receive` stores it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import aioimaplib

from channels.email import inbound
from channels.email.config import Server, imap_server
from hub.context import AppContext
from hub.db import Doc

log = logging.getLogger(__name__)
POLL_S = 30.0
IDLE_S = 25 * 60  # under the 29 minutes RFC 2177 allows
RELOAD_S = 60.0
_FETCH_HEAD = re.compile(rb"UID (\d+)")


async def connect(server: Server) -> aioimaplib.IMAP4:
    client: aioimaplib.IMAP4 = (
        aioimaplib.IMAP4_SSL(server.host, server.port)
        if server.tls
        else aioimaplib.IMAP4(server.host, server.port)
    )
    await client.wait_hello_from_server()
    response = await client.login(server.user or "", server.password or "")
    if response.result != "OK":
        raise ConnectionError(f"IMAP login failed: {response.lines[-1]!r}")
    await client.select("INBOX")
    return client


def raw_messages(lines: list[bytes | bytearray]) -> list[tuple[str, bytes]]:
    """(uid, raw mail) pairs from a UID FETCH (RFC822) response."""
    found: list[tuple[str, bytes]] = []
    for index, line in enumerate(lines[:-1]):
        head = _FETCH_HEAD.search(bytes(line)) if isinstance(line, bytes) else None
        if head and b"RFC822" in line and isinstance(lines[index + 1], bytearray):
            found.append((head.group(1).decode(), bytes(lines[index + 1])))
    return found


async def fetch_unseen(ctx: AppContext, client: aioimaplib.IMAP4, address: str) -> int:
    response = await client.uid_search("UNSEEN")
    uids = bytes(response.lines[0]).split() if response.lines else []
    count = 0
    for uid in uids:
        fetched = await client.uid("fetch", uid.decode(), "(RFC822)")
        for _, raw in raw_messages(list(fetched.lines)):
            await inbound.receive(ctx, raw, [address])
            count += 1
        await client.uid("store", uid.decode(), "+FLAGS", "(\\Seen)")
    return count


async def watch(ctx: AppContext, tenant: Doc) -> None:
    """Fetch, then wait (IDLE or a poll interval), forever; reconnects after errors."""
    server = imap_server(tenant)
    address = ((tenant.get("email") or {}).get("address") or "").lower()
    if server is None:
        return
    while True:
        client = None
        try:
            client = await connect(server)
            while True:
                await fetch_unseen(ctx, client, address)
                if client.has_capability("IDLE"):
                    idle = await client.idle_start(timeout=IDLE_S)
                    with contextlib.suppress(TimeoutError):
                        await client.wait_server_push(timeout=IDLE_S)
                    client.idle_done()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(idle, 10)
                else:
                    await asyncio.sleep(POLL_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server went away: try again later
            log.warning("IMAP for tenant %s: %s", tenant["_id"], exc)
            await asyncio.sleep(POLL_S)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.logout()


async def run(ctx: AppContext) -> None:
    """One watcher per tenant with IMAP settings; re-reads the settings every minute."""
    watchers: dict[str, tuple[Doc, asyncio.Task[None]]] = {}
    try:
        while True:
            async for tenant in ctx.db.tenants.find({"email.imap.host": {"$exists": True}}):
                key = str(tenant["_id"])
                current = watchers.get(key)
                if current is not None and current[0].get("email") == tenant.get("email"):
                    continue
                if current is not None:
                    current[1].cancel()
                watchers[key] = (tenant, asyncio.create_task(watch(ctx, tenant), name=f"imap:{key}"))
            await asyncio.sleep(RELOAD_S)
    finally:
        for _, task in watchers.values():
            task.cancel()
