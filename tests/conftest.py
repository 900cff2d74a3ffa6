"""Session fixtures: the real embedded database, a real Rasa server and real hub processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.actions import action_token
from bot.rasa_server import RasaServer
from bot.training import default_model_cache, ensure_model
from hub.context import AppContext
from hub.db import Database
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.ids import new_id
from hub.rasa_supervisor import RASA_BIN, RASA_PROJECT
from hub.settings import Settings
from hub.tenancy import create_tenant, create_user
from tests.support import TEST_SECRET, HubProcess
from tests.twilio_double import TwilioDouble

AGENT_PASSWORD = "password123"


@pytest.fixture(scope="session")
async def mongo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedDatabase]:
    root = tmp_path_factory.mktemp("mongo")
    db = EmbeddedDatabase(root / "db", free_port())
    await db.start()
    yield db
    await db.stop()


def context_for(mongo_uri: str, db_name: str) -> AppContext:
    settings = Settings(secret=TEST_SECRET, db_name=db_name)
    return AppContext(settings=settings, db=Database(mongo_uri, db_name))


@pytest.fixture(scope="session")
async def ctx(mongo: EmbeddedDatabase) -> AsyncIterator[AppContext]:
    """Direct database access for tests that exercise library code."""
    context = context_for(mongo.uri, "hub_lib")
    await context.db.ensure_indexes()
    yield context
    await context.db.close()


@pytest.fixture(scope="session")
def bot_hub_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
async def rasa(tmp_path_factory: pytest.TempPathFactory, bot_hub_port: int) -> AsyncIterator[RasaServer]:
    """A real Rasa server whose custom actions call the `hub` fixture's process."""
    model = await asyncio.to_thread(ensure_model, RASA_PROJECT, RASA_BIN, default_model_cache())
    work = tmp_path_factory.mktemp("rasa")
    url = f"http://127.0.0.1:{bot_hub_port}/webhooks/actions?token={action_token(TEST_SECRET)}"
    server = RasaServer(RASA_BIN, RASA_PROJECT, model, free_port(), url, work)
    await server.start()
    assert await server.wait_ready(240), f"Rasa did not start; see {server.log_path}"
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def hub(
    tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase, rasa: RasaServer, bot_hub_port: int
) -> Iterator[HubProcess]:
    """A hub process with the real Rasa bot."""
    process = HubProcess(
        tmp_path_factory.mktemp("hub"), mongo.uri, rasa.url, port=bot_hub_port, env={"HUB_DB_NAME": "hub_bot"}
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def twilio_api() -> Iterator[TwilioDouble]:
    """A local Twilio REST API double (tests/twilio_double.py) that hub processes call."""
    double = TwilioDouble()
    double.start()
    yield double
    double.stop()


@pytest.fixture
def twilio_double(twilio_api: TwilioDouble) -> TwilioDouble:
    """The session's Twilio double, with nothing recorded yet."""
    twilio_api.reset()
    return twilio_api


@pytest.fixture(scope="session")
def hub_nobot(
    tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase, twilio_api: TwilioDouble
) -> Iterator[HubProcess]:
    """A hub whose Rasa is down (closed port): every chat is handed to agents. Its Twilio is
    the `twilio_api` double."""
    process = HubProcess(
        tmp_path_factory.mktemp("hub_nobot"),
        mongo.uri,
        f"http://127.0.0.1:{free_port()}",
        env={"HUB_DB_NAME": "hub_nobot", **twilio_api.env()},
    )
    process.start()
    yield process
    process.stop()


TenantFactory = Callable[..., Awaitable[dict[str, Any]]]


async def make_tenant(
    mongo_uri: str,
    db_name: str,
    agents: dict[str, list[str]] | None = None,
    roles: dict[str, list[str]] | None = None,
    level: str = "customer",
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh tenant (unique slug) with agents `{"ann": ["billing"], ...}` (emails ann@t.test),
    optionally at `level` below the `parent` tenant document."""
    context = context_for(mongo_uri, db_name)
    try:
        slug = f"t-{new_id()[:10]}"
        tenant = await create_tenant(context, slug, f"Tenant {slug}", level=level, parent=parent)
        users = {}
        for name, skills in (
            agents or {"ann": ["billing", "general"], "ben": ["technical", "general"]}
        ).items():
            users[name] = await create_user(
                context,
                tenant["_id"],
                f"{name}@t.test",
                name.title(),
                AGENT_PASSWORD,
                (roles or {}).get(name, ["agent"]),
                skills,
            )
        return {"slug": slug, "tenant": tenant, "users": users}
    finally:
        await context.db.close()


@pytest.fixture
def tenant_in(mongo: EmbeddedDatabase) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def factory(hub_process: HubProcess, **kwargs: Any) -> dict[str, Any]:
        return await make_tenant(mongo.uri, hub_process.env["HUB_DB_NAME"], **kwargs)

    return factory


@pytest.fixture(scope="session")
def root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def sms_tenant(hub_nobot: HubProcess, tenant_in: TenantFactory) -> AsyncIterator[dict[str, Any]]:
    """A tenant owning an SMS number on the shared hub, with a DB context and the webhook URL."""
    from hub.embedded_db import free_port

    t = await tenant_in(hub_nobot)
    number = f"+1500555{free_port() % 10000:04d}"
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    await ctx.db.tenants.update_one({"_id": t["tenant"]["_id"]}, {"$set": {"sms_numbers": [number]}})
    t["number"], t["ctx"], t["url"] = number, ctx, f"{hub_nobot.url}/twilio/sms"
    yield t
    await ctx.db.close()
