"""Campaigns over HTTP against a real hub: settings validation, the state machine, progress,
results with callbacks booked to the same agent, and the Excel export."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook

from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from routing.campaigns import Campaign, next_attempt_after
from tests.conftest import context_for
from tests.support import Agent, HubProcess

CALLER_ID = "+14155550123"


def preview(**overrides: Any) -> dict[str, Any]:
    """A preview campaign: agents dial it themselves, so the hub's dialer leaves it alone here."""
    return {"name": "Spring renewals", "type": "preview", "caller_id": CALLER_ID, **overrides}


async def seed(
    mongo: EmbeddedDatabase, hub: HubProcess, tenant_id: str, campaign_id: str, agent_id: str
) -> None:
    """Three targets (one called by the agent, one answered attempt, one abandoned) and an
    approved caller id, written as the list import and the dialer would."""
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        await ctx.db.caller_ids.insert_one(
            {"_id": new_id(), "tenant_id": tenant_id, "number": CALLER_ID, "status": "approved"}
        )
        for index, number in enumerate(["+14155550101", "+14155550102", "+14155550103"]):
            await ctx.db.campaign_targets.insert_one(
                {
                    "_id": f"target-{campaign_id}-{index}",
                    "tenant_id": tenant_id,
                    "campaign_id": campaign_id,
                    "number": number,
                    "name": f"Customer {index}",
                    "status": "pending",
                    "attempts": 0,
                    "last_agent_id": agent_id if index == 0 else None,
                }
            )
        await ctx.db.dial_attempts.insert_many(
            [
                {"_id": new_id(), "tenant_id": tenant_id, "campaign_id": campaign_id, "outcome": "answered"},
                {"_id": new_id(), "tenant_id": tenant_id, "campaign_id": campaign_id, "outcome": "answered"},
                {"_id": new_id(), "tenant_id": tenant_id, "campaign_id": campaign_id, "outcome": "abandoned"},
                {"_id": new_id(), "tenant_id": tenant_id, "campaign_id": campaign_id, "outcome": "busy"},
            ]
        )
    finally:
        await ctx.db.close()


def test_settings_are_validated_as_a_whole() -> None:
    with pytest.raises(ValueError, match="robot campaign needs flow_id or questionnaire_id"):
        Campaign.model_validate({"tenant_id": "t", "name": "x", "type": "robot"})
    with pytest.raises(ValueError, match="not a valid number"):
        Campaign.model_validate({"tenant_id": "t", "name": "x", "type": "preview", "caller_id": "+1555"})
    with pytest.raises(ValueError, match="start first"):
        Campaign.model_validate(
            {
                "tenant_id": "t",
                "name": "x",
                "type": "sms",
                "sms_text": "hi",
                "schedule": {"windows": {"mon": [["21:00", "08:00"]]}},
            }
        )
    with pytest.raises(ValueError, match="greater than or equal to 15"):
        Campaign.model_validate({"tenant_id": "t", "name": "x", "type": "preview", "ring_timeout_s": 5})
    ok = Campaign.model_validate(
        {"tenant_id": "t", "name": "x", "type": "preview", "caller_id": "+1 (415) 555-0123"}
    )
    assert ok.caller_id == CALLER_ID and ok.schedule.windows["sun"] == [("08:00", "21:00")]


def test_retry_waits_per_outcome() -> None:
    campaign = Campaign.model_validate(
        {"tenant_id": "t", "name": "x", "type": "preview", "retries": {"busy": {"max": 2, "wait_s": 600}}}
    )
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert next_attempt_after(campaign, "busy", 1, now) == now + timedelta(seconds=600)
    assert next_attempt_after(campaign, "busy", 2, now) == now + timedelta(seconds=600)
    assert next_attempt_after(campaign, "busy", 3, now) is None  # two retries used
    assert next_attempt_after(campaign, "no_answer", 1, now) == now + timedelta(seconds=3600)
    assert next_attempt_after(campaign, "answered", 1, now) is None


async def test_campaign_life_results_and_export(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    other = await tenant_in(hub_nobot, agents={"zed": ["general"]}, roles={"zed": ["supervisor"]})
    sam, ann, zed = (
        Agent(hub_nobot.url, s, f"{n}@t.test")
        for s, n in ((t["slug"], "sam"), (t["slug"], "ann"), (other["slug"], "zed"))
    )
    for user in (sam, ann, zed):
        await user.login()
    ann_id = t["users"]["ann"]["_id"]

    bad = await sam.http.post("/api/campaigns", json={"name": "x", "type": "broadcast"})
    assert bad.status_code == 422 and "prompt_id" in bad.json()["detail"]
    assert (await ann.http.post("/api/campaigns", json=preview())).status_code == 403
    created = await sam.http.post("/api/campaigns", json=preview(priority=5))
    assert created.status_code == 201, created.text
    campaign = created.json()
    cid = campaign["id"]
    assert (
        campaign["state"] == "draft" and campaign["ring_timeout_s"] == 30 and campaign["frequency_days"] == 30
    )

    # nothing to dial yet
    refused = await sam.http.post(f"/api/campaigns/{cid}/start")
    assert refused.status_code == 409 and "import a list" in refused.json()["detail"]
    await seed(mongo, hub_nobot, t["tenant"]["_id"], cid, ann_id)
    edited = await sam.http.put(f"/api/campaigns/{cid}", json={"pacing_ratio": 2.0, "interval_s": 1})
    assert edited.status_code == 200 and edited.json()["pacing_ratio"] == 2.0
    assert (await sam.http.put(f"/api/campaigns/{cid}", json={"state": "running"})).status_code == 409

    for action, state in (("start", "running"), ("pause", "paused"), ("resume", "running")):
        moved = await sam.http.post(f"/api/campaigns/{cid}/{action}")
        assert moved.status_code == 200 and moved.json()["state"] == state, moved.text
    assert (await sam.http.put(f"/api/campaigns/{cid}", json={"priority": 9})).status_code == 409  # running
    assert (await sam.http.post(f"/api/campaigns/{cid}/resume")).status_code == 409
    assert (await zed.http.get(f"/api/campaigns/{cid}")).status_code == 404
    assert (await zed.http.post(f"/api/campaigns/{cid}/pause")).status_code == 404

    figures = (await sam.http.get(f"/api/campaigns/{cid}/progress")).json()
    assert figures["targets"] == 3 and figures["by_status"] == {"pending": 3}
    assert figures["attempts"] == 4 and figures["abandon_rate"] == pytest.approx(1 / 3, abs=1e-3)

    # the agent records a result with a callback: it comes back to her at that time
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    target = f"target-{cid}-0"
    result = await ann.http.post(
        f"/api/campaigns/{cid}/targets/{target}/result",
        json={
            "disposition": "strong_intent",
            "note": "call back after lunch",
            "callback_at": when.isoformat(),
        },
    )
    assert result.status_code == 200 and result.json()["status"] == "pending", result.text
    not_hers = await ann.http.post(
        f"/api/campaigns/{cid}/targets/target-{cid}-1/result", json={"disposition": "success"}
    )
    assert not_hers.status_code == 404
    past = await ann.http.post(
        f"/api/campaigns/{cid}/targets/{target}/result",
        json={"disposition": "intent", "callback_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
    )
    assert past.status_code == 422
    done = await sam.http.post(
        f"/api/campaigns/{cid}/targets/target-{cid}-1/result", json={"disposition": "declined"}
    )
    assert done.status_code == 200 and done.json()["status"] == "done"
    codes = await sam.http.put(
        "/api/campaigns/dispositions",
        json=[{"code": "wrong_person", "label": "Wrong person", "class": "unreachable"}],
    )
    assert codes.status_code == 200 and [c["code"] for c in codes.json()][-1] == "wrong_person"
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        booked = await ctx.db.campaign_targets.find_one({"_id": target})
    finally:
        await ctx.db.close()
    assert booked is not None and booked["assigned_agent_id"] == ann_id
    assert (
        booked["next_attempt_at"].replace(tzinfo=UTC) == when
        and booked["disposition_class"] == "strong_intent"
    )

    export = await sam.http.get(f"/api/campaigns/{cid}/results.xlsx")
    assert export.status_code == 200
    book = load_workbook(io.BytesIO(export.content))
    rows = list(book["Results"].iter_rows(values_only=True))
    assert rows[0][0] == "Number" and len(rows) == 4
    by_number = {row[0]: row for row in rows[1:]}
    assert by_number["+14155550101"][5] == "strong_intent" and by_number["+14155550102"][6] == "declined"
    summary = dict(book["Summary"].iter_rows(values_only=True))
    assert summary["Targets"] == 3 and summary["declined"] == 1

    stopped = await sam.http.post(f"/api/campaigns/{cid}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 409
    for user in (sam, ann, zed):
        await user.close()
