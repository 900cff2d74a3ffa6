"""Screen pop on offer and on connect, KB suggestions from the live transcript, and
broadcast announcements, against real hub processes and the embedded database.

Most tests use the hub whose Rasa is down (every chat is queued for agents at once); the
last-intent test talks to the real Rasa server.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import websockets

from dashboard.screen_pop import ivr_step, snippet
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from knowledge.kb import upsert_article
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess, Widget

ROUTER_BODY = (
    "Connect the grey DSL cable to the wall socket and the router. Wait until the router light turns "
    "solid white (about 10 minutes). The Wi-Fi name and password are on the back label."
)
ARTICLES = [
    ("Setting up your router", ROUTER_BODY, ["router", "wifi", "setup"]),
    ("Mobile roaming", "Roaming in the EU and UK is included in every mobile plan.", ["roaming", "travel"]),
    (
        "Paperless billing",
        "Switch to paperless billing in the portal under Billing > Preferences. Paper bills stop next month.",
        ["paperless", "bill"],
    ),
]
DIGITS = str.maketrans("abcdef", "123456")
QUESTION = "How do I set up my new router? The wifi light keeps blinking"


async def seed(mongo: EmbeddedDatabase, hub: HubProcess, tenant_id: str) -> None:
    context = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        for title, body, tags in ARTICLES:
            await upsert_article(context, tenant_id, title, body, tags)
    finally:
        await context.db.close()


async def db_do(mongo: EmbeddedDatabase, hub: HubProcess, fn: Any) -> Any:
    """Run `fn(db)` against the hub's database."""
    context = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        return await fn(context.db)
    finally:
        await context.db.close()


async def agent(hub: HubProcess, slug: str, name: str) -> Agent:
    client = Agent(hub.url, slug, f"{name}@t.test")
    await client.login()
    return client


def token(client: Agent) -> str:
    return str(client.http.headers["Authorization"].split()[1])


class Desk:
    """An agent's live socket (/ws/agent?token=), collecting frames."""

    def __init__(self, hub: HubProcess, client: Agent) -> None:
        self.url = f"{hub.ws_url}/ws/agent?token={token(client)}"
        self.ws: Any = None
        self.frames: list[dict[str, Any]] = []

    async def __aenter__(self) -> Desk:
        self.ws = await websockets.connect(self.url)
        await self.next("ready")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next frame of this type (other frames are kept in `frames`)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} frame; got {self.frames[-5:]}")
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), remaining))
            self.frames.append(frame)
            if frame.get("type") == kind:
                return dict(frame)


# ------------------------------------------------------------------------------ pure helpers


def test_ivr_step_labels_read_like_the_flow() -> None:
    menu = {"type": "menu", "prompt": {"text": "For billing press 1, for a technician press 2."}}
    assert ivr_step("main", menu) == {
        "id": "main",
        "type": "menu",
        "text": "For billing press 1, for a technician press 2.",
        "label": "main (menu): For billing press 1, for a technician press 2.",
    }
    queue = ivr_step("billing", {"type": "queue", "skill": "billing", "prompt": {"text": "Please hold."}})
    assert queue["text"] == "queue for billing: Please hold."
    assert ivr_step("bal", {"type": "lookup", "kind": "balance", "next": "x"})["text"] == (
        "self-service lookup: balance"
    )
    assert ivr_step("gone", None) == {"id": "gone", "type": None, "text": None, "label": "gone"}
    long = ivr_step("say", {"type": "say", "prompt": {"text": "x" * 200}, "next": "y"})
    assert len(long["text"]) == 90 and long["text"].endswith("…")


def test_snippet_prefers_the_sentence_that_matches() -> None:
    assert snippet(ROUTER_BODY, {"password"}) == "The Wi-Fi name and password are on the back label."
    assert snippet(ROUTER_BODY, {"nothing"}).startswith("Connect the grey DSL cable")
    assert len(snippet("word " * 100, set())) <= 181


# ------------------------------------------------------------------------------ screen pop


async def test_offer_pop_then_screen_pop_with_context_and_live_suggestions(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub,
        agents={"ann": ["general"], "ben": ["general"], "sam": ["general"]},
        roles={"sam": ["supervisor"]},
    )
    other = await tenant_in(hub, agents={"olga": ["general"]})
    tenant_id = t["tenant"]["_id"]
    await seed(mongo, hub, tenant_id)

    # a known customer (gold tier, one earlier contact) asks about the router
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    await widget.send({"type": "identify", "email": "grace@example.com", "name": "Grace Hopper"})
    await widget.expect("identified")
    customer = await db_do(
        mongo, hub, lambda db: db.customers.find_one({"tenant_id": tenant_id, "emails": "grace@example.com"})
    )
    await db_do(
        mongo,
        hub,
        lambda db: db.customers.update_one({"_id": customer["_id"]}, {"$set": {"segment": "gold"}}),
    )
    earlier = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": "voice",
        "status": "closed",
        "customer_id": customer["_id"],
        "opened_at": utcnow() - timedelta(days=3),
        "closed_at": utcnow() - timedelta(days=3),
        "disposition": "resolved",
    }
    await db_do(mongo, hub, lambda db: db.contacts.insert_one(earlier))
    ack = await widget.say(QUESTION)
    contact_id = ack["contact_id"]
    await widget.wait_status("queued")

    ann, ben, sam = [await agent(hub, t["slug"], n) for n in ("ann", "ben", "sam")]
    olga = await agent(hub, other["slug"], "olga")
    try:
        async with Desk(hub, ann) as desk:
            await ann.available()
            # ---- on offer: the pop travels with the offer pushed on the socket ...
            pushed = (await desk.next("offer"))["offer"]
            assert pushed["contact_id"] == contact_id
            expected = {
                "channel": "webchat",
                "customer_name": "Grace Hopper",
                "customer_tier": "gold",
                "previous_contacts": 1,
                "preview": QUESTION,
                "reason": "bot_unavailable",
                "queue": "general",
            }
            assert {k: pushed[k] for k in expected} == expected
            # ... and with the offers listed over HTTP
            listed = await ann.wait_offer(contact_id)
            assert {k: listed[k] for k in expected} == expected

        # the offered agent may open the screen pop before accepting; nobody else may
        pop = (await ann.http.get(f"/api/contacts/{contact_id}")).json()
        assert pop["context"]["reason"] == "bot_unavailable"
        assert (await ben.http.get(f"/api/contacts/{contact_id}")).status_code == 403
        assert (await ben.http.get(f"/api/contacts/{contact_id}/suggestions")).status_code == 403
        assert (await olga.http.get(f"/api/contacts/{contact_id}")).status_code == 404
        assert (await olga.http.get(f"/api/contacts/{contact_id}/suggestions")).status_code == 404

        # ---- on connect: customer, call context, suggestions, history
        assert (await ann.http.post(f"/api/contacts/{contact_id}/accept")).status_code == 200
        pop = (await ann.http.get(f"/api/contacts/{contact_id}")).json()
        assert pop["customer"]["name"] == "Grace Hopper"
        assert [h["id"] for h in pop["history"]] == [earlier["_id"]]
        context = pop["context"]
        assert {k: context[k] for k in ("channel", "reason", "skill", "queue_name", "ivr_path")} == {
            "channel": "webchat",
            "reason": "bot_unavailable",
            "skill": "general",
            "queue_name": "general",
            "ivr_path": [],
        }
        assert context["intent"] is None and context["from_number"] is None
        assert context["wait_s"] is not None and 0 <= context["wait_s"] < 60
        assert context["assigned_at"] and context["queued_at"]
        suggestions = pop["suggestions"]
        assert 1 <= len(suggestions) <= 3
        assert suggestions[0]["title"] == "Setting up your router"
        assert suggestions[0]["body"] == ROUTER_BODY
        assert "router" in suggestions[0]["snippet"].lower()

        # ---- the transcript grows: fresh suggestions follow the customer's latest question
        await widget.say("And how do I switch to paperless billing?")
        fresh = (await ann.http.get(f"/api/contacts/{contact_id}/suggestions")).json()
        assert fresh["contact_id"] == contact_id
        titles = [s["title"] for s in fresh["suggestions"]]
        assert titles[0] == "Paperless billing" and "Setting up your router" in titles
        assert len(titles) <= 3

        # after the accept: still only the holder and supervisors
        assert (await ben.http.get(f"/api/contacts/{contact_id}")).status_code == 403
        supervised = await sam.http.get(f"/api/contacts/{contact_id}")
        assert supervised.status_code == 200 and supervised.json()["context"]["channel"] == "webchat"
    finally:
        await widget.close()
        for client in (ann, ben, sam, olga):
            await client.close()


async def test_no_visitor_words_means_no_suggestions(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    tenant_id = t["tenant"]["_id"]
    await seed(mongo, hub, tenant_id)
    contact = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": "webchat",
        "status": "bot",
        "next_seq": 0,
        "opened_at": utcnow(),
        "updated_at": utcnow(),
    }
    await db_do(mongo, hub, lambda db: db.contacts.insert_one(contact))
    sam = await agent(hub, t["slug"], "sam")
    try:
        pop = (await sam.http.get(f"/api/contacts/{contact['_id']}")).json()
        assert pop["suggestions"] == [] and pop["context"]["wait_s"] is None
        fresh = (await sam.http.get(f"/api/contacts/{contact['_id']}/suggestions")).json()
        assert fresh["suggestions"] == []
    finally:
        await sam.close()


async def test_voice_call_context_shows_the_ivr_path_number_and_wait(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    """A finished call keeps a snapshot of its flow; a live call's path is read against the
    stored flow."""
    hub = hub_nobot
    t = await tenant_in(hub, agents={"ann": ["billing"], "ben": ["billing"]})
    tenant_id = t["tenant"]["_id"]
    ann_id = t["users"]["ann"]["_id"]
    nodes = {
        "main": {
            "type": "menu",
            "prompt": {"text": "For billing press 1, for a technician press 2."},
            "options": [{"key": "1", "phrases": [], "next": "billing"}],
        },
        "billing": {"type": "queue", "skill": "billing", "prompt": {"text": "Connecting you to billing."}},
    }
    queued = utcnow() - timedelta(seconds=95)
    base = {
        "tenant_id": tenant_id,
        "channel": "voice",
        "status": "assigned",
        "agent_id": ann_id,
        "agent_name": "Ann",
        "next_seq": 0,
        "opened_at": queued - timedelta(seconds=30),
        "updated_at": utcnow(),
        "queued_at": queued,
        "assigned_at": queued + timedelta(seconds=42),
        "skill": "billing",
        "reason": "ivr_selection",
        "queue_name": "billing",
        "from_number": "+14155550123",
        "ivr_path": ["main", "billing"],
        "intent": "check_balance",
    }
    finished = {**base, "_id": new_id(), "ivr_state": {"flow": {"nodes": nodes}, "path": ["main", "billing"]}}
    flow = {"_id": new_id(), "tenant_id": tenant_id, "number": f"+1555{new_id()[:7].translate(DIGITS)}"}
    live = {**base, "_id": new_id(), "flow_id": flow["_id"], "intent": None}

    async def insert(db: Any) -> None:
        await db.ivr_flows.insert_one({**flow, "nodes": nodes})
        await db.contacts.insert_many([finished, live])

    await db_do(mongo, hub, insert)
    ann = await agent(hub, t["slug"], "ann")
    ben = await agent(hub, t["slug"], "ben")
    try:
        for contact in (finished, live):
            pop = (await ann.http.get(f"/api/contacts/{contact['_id']}")).json()
            context = pop["context"]
            assert context["channel"] == "voice" and context["from_number"] == "+14155550123"
            assert context["wait_s"] == 42.0
            assert [s["label"] for s in context["ivr_path"]] == [
                "main (menu): For billing press 1, for a technician press 2.",
                "billing (queue): queue for billing: Connecting you to billing.",
            ]
            assert [s["type"] for s in context["ivr_path"]] == ["menu", "queue"]
            assert pop["suggestions"] == []
            assert (await ben.http.get(f"/api/contacts/{contact['_id']}")).status_code == 403
        assert (await ann.http.get(f"/api/contacts/{finished['_id']}")).json()["context"]["intent"] == (
            "check_balance"
        )
        # Rasa is down here: a live call's intent is simply unknown
        assert (await ann.http.get(f"/api/contacts/{live['_id']}")).json()["context"]["intent"] is None
    finally:
        await ann.close()
        await ben.close()


@pytest.mark.rasa
async def test_the_bot_turn_stores_the_last_detected_intent(
    hub: HubProcess, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(hub, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    sam = await agent(hub, t["slug"], "sam")
    try:
        ack = await widget.say("What are your opening hours?")
        await widget.reply_from("bot", ack["seq"])
        deadline = time.monotonic() + 10
        context: dict[str, Any] = {}
        while time.monotonic() < deadline:
            context = (await sam.http.get(f"/api/contacts/{ack['contact_id']}")).json()["context"]
            if context["last_intent"]:
                break
            await asyncio.sleep(0.2)
        assert context["last_intent"] == "opening_hours" and context["intent"] == "opening_hours"
    finally:
        await widget.close()
        await sam.close()


# ------------------------------------------------------------------------------ announcements


async def test_announcements_reach_only_their_audience(
    hub_nobot: HubProcess, tenant_in: TenantFactory
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub,
        agents={"ann": ["billing"], "ben": ["technical"], "sam": ["general"]},
        roles={"sam": ["supervisor"]},
    )
    other = await tenant_in(hub, agents={"olga": ["billing"], "otto": []}, roles={"otto": ["supervisor"]})
    ann, ben, sam = [await agent(hub, t["slug"], n) for n in ("ann", "ben", "sam")]
    olga, otto = [await agent(hub, other["slug"], n) for n in ("olga", "otto")]
    ids = {name: user["_id"] for name, user in t["users"].items()}

    async def post(who: Agent, **body: Any) -> Any:
        return await who.http.post("/api/announcements", json=body)

    try:
        async with Desk(hub, ann) as ann_desk, Desk(hub, ben) as ben_desk, Desk(hub, olga) as olga_desk:
            # agents may not broadcast
            assert (await post(ann, text="hi all", audience={"all": True})).status_code == 403

            # a skill group's implicit queue: billing agents only
            billing = await post(sam, text="Billing system slow", audience={"queue_ids": ["skill:billing"]})
            assert billing.status_code == 201 and billing.json()["recipients"] == 1
            frame = (await ann_desk.next("announcement"))["announcement"]
            assert frame["text"] == "Billing system slow" and frame["level"] == "info"
            assert frame["from_name"] == "Sam" and frame["read"] is False

            # a configured queue: the agents whose skill levels meet it
            queue = await sam.http.post("/api/queues", json={"name": "tech", "skills": {"technical": 3}})
            assert queue.status_code == 201
            tech = await post(
                sam, text="Outage in the north", level="urgent", audience={"queue_ids": [queue.json()["id"]]}
            )
            assert tech.status_code == 201 and tech.json()["recipients"] == 1
            frame = (await ben_desk.next("announcement"))["announcement"]
            assert (frame["text"], frame["level"]) == ("Outage in the north", "urgent")

            # named agents
            named = await post(sam, text="Ben, see me", audience={"agent_ids": [ids["ben"]]})
            assert named.json()["recipients"] == 1
            assert (await ben_desk.next("announcement"))["announcement"]["text"] == "Ben, see me"

            # everyone: each desk's next announcement is this one, so none saw the others
            everyone = await post(sam, text="Team meeting at 5", audience={"all": True})
            assert everyone.json()["recipients"] == 3  # ann, ben and sam
            assert (await ann_desk.next("announcement"))["announcement"]["text"] == "Team meeting at 5"
            assert (await ben_desk.next("announcement"))["announcement"]["text"] == "Team meeting at 5"

            # another tenant never sees ours: olga's first announcement is her own tenant's
            mine = await post(otto, text="Other tenant news", audience={"all": True})
            assert mine.status_code == 201 and mine.json()["recipients"] == 2
            assert (await olga_desk.next("announcement"))["announcement"]["text"] == "Other tenant news"
            assert not [f for f in olga_desk.frames if f["type"] == "announcement"][:-1]

            # read: the reader's other desks are told
            ann_ids = {a["text"]: a["id"] for a in (await ann.http.get("/api/announcements")).json()}
            assert set(ann_ids) == {"Billing system slow", "Team meeting at 5"}
            read = await ann.http.post(f"/api/announcements/{ann_ids['Billing system slow']}/read")
            assert read.status_code == 200
            assert (await ann_desk.next("announcement_read"))["id"] == ann_ids["Billing system slow"]

        listed = {a["text"]: a for a in (await ann.http.get("/api/announcements")).json()}
        assert listed["Billing system slow"]["read"] is True and listed["Team meeting at 5"]["read"] is False
        ben_texts = [a["text"] for a in (await ben.http.get("/api/announcements")).json()]
        assert ben_texts == ["Team meeting at 5", "Ben, see me", "Outage in the north"]  # newest first
        # not addressed to you, or another tenant's: 404
        assert (await ann.http.post(f"/api/announcements/{tech.json()['id']}/read")).status_code == 404
        assert (await olga.http.post(f"/api/announcements/{everyone.json()['id']}/read")).status_code == 404
        assert [a["text"] for a in (await olga.http.get("/api/announcements")).json()] == [
            "Other tenant news"
        ]

        # the supervisor's sent list, with reads; agents may not see it
        sent = (await sam.http.get("/api/announcements/sent")).json()
        assert [a["text"] for a in sent] == [
            "Team meeting at 5",
            "Ben, see me",
            "Outage in the north",
            "Billing system slow",
        ]
        assert sent[-1]["read_count"] == 1 and sent[-1]["recipients"] == 1 and sent[-1]["active"] is True
        assert sent[-1]["audience"] == {"all": False, "queue_ids": ["skill:billing"]}
        assert (await ann.http.get("/api/announcements/sent")).status_code == 403
        assert [a["text"] for a in (await otto.http.get("/api/announcements/sent")).json()] == [
            "Other tenant news"
        ]

        # validation
        for body in (
            {"text": "x", "audience": {"all": True, "agent_ids": [ids["ann"]]}},
            {"text": "x", "audience": {}},
            {"text": "x" * 501, "audience": {"all": True}},
            {"text": "   ", "audience": {"all": True}},
            {"text": "x", "level": "panic", "audience": {"all": True}},
            {"text": "x", "audience": {"queue_ids": ["no-such-queue"]}},
            {"text": "x", "audience": {"agent_ids": [other["users"]["olga"]["_id"]]}},
            {"text": "x", "audience": {"all": True}, "expires_in_s": 0},
        ):
            response = await post(sam, **body)
            assert response.status_code == 422, (body, response.text)
    finally:
        for client in (ann, ben, sam, olga, otto):
            await client.close()


async def test_announcements_expire(hub_nobot: HubProcess, tenant_in: TenantFactory) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]})
    ann, sam = [await agent(hub, t["slug"], n) for n in ("ann", "sam")]
    try:
        short = await sam.http.post(
            "/api/announcements",
            json={"text": "Fire drill now", "level": "urgent", "audience": {"all": True}, "expires_in_s": 1},
        )
        assert short.status_code == 201
        await sam.http.post("/api/announcements", json={"text": "Lasts an hour", "audience": {"all": True}})
        texts = [a["text"] for a in (await ann.http.get("/api/announcements")).json()]
        assert texts == ["Lasts an hour", "Fire drill now"]
        await asyncio.sleep(1.3)
        assert [a["text"] for a in (await ann.http.get("/api/announcements")).json()] == ["Lasts an hour"]
        sent = {a["text"]: a for a in (await sam.http.get("/api/announcements/sent")).json()}
        assert sent["Fire drill now"]["active"] is False and sent["Lasts an hour"]["active"] is True
    finally:
        await ann.close()
        await sam.close()
