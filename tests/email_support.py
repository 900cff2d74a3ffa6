"""Shared email test parts: a real local SMTP server (aiosmtpd) that captures what the hub sends,
a hub process with its SMTP receiver on a database of its own, and a tenant whose mail leaves
through that SMTP server. Kept in one place so the email suites start them the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from hub.embedded_db import free_port
from tests.conftest import context_for, make_tenant
from tests.support import HubProcess


class Sink:
    """Collects every mail the hub sends (parsed), through a real aiosmtpd server."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        mail = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        return [Mail(m) for m in self.mails if str(m["To"]) == address]


class Mail:
    """A captured mail with its text part at hand."""

    def __init__(self, message: EmailMessage) -> None:
        self.message = message

    def __getitem__(self, name: str) -> Any:
        return self.message[name]

    def get_body(self, preferencelist: tuple[str, ...]) -> Any:
        return self.message.get_body(preferencelist)

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return str(part.get_content()) if part is not None else ""


def start_sink(port: int | None = None) -> tuple[Controller, Sink]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    return controller, sink


@contextmanager
def running_sink() -> Iterator[tuple[Controller, Sink]]:
    """A started SMTP sink, stopped on exit (the body of each suite's module fixture)."""
    controller, collected = start_sink()
    try:
        yield controller, collected
    finally:
        controller.stop()


@contextmanager
def running_email_hub(var_dir: Path, mongo_uri: str, db: str) -> Iterator[HubProcess]:
    """A hub with its SMTP receiver (hub_nobot has none), on database `db`, stopped on exit."""
    process = HubProcess(
        var_dir,
        mongo_uri,
        f"http://127.0.0.1:{free_port()}",
        env={"HUB_DB_NAME": db, "HUB_SMTP_RECEIVER_PORT": str(free_port())},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def email_tenant(
    mongo_uri: str, db: str, smtp_port: int, agents: dict[str, list[str]], roles: dict[str, list[str]]
) -> dict[str, Any]:
    """A new tenant with a support address (t["address"]) whose mail leaves through the SMTP
    server on `smtp_port`."""
    t = await make_tenant(mongo_uri, db, agents=agents, roles=roles)
    t["address"] = f"support@{t['slug']}.test"
    ctx = context_for(mongo_uri, db)
    try:
        await ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]},
            {"$set": {"email": {"address": t["address"], "smtp": {"host": "127.0.0.1", "port": smtp_port}}}},
        )
    finally:
        await ctx.db.close()
    return t
