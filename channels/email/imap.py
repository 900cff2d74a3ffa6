"""Inbound mail by IMAP (aioimaplib): IDLE where the server supports it, polling otherwise.

One watcher per tenant with `tenants.email.imap`. Unseen mail in INBOX is fetched with
BODY.PEEK[] (which leaves it unseen), handed to `inbound.receive`, and only then flagged \\Seen:
a crash between the two re-fetches the mail, and the Message-ID dedupe in `inbound.receive`
stores it once. Errors (a wrong password, the server going away) are logged and retried;
they never reach the hub.

Tuning (seconds, from the environment): `HUB_IMAP_POLL_S` between polls on servers without
IDLE (30), `HUB_IMAP_RETRY_S` before reconnecting after an error (30), `HUB_IMAP_RELOAD_S`
between re-reads of the tenants' settings (60).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re

import aioimaplib

from channels.email import inbound
from channels.email.config import Server, imap_server
from hub.context import AppContext
from hub.db import Doc

log = logging.getLogger(__name__)
POLL_S = float(os.environ.get("HUB_IMAP_POLL_S", "30"))
RETRY_S = float(os.environ.get("HUB_IMAP_RETRY_S", "30"))
RELOAD_S = float(os.environ.get("HUB_IMAP_RELOAD_S", "60"))
IDLE_S = 25 * 60  # under the 29 minutes RFC 2177 allows
# per command; above dovecot's 15 s maximum auth penalty, so a refused login after earlier
# failures is still reported as a refused login and not as a timeout
COMMAND_TIMEOUT_S = 30.0
_FETCH_HEAD = re.compile(rb"FETCH \(.*BODY\[\] \{\d+\}$")


class LoginFailed(Exception):
    """The server refused the account: retrying helps only once the settings are fixed."""


class Connection:
    """A selected INBOX, and an event set when the server drops the connection (so an IDLE
    or a poll wait ends at once instead of after its full timeout)."""

    def __init__(self, server: Server) -> None:
        self.lost = asyncio.Event()
        self.client: aioimaplib.IMAP4 = (
            aioimaplib.IMAP4_SSL(server.host, server.port, timeout=COMMAND_TIMEOUT_S)
            if server.tls
            else aioimaplib.IMAP4(server.host, server.port, timeout=COMMAND_TIMEOUT_S)
        )
        self.client.protocol.conn_lost_cb = lambda _exc: self.lost.set()

    async def open(self, server: Server) -> None:
        await self.client.wait_hello_from_server()
        response = await self.client.login(server.user or "", server.password or "")
        if response.result != "OK":
            detail = bytes(response.lines[-1]).decode(errors="replace") if response.lines else ""
            raise LoginFailed(detail or response.result)
        # capabilities may change after login (RFC 3501 6.2.3): ask again rather than keep the
        # union aioimaplib builds from the greeting and the login response
        await asyncio.wait_for(self.client.protocol.capability(), self.client.timeout)
        selected = await self.client.select("INBOX")
        if selected.result != "OK":
            raise ConnectionError(f"SELECT INBOX: {selected.result}")

    async def close(self) -> None:
        if not self.lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.logout(), 5)  # short: the hub may be stopping
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()

    async def wait_for_mail(self) -> None:
        """Return when the server reports a change (IDLE) or after the poll interval."""
        if not self.client.has_capability("IDLE"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), POLL_S)
        else:
            idle = await self.client.idle_start(timeout=IDLE_S)
            push = asyncio.ensure_future(self.client.wait_server_push(timeout=IDLE_S + 60))
            gone = asyncio.ensure_future(self.lost.wait())
            try:
                await asyncio.wait({push, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                push.cancel()
                gone.cancel()
            if not self.lost.is_set():
                self.client.idle_done()
                await asyncio.wait_for(idle, self.client.timeout)
        if self.lost.is_set():
            raise ConnectionError("the server closed the connection")


def raw_messages(lines: list[bytes | bytearray]) -> list[bytes]:
    """The mails (BODY[] literals) of a UID FETCH response, as aioimaplib splits it."""
    found: list[bytes] = []
    for index, line in enumerate(lines[:-1]):
        following = lines[index + 1]
        if type(line) is bytes and _FETCH_HEAD.search(line) and isinstance(following, bytearray):
            found.append(bytes(following))
    return found


async def fetch_unseen(ctx: AppContext, client: aioimaplib.IMAP4, address: str) -> int:
    """Store every unseen mail in INBOX; returns how many were handed to `inbound.receive`."""
    # a server reports mail that arrived since the last command only at the end of a command,
    # and SEARCH sees only mail already reported: NOOP first (RFC 3501 6.1.2)
    await client.noop()
    response = await client.uid_search("UNSEEN", charset=None)
    if response.result != "OK":
        raise ConnectionError(f"UID SEARCH UNSEEN: {response.result}")
    uids = [u.decode() for u in bytes(response.lines[0]).split() if u.isdigit()] if response.lines else []
    count = 0
    for uid in uids:
        fetched = await client.uid("fetch", uid, "(BODY.PEEK[])")
        if fetched.result != "OK":
            raise ConnectionError(f"UID FETCH {uid}: {fetched.result}")
        for raw in raw_messages(list(fetched.lines)):
            await inbound.receive(ctx, raw, [address])
            count += 1
        stored = await client.uid("store", uid, "+FLAGS.SILENT", "(\\Seen)")
        if stored.result != "OK":
            raise ConnectionError(f"UID STORE {uid}: {stored.result}")
    return count


async def watch(ctx: AppContext, tenant: Doc) -> None:
    """Fetch, then wait (IDLE or a poll interval), forever; reconnects after errors."""
    server = imap_server(tenant)
    if server is None:
        return
    settings = (tenant.get("email") or {}).get("imap") or {}
    address = ((tenant.get("email") or {}).get("address") or "").lower()
    where = f"{server.user}@{server.host}:{server.port}"
    while True:
        connection = Connection(server)
        try:
            await connection.open(server)
            log.info("IMAP for tenant %s: watching %s", tenant["_id"], where)
            while True:
                await fetch_unseen(ctx, connection.client, address)
                await connection.wait_for_mail()
        except asyncio.CancelledError:
            raise
        except LoginFailed as exc:
            log.error(
                "IMAP login failed for tenant %s as %s (password from $%s): %s; retrying in %g s",
                tenant["_id"],
                where,
                settings.get("password_env") or "-",
                exc,
                RETRY_S,
            )
        except Exception as exc:  # the server went away or misbehaved: try again later
            log.warning(
                "IMAP for tenant %s (%s): %s; reconnecting in %g s",
                tenant["_id"],
                where,
                f"{type(exc).__name__}: {exc}",
                RETRY_S,
            )
        finally:
            await connection.close()
        await asyncio.sleep(RETRY_S)


async def run(ctx: AppContext) -> None:
    """One watcher per tenant with IMAP settings; re-reads the settings every RELOAD_S."""
    watchers: dict[str, tuple[Doc, asyncio.Task[None]]] = {}
    try:
        while True:
            wanted: set[str] = set()
            async for tenant in ctx.db.tenants.find({"email.imap.host": {"$exists": True}}):
                key = str(tenant["_id"])
                wanted.add(key)
                current = watchers.get(key)
                if current is not None and current[0].get("email") == tenant.get("email"):
                    continue
                if current is not None:
                    current[1].cancel()
                watchers[key] = (tenant, asyncio.create_task(watch(ctx, tenant), name=f"imap:{key}"))
            for key in set(watchers) - wanted:  # IMAP removed from the tenant's settings
                watchers.pop(key)[1].cancel()
            await asyncio.sleep(RELOAD_S)
    finally:
        for _, task in watchers.values():
            task.cancel()
