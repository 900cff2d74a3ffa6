"""The knowledge base in use: the bot's answers with "Did that help?" (web chat, SMS, email), the
public help center, agents' views of suggestions, and the usage statistics editors read.

Everything runs against real parts: the shared hub process (`hub_nobot`) over HTTP, the widget's
websocket protocol, the Twilio double for SMS, and the embedded database. Rasa is down in
`hub_nobot`, so the bot's FAQ action is called the way Rasa calls it (the hub's action endpoint);
the last test runs the whole chat path with the real Rasa server (marked `rasa`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.actions import HANDOFF_TEXT, action_token
from bot.faq_answers import TEXTS, vote_of, vote_token
from channels.webchat.visitors import new_visitor_token
from dashboard.help_center import RateLimiter
from dashboard.screen_pop import suggestions
from hub.contacts import open_contact
from hub.context import AppContext
from hub.db import Doc
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from knowledge import usage
from knowledge.customers import find_or_create_customer
from knowledge.search import forget, index_fields, search
from tests.conftest import TenantFactory, context_for
from tests.support import TEST_SECRET, Agent, HubProcess, Widget
from tests.twilio_double import TwilioDouble


async def put_article(
    ctx: AppContext,
    tenant_id: str,
    slug: str,
    title: str,
    body: str,
    *,
    status: str = "published",
    locale: str = "en",
    category: str | None = None,
    kind: str = "article",
    questions: tuple[str, ...] = (),
) -> Doc:
    """An article as knowledge/articles.py stores it (docs/knowledge.md), indexed for search."""
    now = utcnow()
    doc: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "slug": slug,
        "kind": kind,
        "title": title,
        "body": body,
        "questions": list(questions),
        "category": category,
        "tags": [],
        "locale": locale,
        "status": status,
        "version": 1,
        "published_version": 1 if status == "published" else None,
        "published_at": now if status == "published" else None,
        "draft": None,
        "attachments": [],
        "counters": {"views": 0, "bot_uses": 0, "helpful": 0, "not_helpful": 0},
        "created_at": now,
        "updated_at": now,
        **await asyncio.to_thread(index_fields, title, body, questions, (), locale),
    }
    await ctx.db.kb_articles.insert_one(doc)
    forget(tenant_id)
    return doc


PASSWORD_BODY = (
    "Open **Settings**, choose *Security* and press **Reset password**. We email you a link that "
    "works for 24 hours.\n\n<script>alert('x')</script>"
)


async def seed(ctx: AppContext, tenant_id: str) -> dict[str, Doc]:
    return {
        "password": await put_article(
            ctx,
            tenant_id,
            "reset-password",
            "Resetting your password",
            PASSWORD_BODY,
            category="Account",
            kind="faq",
            questions=("I forgot my password", "how do I change my password"),
        ),
        "router": await put_article(
            ctx,
            tenant_id,
            "router-lights",
            "What the router lights mean",
            "A blinking red light on the router means the fibre line is down. Restart the router.",
            category="Internet",
        ),
        "draft": await put_article(
            ctx,
            tenant_id,
            "new-pricing",
            "New pricing for 2027",
            "Secret draft: pricing for 2027 plans.",
            status="draft",
            category="Billing",
        ),
        "archived": await put_article(
            ctx,
            tenant_id,
            "old-modem",
            "Setting up the old modem",
            "Archived: the old modem setup.",
            status="archived",
            category="Internet",
        ),
        "zh": await put_article(
            ctx,
            tenant_id,
            "zh-invoice",
            "如何下载电子发票",
            "登录网上营业厅，在“账单”页面点击“下载发票”即可下载电子发票。",  # noqa: RUF001
            locale="zh",
            category="账单",
        ),
    }


@pytest.fixture
async def kb(hub_nobot: HubProcess, tenant_in: TenantFactory) -> AsyncIterator[dict[str, Any]]:
    """A tenant on the shared hub with an editor, an agent and a small knowledge base, plus a
    second tenant with an article of its own."""
    t = await tenant_in(hub_nobot, agents={"ann": ["general"], "ed": []}, roles={"ed": ["editor"]})
    other = await tenant_in(hub_nobot, agents={"zoe": ["general"]})
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    t["ctx"], t["other"] = ctx, other
    t["articles"] = await seed(ctx, t["tenant"]["_id"])
    t["other_article"] = await put_article(
        ctx, other["tenant"]["_id"], "other-secret", "Resetting your password elsewhere", "Other tenant text."
    )
    t["http"] = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30)
    yield t
    await t["http"].aclose()
    await ctx.db.close()


async def wait_for(predicate: Any, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


async def call_action(hub: HubProcess, contact_id: str, text: str, intent: str = "ask_faq") -> dict[str, Any]:
    """What Rasa does when its rules pick the hub's `action_answer_faq`."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{hub.url}/webhooks/actions",
            params={"token": action_token(TEST_SECRET)},
            json={
                "next_action": "action_answer_faq",
                "sender_id": contact_id,
                "tracker": {"latest_message": {"text": text, "intent": {"name": intent}}, "events": []},
                "domain": {},
            },
        )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def events(ctx: AppContext, tenant_id: str, **match: Any) -> list[Doc]:
    return [e async for e in ctx.db.kb_events.find({"tenant_id": tenant_id, **match})]


# ------------------------------------------------------------------------------------ the bot


async def test_web_chat_answer_did_that_help_and_vote(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    ctx, tid = kb["ctx"], kb["tenant"]["_id"]
    visitor_id, token = new_visitor_token(ctx.settings, tid)
    contact = await open_contact(ctx, tid, "webchat", visitor_id=visitor_id)

    result = await call_action(hub_nobot, contact["_id"], "I forgot my password, how can I reset it?")
    answer, ask = result["responses"]
    assert answer["text"] == PASSWORD_BODY
    assert ask["text"] == "Did that help?"
    assert [b["title"] for b in ask["buttons"]] == ["Yes", "No"]
    article_id = kb["articles"]["password"]["_id"]
    [used] = await events(ctx, tid, type="bot_use")
    assert used["article_id"] == article_id and used["channel"] == "webchat"
    [searched] = await events(ctx, tid, type="search")
    assert searched["good"] is True and searched["query"] == "i forgot my password, how can i reset it?"

    # the widget of that visitor answers "Yes" (the button's title): counted once, thanked
    widget = Widget(hub_nobot.ws_url, kb["slug"])
    widget.token, widget.contact_id = token, contact["_id"]
    welcome = await widget.connect()
    assert welcome["contact_id"] == contact["_id"] and welcome["status"] == "bot"
    said = await widget.say("Yes")
    thanks = await widget.reply_from("bot", said["seq"])
    assert thanks["text"] == TEXTS["en"]["thanks"]
    await widget.close()
    [vote] = await events(ctx, tid, type="helpful")
    assert vote["article_id"] == article_id and vote["contact_id"] == contact["_id"]
    article = await ctx.db.kb_articles.find_one({"_id": article_id})
    assert (
        article is not None and article["counters"]["helpful"] == 1 and article["counters"]["bot_uses"] == 1
    )
    fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]})
    assert fresh is not None and fresh["kb_feedback"] is None and fresh["status"] == "bot"


async def test_quick_reply_buttons_reach_the_widget(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    """A bot message stored with buttons (bot/turns.py) carries them in the widget's frames."""
    from hub.contacts import append_message

    ctx, tid = kb["ctx"], kb["tenant"]["_id"]
    visitor_id, token = new_visitor_token(ctx.settings, tid)
    contact = await open_contact(ctx, tid, "webchat", visitor_id=visitor_id)
    buttons = [{"title": "Yes", "payload": "/kb_helpful"}, {"title": "No", "payload": "/kb_not_helpful"}]
    await append_message(ctx, contact, "bot", "Did that help?", data={"buttons": buttons})
    widget = Widget(hub_nobot.ws_url, kb["slug"])
    widget.token, widget.contact_id = token, contact["_id"]
    await widget.connect()
    message = await widget.reply_from("bot", 0)
    assert message["buttons"] == buttons
    await widget.close()


async def test_unknown_question_is_handed_over_and_counted_as_a_gap(
    hub_nobot: HubProcess, kb: dict[str, Any]
) -> None:
    ctx, tid = kb["ctx"], kb["tenant"]["_id"]
    contact = await open_contact(ctx, tid, "webchat", visitor_id=new_id())
    question = "Can I pay with bitcoin at the shop?"
    result = await call_action(hub_nobot, contact["_id"], question)
    assert [r["text"] for r in result["responses"]] == [HANDOFF_TEXT]

    async def queued() -> bool:
        fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]})
        return fresh is not None and fresh["status"] in ("queued", "offered")

    await wait_for(queued)
    assert await events(ctx, tid, type="bot_use") == []
    [gap] = await events(ctx, tid, type="search")
    assert gap["good"] is False

    editor = Agent(hub_nobot.url, kb["slug"], "ed@t.test")
    await editor.login()
    stats = (await editor.http.get("/api/kb/stats")).json()
    assert stats["content_gaps"][0]["query"] == question.lower()
    assert stats["content_gaps"][0]["count"] == 1
    assert stats["totals"]["searches_without_result"] == 1
    await editor.close()
    agent = Agent(hub_nobot.url, kb["slug"], "ann@t.test")
    await agent.login()
    assert (await agent.http.get("/api/kb/stats")).status_code == 403
    await agent.close()


async def sms_contact(ctx: AppContext, sms_tenant: dict[str, Any], number: str) -> Doc:
    tid = sms_tenant["tenant"]["_id"]
    customer = await find_or_create_customer(ctx, tid, phone=number)
    return await open_contact(
        ctx,
        tid,
        "sms",
        customer_id=customer["_id"],
        extra={"customer_number": number, "sms_number": sms_tenant["number"], "direction": "inbound"},
    )


async def test_sms_yes_and_no(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx, tid = sms_tenant["ctx"], sms_tenant["tenant"]["_id"]
    articles = await seed(ctx, tid)
    article_id = articles["password"]["_id"]

    yes_number = f"+1415555{secrets.randbelow(10000):04d}"
    contact = await sms_contact(ctx, sms_tenant, yes_number)
    result = await call_action(hub_nobot, contact["_id"], "how do I reset my password")
    assert result["responses"][1] == {"text": "Did that help? Reply YES or NO."}
    await twilio_double.inbound_sms(sms_tenant["url"], yes_number, sms_tenant["number"], "YES")
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(yes_number) if "glad it helped" in m["body"]]
    )
    [vote] = await events(ctx, tid, type="helpful")
    assert vote["channel"] == "sms" and vote["article_id"] == article_id

    no_number = f"+1415556{secrets.randbelow(10000):04d}"
    contact = await sms_contact(ctx, sms_tenant, no_number)
    await call_action(hub_nobot, contact["_id"], "how do I reset my password")
    await twilio_double.inbound_sms(sms_tenant["url"], no_number, sms_tenant["number"], "No.")
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(no_number) if "connecting you" in m["body"]]
    )
    [vote] = await events(ctx, tid, type="not_helpful")
    assert vote["channel"] == "sms" and vote["contact_id"] == contact["_id"]
    fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]})
    assert (
        fresh is not None
        and fresh["status"] in ("queued", "offered")
        and fresh["reason"] == "faq_not_helpful"
    )


def test_vote_words() -> None:
    assert vote_of("Yes") is True and vote_of(" yes! ") is True and vote_of("/kb_helpful") is True
    assert vote_of("No.") is False and vote_of("没有") is False and vote_of("/kb_not_helpful") is False
    assert vote_of("yes but how do I pay my bill?") is None and vote_of("what about roaming") is None


async def test_email_vote_links(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    ctx, tid, http = kb["ctx"], kb["tenant"]["_id"], kb["http"]
    article_id = kb["articles"]["password"]["_id"]
    contact = await open_contact(ctx, tid, "email", extra={"customer_email": "c@example.com"})
    token = vote_token(ctx, contact, article_id)
    page = await http.get(f"/help/{kb['slug']}/feedback", params={"token": token, "vote": "yes"})
    assert page.status_code == 200 and 'id="hc-confirm"' in page.text
    assert await events(ctx, tid, type="helpful") == []  # opening the link (a mail scanner) counts nothing
    done = await http.post(f"/help/{kb['slug']}/feedback", data={"token": token, "vote": "yes"})
    assert done.status_code == 200 and "Thanks for your feedback" in done.text
    again = await http.post(f"/help/{kb['slug']}/feedback", data={"token": token, "vote": "no"})
    assert "already" in again.text
    [vote] = await events(ctx, tid, type="helpful")
    assert vote["channel"] == "email" and vote["contact_id"] == contact["_id"]
    # another tenant's help center and forged tokens are refused
    wrong = await http.get(f"/help/{kb['other']['slug']}/feedback", params={"token": token, "vote": "yes"})
    assert wrong.status_code == 404
    assert (
        await http.post(f"/help/{kb['slug']}/feedback", data={"token": "x", "vote": "no"})
    ).status_code == 404

    # "no" from a contact still with the bot hands it to an agent
    waiting = await open_contact(ctx, tid, "email", extra={"customer_email": "d@example.com"})
    no = await http.post(
        f"/help/{kb['slug']}/feedback", data={"token": vote_token(ctx, waiting, article_id), "vote": "no"}
    )
    assert "agents will reply" in no.text

    async def queued() -> bool:
        fresh = await ctx.db.contacts.find_one({"_id": waiting["_id"]})
        return fresh is not None and fresh["status"] in ("queued", "offered")

    await wait_for(queued)


# ------------------------------------------------------------------------------ agents


async def test_agent_views_and_published_only_suggestions(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    ctx, tid = kb["ctx"], kb["tenant"]["_id"]
    found = await suggestions(
        ctx, tid, ["what is the new pricing for 2027?", "my router light is blinking red"]
    )
    ids = [s["id"] for s in found]
    assert kb["articles"]["router"]["_id"] in ids
    assert kb["articles"]["draft"]["_id"] not in ids and kb["articles"]["archived"]["_id"] not in ids

    agent = Agent(hub_nobot.url, kb["slug"], "ann@t.test")
    await agent.login()
    router_id = kb["articles"]["router"]["_id"]
    ok = await agent.http.post("/api/kb/usage/view", json={"article_id": router_id})
    assert ok.status_code == 200
    for hidden in (kb["articles"]["draft"]["_id"], kb["other_article"]["_id"], "nope"):
        assert (await agent.http.post("/api/kb/usage/view", json={"article_id": hidden})).status_code == 404
    await agent.close()
    [view] = await events(ctx, tid, type="view")
    assert view["channel"] == "agent" and view["article_id"] == router_id


# ------------------------------------------------------------------------------ help center


async def test_help_center_pages(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    http, slug, ctx, tid = kb["http"], kb["slug"], kb["ctx"], kb["tenant"]["_id"]
    home = await http.get(f"/help/{slug}", params={"locale": "en"})
    assert home.status_code == 200
    assert kb["tenant"]["name"] in home.text
    for shown in ("Resetting your password", "What the router lights mean", "Account", "Internet"):
        assert shown in home.text
    for hidden in ("New pricing", "old modem", "Billing", "如何下载电子发票", "elsewhere"):
        assert hidden not in home.text

    chinese = await http.get(f"/help/{slug}", params={"locale": "zh"})
    assert (
        "如何下载电子发票" in chinese.text and "帮助中心" in chinese.text and "Resetting" not in chinese.text
    )
    by_header = await http.get(f"/help/{slug}", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "如何下载电子发票" in by_header.text

    internet = await http.get(f"/help/{slug}", params={"locale": "en", "category": "Internet"})
    assert "What the router lights mean" in internet.text and "Resetting your password" not in internet.text

    page = await http.get(f"/help/{slug}/a/reset-password")
    assert page.status_code == 200
    assert "<strong>Settings</strong>" in page.text and "<em>Security</em>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text  # raw HTML stays text
    [view] = await events(ctx, tid, type="view")
    assert view["channel"] == "help_center" and view["article_id"] == kb["articles"]["password"]["_id"]

    for missing in ("new-pricing", "old-modem", "other-secret", "nothing-here"):
        assert (await http.get(f"/help/{slug}/a/{missing}")).status_code == 404, missing
    assert (await http.get("/help/no-such-tenant-here")).status_code == 404
    assert (await http.get(f"/help/{kb['other']['slug']}/a/reset-password")).status_code == 404


async def test_help_center_search(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    http, slug, ctx, tid = kb["http"], kb["slug"], kb["ctx"], kb["tenant"]["_id"]
    found = await http.get(f"/help/{slug}", params={"q": "forgot my password", "locale": "en"})
    assert f"/help/{slug}/a/reset-password" in found.text and 'id="hc-no-good"' not in found.text
    draft = await http.get(f"/help/{slug}", params={"q": "pricing 2027", "locale": "en"})
    assert "new-pricing" not in draft.text and 'id="hc-no-good"' in draft.text
    zh = await http.get(f"/help/{slug}", params={"q": "电子发票怎么下载", "locale": "zh"})
    assert f"/help/{slug}/a/zh-invoice" in zh.text
    isolated = await http.get(f"/help/{kb['other']['slug']}", params={"q": "reset password", "locale": "en"})
    assert "reset-password" not in isolated.text and "other-secret" in isolated.text
    escaped = await http.get(f"/help/{slug}", params={"q": '<img src=x onerror="alert(1)">'})
    assert "<img src=x" not in escaped.text

    searches = await events(ctx, tid, type="search", channel="help_center")
    assert {(s["query"], s["good"]) for s in searches} >= {
        ("forgot my password", True),
        ("pricing 2027", False),
    }


async def test_help_center_votes_once_per_session(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    http, slug, ctx = kb["http"], kb["slug"], kb["ctx"]
    article_id = kb["articles"]["router"]["_id"]
    url = f"/help/{slug}/a/router-lights"
    assert "hc_sid" in (await http.get(url)).cookies
    first = await http.post(f"{url}/vote", data={"vote": "yes"})
    assert first.status_code == 303 and first.headers["location"].endswith("?voted=yes")
    assert "Thanks for your feedback" in (await http.get(first.headers["location"])).text
    again = await http.post(f"{url}/vote", data={"vote": "no"})
    assert again.headers["location"].endswith("?voted=again")
    async with httpx.AsyncClient(base_url=hub_nobot.url) as stranger:  # no session cookie (e.g. CSRF)
        refused = await stranger.post(f"{url}/vote", data={"vote": "no"})
        assert refused.headers["location"].endswith("?voted=nocookie")
        assert (
            await stranger.post(f"/help/{slug}/a/new-pricing/vote", data={"vote": "yes"})
        ).status_code == 404
    article = await ctx.db.kb_articles.find_one({"_id": article_id})
    assert article is not None and article["counters"]["helpful"] == 1
    assert article["counters"].get("not_helpful", 0) == 0


async def test_help_center_attachments(hub_nobot: HubProcess, kb: dict[str, Any]) -> None:
    """A published article's files download (never inline); other articles' and tenants' do not."""
    from gridfs import AsyncGridFSBucket

    from knowledge.articles import ATTACHMENT_BUCKET

    http, slug, ctx, tid = kb["http"], kb["slug"], kb["ctx"], kb["tenant"]["_id"]
    router_id, draft_id = kb["articles"]["router"]["_id"], kb["articles"]["draft"]["_id"]
    bucket = AsyncGridFSBucket(ctx.db.db, bucket_name=ATTACHMENT_BUCKET)
    ids = {}
    for article_id in (router_id, draft_id):
        file_id = await bucket.upload_from_stream(
            "lights <1>.html",
            b"<script>alert(1)</script>",
            metadata={"tenant_id": tid, "article_id": article_id, "content_type": "text/html"},
        )
        item = {
            "file_id": str(file_id),
            "filename": "lights <1>.html",
            "size": 25,
            "content_type": "text/html",
        }
        await ctx.db.kb_articles.update_one({"_id": article_id}, {"$push": {"attachments": item}})
        ids[article_id] = str(file_id)
    page = await http.get(f"/help/{slug}/a/router-lights")
    assert f"/help/{slug}/a/router-lights/files/{ids[router_id]}" in page.text
    assert "lights &lt;1&gt;.html" in page.text
    download = await http.get(f"/help/{slug}/a/router-lights/files/{ids[router_id]}")
    assert download.status_code == 200 and download.content == b"<script>alert(1)</script>"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    for path in (
        f"/help/{slug}/a/new-pricing/files/{ids[draft_id]}",  # a draft's file
        f"/help/{slug}/a/router-lights/files/{ids[draft_id]}",  # another article's file
        f"/help/{slug}/a/router-lights/files/not-an-id",
        f"/help/{kb['other']['slug']}/a/router-lights/files/{ids[router_id]}",  # another tenant
    ):
        assert (await http.get(path)).status_code == 404, path


def test_rate_limiter() -> None:
    limiter = RateLimiter(3, 60.0)
    assert [limiter.allow("1.2.3.4") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("5.6.7.8")


# ------------------------------------------------------------------------------ statistics


async def test_statistics_by_aggregation(ctx: AppContext) -> None:
    tid, other = f"t-{new_id()}", f"t-{new_id()}"
    a = await put_article(ctx, tid, f"a-{new_id()}", "Router lights", "Blinking red: line down.")
    b = await put_article(ctx, tid, f"b-{new_id()}", "Roaming", "Roaming in the EU is included.", kind="faq")
    counts: list[tuple[usage.EventType, int]] = [
        ("view", 5),
        ("bot_use", 2),
        ("helpful", 3),
        ("not_helpful", 1),
    ]
    for kind, n in counts:
        for _ in range(n):
            await usage.record(ctx, tid, kind, a["_id"], "help_center")
    await usage.record(ctx, tid, "view", b["_id"], "agent")
    await usage.record(ctx, tid, "not_helpful", b["_id"], "webchat")
    await usage.record(ctx, other, "view", b["_id"], "help_center")  # another tenant's event
    hits = await search(ctx, tid, "router lights")
    for query, found in (("Router  lights", hits), ("router lights", hits), ("bitcoin", []), ("BITCOIN", [])):
        await usage.record_search(ctx, tid, query, found, "help_center")
    await usage.record_search(ctx, tid, "fax machine", [], "webchat")
    # an old gap outside the period
    await ctx.db.kb_events.update_one(
        {"tenant_id": tid, "query": "fax machine"}, {"$set": {"at": utcnow() - timedelta(days=60)}}
    )
    # idempotent events: one vote per key
    assert await usage.record(ctx, tid, "helpful", b["_id"], "help_center", event_id=f"v:{tid}:s1")
    assert not await usage.record(ctx, tid, "helpful", b["_id"], "help_center", event_id=f"v:{tid}:s1")

    stats = await usage.statistics(ctx, tid, days=30)
    rows = {r["article_id"]: r for r in stats["articles"]}
    assert stats["articles"][0]["article_id"] == a["_id"]  # the busiest first
    assert {k: rows[a["_id"]][k] for k in ("views", "bot_uses", "helpful", "not_helpful")} == {
        "views": 5,
        "bot_uses": 2,
        "helpful": 3,
        "not_helpful": 1,
    }
    assert rows[a["_id"]]["helpful_ratio"] == 0.75 and rows[b["_id"]]["helpful_ratio"] == 0.5
    assert rows[b["_id"]]["views"] == 1 and rows[b["_id"]]["kind"] == "faq"
    assert stats["content_gaps"] == [
        {
            "query": "bitcoin",
            "count": 2,
            "last_seen": stats["content_gaps"][0]["last_seen"],
            "best_score": 0.0,
        }
    ]
    assert [(s["query"], s["count"], s["good"]) for s in stats["top_searches"]] == [
        ("bitcoin", 2, 0),
        ("router lights", 2, 2),
    ]
    assert stats["totals"] == {
        "views": 6,
        "bot_uses": 2,
        "helpful": 4,
        "not_helpful": 2,
        "searches": 4,
        "searches_without_result": 2,
        "helpful_ratio": round(4 / 6, 3),
    }
    everything = await usage.statistics(ctx, tid, days=None)
    assert {g["query"] for g in everything["content_gaps"]} == {"bitcoin", "fax machine"}
    stored = await ctx.db.kb_articles.find_one({"_id": a["_id"]})
    assert stored is not None and stored["counters"] == {
        "views": 5,
        "bot_uses": 2,
        "helpful": 3,
        "not_helpful": 1,
    }
    assert re.match(r"\d{4}-\d\d-\d\dT", stats["content_gaps"][0]["last_seen"])


# ------------------------------------------------------------------------------ with the real Rasa


@pytest.mark.rasa
async def test_whole_chat_path_with_rasa(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_in: TenantFactory
) -> None:
    """The widget asks, Rasa picks the hub's FAQ action, the answer and the quick replies arrive,
    and the visitor's click on "Yes" is counted without reaching Rasa."""
    t = await tenant_in(hub)
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        article = await put_article(
            ctx,
            t["tenant"]["_id"],
            "router-setup",
            "Setting up your router",
            "Plug in the router and wait until the light turns solid white.",
            kind="faq",
            questions=("How do I set up my router?",),
        )
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        ask = await widget.say("How do I set up my router?")
        answer = await widget.reply_from("bot", ask["seq"])
        assert "solid white" in answer["text"]
        question = await widget.reply_from("bot", answer["seq"])
        assert question["text"] == "Did that help?"
        assert [b["title"] for b in question["buttons"]] == ["Yes", "No"]
        said = await widget.say("Yes")
        assert (await widget.reply_from("bot", said["seq"]))["text"] == TEXTS["en"]["thanks"]
        await widget.close()
        [vote] = await events(ctx, t["tenant"]["_id"], type="helpful")
        assert vote["article_id"] == article["_id"] and vote["channel"] == "webchat"
    finally:
        await ctx.db.close()
