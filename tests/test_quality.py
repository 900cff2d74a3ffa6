"""Quality inspection: the scoring rules (pure) and /api/quality against a real hub.

The HTTP tests score a chat that went through the real widget, router and agent desk, and
contacts written straight into the hub's database (a call with a stored two-channel
recording among them) where the exact numbers of the report matter.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import wave
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from pydantic import ValidationError

from dashboard.quality import Scorecard, ScoreError, score
from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from media.recording import store_recording
from tests.conftest import context_for
from tests.support import Agent, HubProcess, Widget

CARD: dict[str, Any] = {
    "name": "Chat quality",
    "description": "Weekly sample",
    "sections": [
        {
            "title": "Opening",
            "items": [
                {"key": "greeting", "label": "Greets the customer", "kind": "yes_no", "weight": 1},
                {
                    "key": "identity",
                    "label": "Verifies identity",
                    "kind": "yes_no",
                    "weight": 2,
                    "critical": True,
                    "na_allowed": True,
                },
            ],
        },
        {
            "title": "Resolution",
            "items": [
                {"key": "accuracy", "label": "Accurate answer", "kind": "scale", "max": 5, "weight": 3},
                {
                    "key": "upsell",
                    "label": "Offers upgrade",
                    "kind": "yes_no",
                    "weight": 1,
                    "na_allowed": True,
                },
            ],
        },
    ],
}
ALL_GOOD = {"greeting": True, "identity": True, "accuracy": 5, "upsell": True}


# ------------------------------------------------------------------ scoring rules


def test_weights_and_na_are_out_of_the_denominator() -> None:
    card = Scorecard.model_validate(CARD)
    assert score(card, ALL_GOOD)["total_pct"] == 100.0
    # 0*1 + 1*2 + 3/5*3 = 3.8 of weights 1+2+3 = 6 (upsell N/A leaves the denominator)
    result = score(card, {"greeting": False, "identity": True, "accuracy": 3, "upsell": None})
    assert result["total_pct"] == 63.33 and result["raw_pct"] == 63.33
    assert result["auto_failed"] is False and result["failed_critical"] == []
    assert result["by_item"]["upsell"] == {
        "value": None,
        "max": 1,
        "pct": None,
        "weight": 1.0,
        "na": True,
        "critical": False,
        "failed": False,
    }
    assert result["by_item"]["accuracy"]["pct"] == 60.0 and result["by_item"]["greeting"]["pct"] == 0.0
    # the same with the upsell answered "no": 3.8 of 7
    assert (
        score(card, {"greeting": "no", "identity": "yes", "accuracy": 3, "upsell": "no"})["total_pct"]
        == 54.29
    )


def test_a_failed_critical_item_is_an_auto_fail() -> None:
    card = Scorecard.model_validate(CARD)
    result = score(card, {**ALL_GOOD, "identity": False})
    assert result["auto_failed"] is True and result["total_pct"] == 0.0
    assert result["raw_pct"] == 71.43  # 5 of 7: what it would have been
    assert result["failed_critical"] == ["identity"] and result["by_item"]["identity"]["failed"] is True
    # N/A on a critical item is no failure
    na = score(card, {**ALL_GOOD, "identity": None})
    assert na["auto_failed"] is False and na["total_pct"] == 100.0
    # a critical scale fails at 0 only
    scale = Scorecard.model_validate(
        {
            "name": "Calls",
            "items": [
                {"key": "tone", "label": "Tone", "kind": "scale", "max": 4, "critical": True},
                {"key": "close", "label": "Closing", "kind": "yes_no"},
            ],
        }
    )
    assert score(scale, {"tone": 1, "close": True})["total_pct"] == 62.5
    assert score(scale, {"tone": 0, "close": True})["auto_failed"] is True


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"sections": []}, "sections"),
        ({"sections": [{"title": "x", "items": []}]}, "items"),
        ({"name": "   "}, "name"),
        ({"items": [{"key": "a", "label": "A"}, {"key": "a", "label": "B"}]}, "unique: a"),
        ({"items": [{"key": "a", "label": "A", "weight": 0}]}, "weight"),
        ({"items": [{"key": "a", "label": "A", "weight": -2}]}, "weight"),
        ({"items": [{"key": "a", "label": "A", "kind": "scale", "max": 11}]}, "max"),
        ({"items": [{"key": "a", "label": "A", "kind": "scale", "max": 0}]}, "max"),
        ({"items": [{"key": "a", "label": "A", "kind": "stars"}]}, "kind"),
        ({"items": [{"key": "a b", "label": "A"}]}, "key"),
        ({"items": [{"key": "a", "label": " "}]}, "label"),
        ({"items": [{"key": f"k{i}", "label": "x"} for i in range(51)]}, "50"),
        (
            {"sections": [{"items": [{"key": f"k{i}", "label": "x"} for i in range(30)]}] * 2},
            "at most 50",
        ),
    ],
)
def test_invalid_scorecards_are_rejected(change: dict[str, Any], needle: str) -> None:
    body = {k: v for k, v in {**CARD, **change}.items() if not ("items" in change and k == "sections")}
    with pytest.raises(ValidationError) as exc:
        Scorecard.model_validate(body)
    assert needle in str(exc.value)


def test_flat_items_make_one_section_and_yes_no_max_is_one() -> None:
    card = Scorecard.model_validate(
        {"name": "Flat", "items": [{"key": "a", "label": "A", "kind": "yes_no", "max": 7}]}
    )
    assert len(card.sections) == 1 and card.items[0].max == 1
    assert Scorecard.model_validate(
        {"name": "50", "items": [{"key": f"k{i}", "label": "x"} for i in range(50)]}
    )


@pytest.mark.parametrize(
    ("answers", "needle"),
    [
        ({"greeting": True, "identity": True, "accuracy": 5}, "upsell: answer it or mark it N/A"),
        ({**ALL_GOOD, "greeting": None}, "greeting: an answer is required"),
        ({**ALL_GOOD, "accuracy": 6}, "accuracy: answer a whole number 0..5"),
        ({**ALL_GOOD, "accuracy": -1}, "0..5"),
        ({**ALL_GOOD, "accuracy": 2.5}, "0..5"),
        ({**ALL_GOOD, "accuracy": True}, "accuracy: answer a number"),
        ({**ALL_GOOD, "greeting": 3}, "greeting: answer yes or no"),
        ({**ALL_GOOD, "bogus": 1}, "no such item on this scorecard: bogus"),
    ],
)
def test_answers_must_fit_the_scorecard(answers: dict[str, Any], needle: str) -> None:
    with pytest.raises(ScoreError, match=needle.replace(".", r"\.")):
        score(Scorecard.model_validate(CARD), answers)


def test_nothing_to_score_when_everything_is_na() -> None:
    card = Scorecard.model_validate({"name": "x", "items": [{"key": "a", "label": "A", "na_allowed": True}]})
    with pytest.raises(ScoreError, match="every item is N/A"):
        score(card, {"a": None})


# ------------------------------------------------------------------ HTTP against a real hub


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 2 * 800)
    return out.getvalue()


async def _contact(
    ctx: AppContext,
    tenant_id: str,
    agent: dict[str, Any] | None,
    *,
    channel: str = "webchat",
    queue_id: str | None = None,
    closed_ago_s: float = 60,
    texts: tuple[str, ...] = ("I have a question", "Happy to help"),
    phone: str | None = None,
) -> str:
    """A closed contact written straight into the hub's database, with a transcript."""
    contact_id = new_id()
    closed = utcnow() - timedelta(seconds=closed_ago_s)
    await ctx.db.contacts.insert_one(
        {
            "_id": contact_id,
            "tenant_id": tenant_id,
            "channel": channel,
            "status": "closed",
            "customer_id": None,
            "agent_id": agent["_id"] if agent else None,
            "agent_name": agent["name"] if agent else None,
            "queue_id": queue_id,
            "from_number": phone,
            "opened_at": closed - timedelta(minutes=5),
            "closed_at": closed,
            "disposition": "resolved",
            "next_seq": len(texts),
        }
    )
    for seq, text in enumerate(texts, 1):
        await ctx.db.messages.insert_one(
            {
                "_id": new_id(),
                "tenant_id": tenant_id,
                "contact_id": contact_id,
                "seq": seq,
                "dedupe_key": f"m:{new_id()}",
                "author": "visitor" if seq % 2 else "agent",
                "text": text,
                "created_at": closed - timedelta(minutes=5 - seq),
            }
        )
    return contact_id


async def _real_chat(hub: HubProcess, slug: str, agent: Agent) -> str:
    """A chat through the widget, taken and closed by `agent` on the desk."""
    await agent.available()
    widget = Widget(hub.ws_url, slug)
    await widget.connect()
    ack = await widget.say("My invoice is wrong")  # Rasa is down: straight to the queue
    contact_id: str = ack["contact_id"]
    await agent.wait_offer(contact_id)
    assert (await agent.http.post(f"/api/contacts/{contact_id}/accept")).status_code == 200
    await widget.wait_status("assigned")
    sent = await agent.http.post(f"/api/contacts/{contact_id}/messages", json={"text": "Let me fix that."})
    assert sent.status_code == 200
    await widget.reply_from("agent", ack["seq"])
    done = await agent.http.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"})
    assert done.status_code == 200 and done.json()["status"] == "closed"
    await widget.close()
    return contact_id


async def _people(hub: HubProcess, t: dict[str, Any], *names: str) -> list[Agent]:
    people = [Agent(hub.url, t["slug"], f"{name}@t.test") for name in names]
    for person in people:
        await person.login()
    return people


def _token(agent: Agent) -> str:
    return str(agent.http.headers["Authorization"].split()[1])


async def _next_frame(ws: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), max(remaining, 0.01)))
        if frame["type"] == kind:
            return frame


async def test_score_a_chat_acknowledge_and_recontact(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(
        hub_nobot,
        agents={"sam": [], "sid": [], "ada": [], "ann": ["general"], "ben": ["general"]},
        roles={"sam": ["supervisor"], "sid": ["supervisor"], "ada": ["admin"]},
    )
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sam, sid, ada, ann, ben = await _people(hub_nobot, t, "sam", "sid", "ada", "ann", "ben")
    (sue,) = await _people(hub_nobot, other, "sue")
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        # the page: for every signed-in user (agents see their own evaluations there)
        page = await ann.http.get("/quality")
        assert page.status_code == 200 and 'src="/static/quality.js"' in page.text
        assert (await sam.http.get("/static/quality.js")).status_code == 200
        async with httpx.AsyncClient(base_url=hub_nobot.url) as stranger:
            anonymous = await stranger.get("/quality")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
        # agents can neither design scorecards nor score
        assert (await ann.http.get("/api/quality/scorecards")).status_code == 403
        assert (await ann.http.post("/api/quality/scorecards", json=CARD)).status_code == 403
        created = await sam.http.post("/api/quality/scorecards", json=CARD)
        assert created.status_code == 201, created.text
        card = created.json()
        assert card["version"] == 1 and card["status"] == "active" and card["used"] is False
        bad = await sam.http.post("/api/quality/scorecards", json={**CARD, "sections": []})
        assert bad.status_code == 422 and "sections" in bad.json()["detail"]
        assert (await sue.http.get(f"/api/quality/scorecards/{card['id']}")).status_code == 404

        chat_id = await _real_chat(hub_nobot, t["slug"], ann)
        call_id = await _contact(
            ctx, t["tenant"]["_id"], t["users"]["ben"], channel="voice", phone="+15550100", closed_ago_s=30
        )
        recording = await store_recording(
            ctx,
            tenant_id=t["tenant"]["_id"],
            contact_id=call_id,
            wav=_wav(),
            sample_rate=8000,
            duration_s=0.1,
            started_at=utcnow(),
            agent_ids=[t["users"]["ben"]["_id"]],
        )
        bot_only = await _contact(ctx, t["tenant"]["_id"], None)

        # the queue: closed contacts with an agent, newest first, with their recordings
        # (Ann took the chat: the only agent available)
        queue = (await sam.http.get("/api/quality/queue")).json()
        ids = [c["id"] for c in queue]
        assert ids[:2] == [chat_id, call_id] and bot_only not in ids
        assert queue[1]["recording_ids"] == [recording["_id"]] and queue[0]["recording_ids"] == []
        voice = (await sam.http.get("/api/quality/queue", params={"channel": "voice"})).json()
        assert [c["id"] for c in voice] == [call_id]
        assert (await ann.http.get("/api/quality/queue")).status_code == 403
        assert (await sue.http.get("/api/quality/queue")).json() == []

        # the contact for scoring: transcript from the real chat
        view = (await sam.http.get(f"/api/quality/contacts/{chat_id}")).json()
        assert view["contact"]["agent_name"] == "Ann"
        assert [m["text"] for m in view["messages"] if m["author"] in ("visitor", "agent")] == [
            "My invoice is wrong",
            "Let me fix that.",
        ]
        call_view = (await sam.http.get(f"/api/quality/contacts/{call_id}")).json()
        assert call_view["recordings"][0]["audio_url"] == f"/api/recordings/{recording['_id']}/audio"
        assert (await sue.http.get(f"/api/quality/contacts/{chat_id}")).status_code == 404
        assert (await ben.http.get(f"/api/quality/contacts/{chat_id}")).status_code == 404  # not his

        evaluation = {
            "contact_id": chat_id,
            "scorecard_id": card["id"],
            "answers": {"greeting": True, "identity": None, "accuracy": 4, "upsell": False},
            "comments": "Good fix, but offer the paperless plan.",
            "item_comments": {"upsell": "Missed the upgrade."},
            "recontact": {"requested": True, "note": "Confirm the corrected invoice arrived"},
        }
        # agents cannot score; other tenants do not find the contact; invalid answers are 422
        assert (await ann.http.post("/api/quality/evaluations", json=evaluation)).status_code == 403
        assert (await ben.http.post("/api/quality/evaluations", json=evaluation)).status_code == 403
        assert (await sue.http.post("/api/quality/evaluations", json=evaluation)).status_code == 404
        wrong = await sam.http.post(
            "/api/quality/evaluations",
            json={**evaluation, "answers": {**evaluation["answers"], "accuracy": 9}},
        )
        assert wrong.status_code == 422 and "accuracy" in wrong.json()["detail"]
        no_agent = await sam.http.post(
            "/api/quality/evaluations", json={**evaluation, "contact_id": bot_only}
        )
        assert no_agent.status_code == 422
        other_rec = await sam.http.post(
            "/api/quality/evaluations", json={**evaluation, "recording_id": recording["_id"]}
        )
        assert other_rec.status_code == 422  # that recording belongs to the call
        assert (await sam.http.get(f"/api/quality/scorecards/{card['id']}")).json()["used"] is False

        async with websockets.connect(f"{hub_nobot.ws_url}/ws/agent?token={_token(ann)}") as ws:
            await _next_frame(ws, "ready")
            response = await sam.http.post("/api/quality/evaluations", json=evaluation)
            assert response.status_code == 201, response.text
            pushed = await _next_frame(ws, "task")
        scored = response.json()
        # 1*1 + 4/5*3 + 0*1 = 3.4 of 5 (identity N/A)
        assert scored["total_pct"] == 68.0 and scored["auto_failed"] is False
        assert scored["agent_id"] == t["users"]["ann"]["_id"] and scored["scorecard_version"] == 1
        assert scored["evaluator_name"] == "Sam" and scored["channel"] == "webchat"
        task_id = scored["recontact"]["task_id"]
        assert pushed["task"]["id"] == task_id and pushed["task"]["kind"] == "recontact"

        # the call is scored too, with its recording
        call_eval = await sid.http.post(
            "/api/quality/evaluations",
            json={
                "contact_id": call_id,
                "recording_id": recording["_id"],
                "scorecard_id": card["id"],
                "answers": ALL_GOOD,
            },
        )
        assert call_eval.status_code == 201 and call_eval.json()["recording_id"] == recording["_id"]
        assert call_eval.json()["recontact"]["task_id"] is None
        assert [c["id"] for c in (await sam.http.get("/api/quality/queue")).json()] == []

        # the agent sees their own evaluation, with comments; nobody else's
        mine = (await ann.http.get("/api/quality/evaluations")).json()
        assert [e["id"] for e in mine] == [scored["id"]]
        assert mine[0]["comments"] == evaluation["comments"]
        assert mine[0]["item_comments"] == {"upsell": "Missed the upgrade."}
        assert (
            await ann.http.get("/api/quality/evaluations", params={"agent_id": t["users"]["ben"]["_id"]})
        ).status_code == 403
        detail = (await ann.http.get(f"/api/quality/evaluations/{scored['id']}")).json()
        assert detail["scorecard"]["sections"][0]["items"][0]["label"] == "Greets the customer"
        assert (await ann.http.get(f"/api/quality/contacts/{chat_id}")).json()["evaluations"][0][
            "id"
        ] == scored["id"]
        assert (await ben.http.get(f"/api/quality/evaluations/{scored['id']}")).status_code == 404
        assert [e["contact_id"] for e in (await ben.http.get("/api/quality/evaluations")).json()] == [call_id]
        assert (await sue.http.get(f"/api/quality/evaluations/{scored['id']}")).status_code == 404
        assert (await sue.http.get("/api/quality/evaluations")).json() == []
        assert len((await sam.http.get("/api/quality/evaluations")).json()) == 2

        # acknowledgement: the evaluated agent only
        url = f"/api/quality/evaluations/{scored['id']}/acknowledge"
        assert (await ben.http.post(url, json={"comment": "x"})).status_code == 404
        assert (await sam.http.post(url, json={"comment": "x"})).status_code == 403
        assert (await sue.http.post(url, json={"comment": "x"})).status_code == 404
        acked = await ann.http.post(url, json={"comment": "Will do, thanks", "dispute": False})
        assert acked.status_code == 200
        assert acked.json()["acknowledgement"]["comment"] == "Will do, thanks"
        seen = (await sam.http.get(f"/api/quality/evaluations/{scored['id']}")).json()
        assert seen["acknowledgement"]["dispute"] is False and seen["acknowledgement"]["at"]

        # the re-contact task: Ann's alone
        tasks = (await ann.http.get("/api/tasks")).json()
        task = next(x for x in tasks if x["id"] == task_id)
        assert task["kind"] == "recontact" and task["agent_id"] == t["users"]["ann"]["_id"]
        assert task["contact_id"] == chat_id and task["note"] == "Confirm the corrected invoice arrived"
        assert task["evaluation_id"] == scored["id"] and task["status"] == "open"
        assert task_id not in [x["id"] for x in (await ben.http.get("/api/tasks")).json()]
        assert task_id not in [x["id"] for x in (await sue.http.get("/api/tasks?scope=all")).json()]
        assert task_id in [x["id"] for x in (await sam.http.get("/api/tasks?scope=all")).json()]
        assert (await ann.http.get("/api/tasks?scope=all")).status_code == 403
        assert (await ben.http.post(f"/api/tasks/{task_id}/done")).status_code == 404
        assert (await ann.http.post(f"/api/tasks/{task_id}/done")).json()["status"] == "done"
        # shared tasks (callbacks, voicemail: no agent_id) are still everyone's
        shared = new_id()
        await ctx.db.tasks.insert_one(
            {
                "_id": shared,
                "tenant_id": t["tenant"]["_id"],
                "kind": "callback",
                "status": "open",
                "phone": "+15550111",
                "created_at": utcnow(),
            }
        )
        for agent in (ann, ben):
            assert shared in [x["id"] for x in (await agent.http.get("/api/tasks")).json()]

        # amendments: the evaluator or an admin; history kept, acknowledgement asked again
        amend = {"answers": ALL_GOOD, "comments": "Re-listened: all fine."}
        assert (await sid.http.put(f"/api/quality/evaluations/{scored['id']}", json=amend)).status_code == 403
        assert (await ann.http.put(f"/api/quality/evaluations/{scored['id']}", json=amend)).status_code == 403
        assert (await sue.http.put(f"/api/quality/evaluations/{scored['id']}", json=amend)).status_code == 404
        amended = await sam.http.put(f"/api/quality/evaluations/{scored['id']}", json=amend)
        assert amended.status_code == 200, amended.text
        body = amended.json()
        assert body["total_pct"] == 100.0 and body["revision"] == 2 and body["acknowledgement"] is None
        assert body["recontact"]["task_id"] == task_id  # kept, not duplicated
        assert [h["total_pct"] for h in body["history"]] == [68.0]
        assert body["history"][0]["acknowledgement"]["comment"] == "Will do, thanks"
        by_admin = await ada.http.put(
            f"/api/quality/evaluations/{scored['id']}",
            json={**amend, "answers": {**ALL_GOOD, "identity": False}},
        )
        assert by_admin.status_code == 200 and by_admin.json()["auto_failed"] is True
        assert by_admin.json()["total_pct"] == 0.0 and len(by_admin.json()["history"]) == 2
        assert (
            len([x for x in (await ann.http.get("/api/tasks?status=done")).json() if x["id"] == task_id]) == 1
        )
    finally:
        await ctx.db.close()
        for person in (sam, sid, ada, ann, ben, sue):
            await person.close()


async def test_editing_a_used_scorecard_makes_a_version(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": []}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sam, ann = await _people(hub_nobot, t, "sam", "ann")
    (sue,) = await _people(hub_nobot, other, "sue")
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        card = (await sam.http.post("/api/quality/scorecards", json=CARD)).json()
        # unused: edited in place
        renamed = await sam.http.put(
            f"/api/quality/scorecards/{card['id']}", json={**CARD, "name": "Chat QA"}
        )
        assert renamed.status_code == 200
        assert renamed.json()["id"] == card["id"] and renamed.json()["version"] == 1
        assert (await sue.http.put(f"/api/quality/scorecards/{card['id']}", json=CARD)).status_code == 404
        contact = await _contact(ctx, t["tenant"]["_id"], t["users"]["ann"])
        first = await sam.http.post(
            "/api/quality/evaluations",
            json={"contact_id": contact, "scorecard_id": card["id"], "answers": ALL_GOOD},
        )
        assert first.status_code == 201
        # used: a new version; the evaluation keeps the one it was scored on
        extra = {"title": "Close", "items": [{"key": "bye", "label": "Says bye"}]}
        changed = {**CARD, "name": "Chat QA", "sections": [*CARD["sections"], extra]}
        v2 = await sam.http.put(f"/api/quality/scorecards/{card['id']}", json=changed)
        assert v2.status_code == 200, v2.text
        v2_card = v2.json()
        assert v2_card["id"] != card["id"] and v2_card["version"] == 2
        assert v2_card["family_id"] == card["id"] and v2_card["supersedes"] == card["id"]
        old = (await sam.http.get(f"/api/quality/scorecards/{card['id']}")).json()
        assert old["status"] == "superseded" and old["superseded_by"] == v2_card["id"]
        assert [v["version"] for v in old["versions"]] == [1, 2]
        assert len(old["sections"]) == 2  # version 1 unchanged
        assert [c["id"] for c in (await sam.http.get("/api/quality/scorecards")).json()] == [v2_card["id"]]
        kept = (await sam.http.get(f"/api/quality/evaluations/{first.json()['id']}")).json()
        assert kept["scorecard_id"] == card["id"] and kept["scorecard_version"] == 1
        assert len(kept["scorecard"]["sections"]) == 2
        # an old version cannot be edited or used for new evaluations any more
        assert (await sam.http.put(f"/api/quality/scorecards/{card['id']}", json=CARD)).status_code == 409
        another = await _contact(ctx, t["tenant"]["_id"], t["users"]["ann"])
        stale = await sam.http.post(
            "/api/quality/evaluations",
            json={"contact_id": another, "scorecard_id": card["id"], "answers": ALL_GOOD},
        )
        assert stale.status_code == 409 and v2_card["id"] in stale.json()["detail"]
        on_v2 = await sam.http.post(
            "/api/quality/evaluations",
            json={
                "contact_id": another,
                "scorecard_id": v2_card["id"],
                "answers": {**ALL_GOOD, "bye": False},
            },
        )
        assert on_v2.status_code == 201 and on_v2.json()["total_pct"] == 87.5  # 7 of 8
        # the old evaluation is amended against version 1 (no "bye" item there)
        amended = await sam.http.put(
            f"/api/quality/evaluations/{first.json()['id']}", json={"answers": {**ALL_GOOD, "upsell": None}}
        )
        assert amended.status_code == 200 and amended.json()["scorecard_version"] == 1
        # both versions count as the same scorecard in filters
        family = (await sam.http.get("/api/quality/evaluations", params={"scorecard_id": card["id"]})).json()
        assert len(family) == 2
        # a used scorecard is archived, not deleted; an unused one is deleted
        gone = await sam.http.delete(f"/api/quality/scorecards/{v2_card['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "archived"
        assert (await sam.http.get("/api/quality/scorecards")).json() == []
        archived = (await sam.http.get("/api/quality/scorecards", params={"include_archived": "true"})).json()
        assert [c["status"] for c in archived] == ["archived"]
        assert (await sam.http.get(f"/api/quality/evaluations/{first.json()['id']}")).status_code == 200
        spare = (await sam.http.post("/api/quality/scorecards", json={**CARD, "name": "Spare"})).json()
        assert (await sue.http.delete(f"/api/quality/scorecards/{spare['id']}")).status_code == 404
        assert (await ann.http.delete(f"/api/quality/scorecards/{spare['id']}")).status_code == 403
        deleted = await sam.http.delete(f"/api/quality/scorecards/{spare['id']}")
        assert deleted.json()["status"] == "deleted"
        assert (await sam.http.get(f"/api/quality/scorecards/{spare['id']}")).status_code == 404
    finally:
        await ctx.db.close()
        for person in (sam, ann, sue):
            await person.close()


async def test_report_averages_and_csv(hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": [], "ben": []}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": [], "zed": []}, roles={"sue": ["supervisor"]})
    sam, ann = await _people(hub_nobot, t, "sam", "ann")
    (sue,) = await _people(hub_nobot, other, "sue")
    tid = t["tenant"]["_id"]
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        billing = (await sam.http.post("/api/queues", json={"name": "Billing"})).json()["id"]
        support = (await sam.http.post("/api/queues", json={"name": "Support"})).json()["id"]
        card = (await sam.http.post("/api/quality/scorecards", json=CARD)).json()
        short = (
            await sam.http.post(
                "/api/quality/scorecards",
                json={"name": "Short", "items": [{"key": "greeting", "label": "Hello", "weight": 1}]},
            )
        ).json()
        ann_u, ben_u = t["users"]["ann"], t["users"]["ben"]
        # (agent, queue, scorecard, answers, re-contact) -> expected total
        plan = [
            (ann_u, billing, card, ALL_GOOD, False),  # 100
            (ann_u, billing, card, {**ALL_GOOD, "accuracy": 2, "upsell": None}, True),  # (1+2+1.2)/6 = 70
            (ann_u, support, card, {**ALL_GOOD, "identity": False}, False),  # auto-fail: 0
            (
                ben_u,
                support,
                card,
                {"greeting": False, "identity": None, "accuracy": 5, "upsell": None},
                True,
            ),
            (ben_u, None, short, {"greeting": True}, False),  # 100
        ]
        totals = []
        for agent, queue, scorecard, answers, recontact in plan:
            contact = await _contact(ctx, tid, agent, queue_id=queue, channel="voice", phone="+15550123")
            made = await sam.http.post(
                "/api/quality/evaluations",
                json={
                    "contact_id": contact,
                    "scorecard_id": scorecard["id"],
                    "answers": answers,
                    "recontact": {"requested": recontact, "note": "call back"},
                },
            )
            assert made.status_code == 201, made.text
            totals.append(made.json()["total_pct"])
        assert totals == [100.0, 70.0, 0.0, 75.0, 100.0]  # ben's 2nd: 3 of (1+3)
        # noise: another tenant's evaluation does not count
        zed_contact = await _contact(ctx, other["tenant"]["_id"], other["users"]["zed"])
        sue_card = (await sue.http.post("/api/quality/scorecards", json=CARD)).json()
        assert (
            await sue.http.post(
                "/api/quality/evaluations",
                json={"contact_id": zed_contact, "scorecard_id": sue_card["id"], "answers": ALL_GOOD},
            )
        ).status_code == 201

        by_agent = (await sam.http.get("/api/quality/report", params={"group": "agent"})).json()
        rows = {r["name"]: r for r in by_agent["rows"]}
        assert set(rows) == {"Ann", "Ben"}
        assert rows["Ann"]["count"] == 3 and rows["Ann"]["avg_total_pct"] == 56.67  # (100+70+0)/3
        assert rows["Ann"]["auto_fail_count"] == 1 and rows["Ann"]["recontact_count"] == 1
        assert rows["Ben"]["count"] == 2 and rows["Ben"]["avg_total_pct"] == 87.5
        assert rows["Ben"]["auto_fail_count"] == 0 and rows["Ben"]["recontact_count"] == 1
        # per-item averages leave N/A out: Ann's accuracy 100, 40, 100; upsell 100, (N/A), 100
        assert rows["Ann"]["items"]["accuracy"] == {"avg_pct": 80.0, "count": 3}
        assert rows["Ann"]["items"]["upsell"] == {"avg_pct": 100.0, "count": 2}
        assert rows["Ann"]["items"]["identity"] == {"avg_pct": 66.67, "count": 3}
        assert rows["Ben"]["items"]["greeting"] == {"avg_pct": 50.0, "count": 2}  # no, then yes
        assert "identity" not in rows["Ben"]["items"] and "upsell" not in rows["Ben"]["items"]
        total = by_agent["total"]
        assert total["count"] == 5 and total["avg_total_pct"] == 69.0  # 345 / 5
        assert total["auto_fail_count"] == 1 and total["recontact_count"] == 2
        assert total["items"]["greeting"] == {"avg_pct": 80.0, "count": 5}
        assert by_agent["item_labels"]["accuracy"] == "Accurate answer"

        by_queue = (await sam.http.get("/api/quality/report", params={"group": "queue"})).json()
        queues = {r["name"]: r for r in by_queue["rows"]}
        assert set(queues) == {"Billing", "Support", "(no queue)"}
        assert queues["Billing"]["avg_total_pct"] == 85.0 and queues["Billing"]["count"] == 2
        assert queues["Support"]["avg_total_pct"] == 37.5 and queues["Support"]["auto_fail_count"] == 1
        assert queues["(no queue)"]["avg_total_pct"] == 100.0

        by_card = (await sam.http.get("/api/quality/report", params={"group": "scorecard"})).json()
        cards = {r["name"]: r for r in by_card["rows"]}
        assert cards["Chat quality"]["count"] == 4 and cards["Chat quality"]["avg_total_pct"] == 61.25
        assert cards["Short"]["key"] == short["id"] and cards["Short"]["avg_total_pct"] == 100.0

        # the period: nothing before today; until a past date excludes today's evaluations
        today = utcnow().date()
        empty = await sam.http.get(
            "/api/quality/report",
            params={"since": str(today - timedelta(days=9)), "until": str(today - timedelta(days=1))},
        )
        assert empty.status_code == 200 and empty.json()["rows"] == [] and empty.json()["total"]["count"] == 0
        window = await sam.http.get("/api/quality/report", params={"since": str(today), "until": str(today)})
        assert window.json()["total"]["count"] == 5
        assert (await sam.http.get("/api/quality/report", params={"group": "nope"})).status_code == 422
        assert (await sam.http.get("/api/quality/report", params={"since": "yesterday"})).status_code == 422
        assert (await ann.http.get("/api/quality/report")).status_code == 403
        # the same numbers per agent filter and in the evaluations list
        ann_only = (await sam.http.get("/api/quality/report", params={"agent_id": ann_u["_id"]})).json()
        assert [r["name"] for r in ann_only["rows"]] == ["Ann"] and ann_only["total"]["count"] == 3
        listed = (await sam.http.get("/api/quality/evaluations", params={"agent_id": ben_u["_id"]})).json()
        assert sorted(e["total_pct"] for e in listed) == [75.0, 100.0]
        future = await sam.http.get(
            "/api/quality/evaluations", params={"since": str(today + timedelta(days=1))}
        )
        assert future.json() == []

        # CSV export
        exported = await sam.http.get("/api/quality/report.csv", params={"group": "agent"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
        header = table[0]
        assert header[:6] == ["agent", "id", "evaluations", "avg_total_pct", "auto_fails", "recontacts"]
        assert "Accurate answer (accuracy)" in header
        by_name = {row[0]: row for row in table[1:]}
        assert by_name["Ann"][2:6] == ["3", "56.67", "1", "1"]
        assert by_name["Ann"][header.index("Accurate answer (accuracy)")] == "80.0"
        assert by_name["Total"][2:6] == ["5", "69.0", "1", "2"]
        assert (await ann.http.get("/api/quality/report.csv")).status_code == 403

        # random sampling among the contacts not scored yet
        fresh = [await _contact(ctx, tid, ann_u, closed_ago_s=10 + i) for i in range(5)]
        pool = (await sam.http.get("/api/quality/queue")).json()
        assert [c["id"] for c in pool] == fresh  # newest first, the scored ones left out
        sample = (await sam.http.get("/api/quality/queue", params={"sample": 3})).json()
        picked = [c["id"] for c in sample]
        assert len(set(picked)) == 3 and set(picked) <= set(fresh)
        assert picked == [c for c in fresh if c in picked]  # still newest first
        by_ben = (await sam.http.get("/api/quality/queue", params={"agent_id": ben_u["_id"]})).json()
        assert by_ben == []
    finally:
        await ctx.db.close()
        for person in (sam, ann, sue):
            await person.close()
