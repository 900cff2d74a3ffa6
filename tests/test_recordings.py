"""Call recordings: who may list, play, download and delete them; range requests; settings;
retention; the access audit trail. Against the real embedded database and a hub process."""

from __future__ import annotations

import asyncio
import io
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.errors import PyMongoError

from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant
from media import retention
from media.recording import BUCKET, read_channels, store_recording
from media.retention import purge_expired, retention_loop
from tests.conftest import context_for
from tests.support import Agent, HubProcess

RATE = 8000
LEFT_HZ, RIGHT_HZ = 600, 1000


def stereo_wav(seconds: float = 1.0, rate: int = RATE) -> bytes:
    """Left (customer) a 600 Hz tone, right (agent) a 1000 Hz tone, 16-bit PCM."""
    t = np.arange(int(seconds * rate)) / rate
    left = (8000 * np.sin(2 * np.pi * LEFT_HZ * t)).astype("<i2")
    right = (8000 * np.sin(2 * np.pi * RIGHT_HZ * t)).astype("<i2")
    stereo = np.empty(left.size * 2, dtype="<i2")
    stereo[0::2], stereo[1::2] = left, right
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(stereo.tobytes())
    return out.getvalue()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


async def add_recording(
    ctx: AppContext,
    tenant_id: str,
    agent_ids: list[str],
    *,
    seconds: float = 1.0,
    started_at: datetime | None = None,
    channel: str = "voice",
) -> dict[str, Any]:
    contact_id = new_id()
    started_at = started_at or utcnow() - timedelta(minutes=5)
    await ctx.db.contacts.insert_one(
        {
            "_id": contact_id,
            "tenant_id": tenant_id,
            "channel": channel,
            "status": "closed",
            "opened_at": started_at,
            "closed_at": started_at + timedelta(seconds=seconds),
        }
    )
    return await store_recording(
        ctx,
        tenant_id=tenant_id,
        contact_id=contact_id,
        wav=stereo_wav(seconds),
        sample_rate=RATE,
        duration_s=seconds,
        started_at=started_at,
        agent_ids=agent_ids,
        agent_names=[f"Agent {a[:4]}" for a in agent_ids],
    )


async def stored(ctx: AppContext, collection: str, doc_id: str) -> dict[str, Any]:
    doc = await ctx.db.db[collection].find_one({"_id": doc_id})
    assert doc is not None, (collection, doc_id)
    return doc


async def logged_in(hub: HubProcess, slug: str, *names: str) -> list[Agent]:
    users = [Agent(hub.url, slug, f"{name}@t.test") for name in names]
    for user in users:
        await user.login()
    return users


async def close_all(*users: Agent) -> None:
    for user in users:
        await user.close()


@pytest.fixture
async def hub_db(hub_nobot: HubProcess, mongo: EmbeddedDatabase) -> Any:
    """Direct access to the database of the `hub_nobot` process."""
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    yield ctx
    await ctx.db.close()


STAFF = {"adam": [], "sam": [], "ann": ["general"], "ben": ["general"], "eve": []}
ROLES = {"adam": ["admin"], "sam": ["supervisor"], "eve": ["editor"]}


async def test_permission_matrix_across_roles_and_tenants(
    hub_nobot: HubProcess, hub_db: AppContext, tenant_in
) -> None:
    a = await tenant_in(hub_nobot, agents=STAFF, roles=ROLES)
    b = await tenant_in(
        hub_nobot,
        agents={"bob": [], "sue": [], "bea": ["general"]},
        roles={"bob": ["admin"], "sue": ["supervisor"]},
    )
    ann_id, ben_id = a["users"]["ann"]["_id"], a["users"]["ben"]["_id"]
    rec = await add_recording(hub_db, a["tenant"]["_id"], [ann_id])
    other = await add_recording(hub_db, a["tenant"]["_id"], [ben_id])
    rid = rec["_id"]
    adam, sam, ann, ben, eve = await logged_in(hub_nobot, a["slug"], "adam", "sam", "ann", "ben", "eve")
    bob, sue, bea = await logged_in(hub_nobot, b["slug"], "bob", "sue", "bea")
    anon = httpx.AsyncClient(base_url=hub_nobot.url, timeout=20)
    wav = stereo_wav()
    try:
        # ---- the list: everything for supervisors and admins, own calls for agents
        for user in (adam, sam):
            listed = await user.http.get("/api/recordings")
            assert listed.status_code == 200, listed.text
            assert {r["id"] for r in listed.json()} == {rid, other["_id"]}
        mine = (await ann.http.get("/api/recordings")).json()
        assert [r["id"] for r in mine] == [rid]
        assert mine[0]["agent_ids"] == [ann_id] and mine[0]["channel"] == "voice"
        assert mine[0]["contact_id"] == rec["contact_id"] and mine[0]["duration_s"] == 1.0
        assert "file_id" not in mine[0] and mine[0]["audio_url"] == f"/api/recordings/{rid}/audio"
        assert [r["id"] for r in (await ben.http.get("/api/recordings")).json()] == [other["_id"]]
        assert (await eve.http.get("/api/recordings")).status_code == 403
        assert (await anon.get("/api/recordings")).status_code == 401
        # filters: contact, agent (an agent cannot widen to someone else's calls), time
        by_contact = await sam.http.get("/api/recordings", params={"contact_id": rec["contact_id"]})
        assert [r["id"] for r in by_contact.json()] == [rid]
        by_agent = await sam.http.get("/api/recordings", params={"agent_id": ben_id})
        assert [r["id"] for r in by_agent.json()] == [other["_id"]]
        assert (await ann.http.get("/api/recordings", params={"agent_id": ben_id})).json() == []
        future = (utcnow() + timedelta(hours=1)).isoformat()
        past = (utcnow() - timedelta(hours=1)).isoformat()
        assert (await sam.http.get("/api/recordings", params={"since": future})).json() == []
        assert (await sam.http.get("/api/recordings", params={"until": past})).json() == []
        window = await sam.http.get("/api/recordings", params={"since": past, "until": future, "limit": 1})
        assert len(window.json()) == 1
        assert (await sam.http.get("/api/recordings", params={"limit": 0})).status_code == 422

        # ---- metadata, audio, download per role
        expected = {adam: 200, sam: 200, ann: 200, ben: 404, eve: 403}
        for user, code in expected.items():
            for suffix in ("", "/audio", "/download"):
                response = await user.http.get(f"/api/recordings/{rid}{suffix}")
                assert response.status_code == code, (user.email, suffix, response.text)
                if code == 200 and suffix:
                    assert response.content == wav
                    assert response.headers["content-type"] == "audio/wav"
                    assert response.headers["cache-control"] == "private, no-store"
        for suffix in ("", "/audio", "/download"):
            assert (await anon.get(f"/api/recordings/{rid}{suffix}")).status_code == 401

        # ---- another tenant: not found, whatever the role
        for user in (bob, sue, bea):
            assert rid not in {r["id"] for r in (await user.http.get("/api/recordings")).json()}
            filtered = await user.http.get("/api/recordings", params={"contact_id": rec["contact_id"]})
            assert filtered.status_code == 200 and filtered.json() == []
            for suffix in ("", "/audio", "/download"):
                response = await user.http.get(f"/api/recordings/{rid}{suffix}")
                assert response.status_code == 404, (user.email, suffix, response.text)
        assert (await bob.http.delete(f"/api/recordings/{rid}")).status_code == 404
        assert (await anon.delete(f"/api/recordings/{rid}")).status_code == 401

        # ---- a tenant that does not let agents play their own calls
        off = await adam.http.put("/api/recordings/settings", json={"agents_play_own": False})
        assert off.status_code == 200 and off.json()["agents_play_own"] is False
        for suffix in ("", "/audio", "/download"):
            assert (await ann.http.get(f"/api/recordings/{rid}{suffix}")).status_code == 403
        assert (await ann.http.get("/api/recordings")).status_code == 403
        assert (await sam.http.get(f"/api/recordings/{rid}/audio")).status_code == 200
        # tenant B's agent still may (its own tenant's settings apply) but sees nothing of A
        assert (await bea.http.get("/api/recordings")).json() == []
        await adam.http.put("/api/recordings/settings", json={"agents_play_own": True})
        assert (await ann.http.get(f"/api/recordings/{rid}")).status_code == 200

        # ---- deleting: admins of the tenant only; the audio goes, the document stays
        for user in (sam, ann, ben, eve):
            assert (await user.http.delete(f"/api/recordings/{rid}")).status_code == 403
        assert (await adam.http.delete(f"/api/recordings/{rid}")).status_code == 204
        gone = await sam.http.get(f"/api/recordings/{rid}")
        assert gone.status_code == 200 and gone.json()["delete_reason"] == "manual"
        assert gone.json()["deleted_at"] and gone.json()["audio_url"] is None
        for suffix in ("/audio", "/download"):
            assert (await sam.http.get(f"/api/recordings/{rid}{suffix}")).status_code == 410
        assert (await adam.http.delete(f"/api/recordings/{rid}")).status_code == 410
        assert rid not in {r["id"] for r in (await sam.http.get("/api/recordings")).json()}
        doc = await stored(hub_db, "recordings", rid)
        assert doc["deleted_by"] == a["users"]["adam"]["_id"]
        assert await hub_db.db.db[f"{BUCKET}.files"].find_one({"_id": rec["file_id"]}) is None
        assert await hub_db.db.db[f"{BUCKET}.chunks"].find_one({"files_id": rec["file_id"]}) is None
        # the other recording is untouched by all of this
        assert await hub_db.db.db[f"{BUCKET}.files"].find_one({"_id": other["file_id"]}) is not None
    finally:
        await anon.aclose()
        await close_all(adam, sam, ann, ben, eve, bob, sue, bea)


async def test_audio_ranges_channels_and_audit_trail(
    hub_nobot: HubProcess, hub_db: AppContext, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": ["general"], "sam": []}, roles={"sam": ["supervisor"]})
    ann_id = t["users"]["ann"]["_id"]
    started = datetime(2024, 5, 17, 9, 30, 5, tzinfo=UTC)
    # 10 s of 8 kHz stereo: 320 kB, more than one 255 kB GridFS chunk
    rec = await add_recording(hub_db, t["tenant"]["_id"], [ann_id], seconds=10.0, started_at=started)
    wav = stereo_wav(10.0)
    size = len(wav)
    assert rec["bytes"] == size > 255 * 1024
    ann, sam = await logged_in(hub_nobot, t["slug"], "ann", "sam")
    url = f"/api/recordings/{rec['_id']}"
    try:
        download = await ann.http.get(f"{url}/download")
        assert download.status_code == 200
        assert download.headers["content-disposition"] == (
            f'attachment; filename="recording-{rec["contact_id"]}-2024-05-17_093005.wav"'
        )
        assert download.headers["content-length"] == str(size)
        assert download.headers["accept-ranges"] == "bytes"
        assert download.headers["cache-control"] == "private, no-store"
        rate, customer, agent = read_channels(download.content)
        assert rate == RATE and customer.size == agent.size == 10 * RATE
        assert abs(peak_hz(customer, rate) - LEFT_HZ) < 2
        assert abs(peak_hz(agent, rate) - RIGHT_HZ) < 2

        cases = {
            "bytes=0-99": (0, 99),
            "bytes=100-": (100, size - 1),
            "bytes=-10": (size - 10, size - 1),
            "bytes=261000-262000": (261000, 262000),  # across a chunk boundary
            f"bytes=5-{size + 1000}": (5, size - 1),  # clamped to the end
        }
        for header, (first, last) in cases.items():
            part = await ann.http.get(f"{url}/audio", headers={"Range": header})
            assert part.status_code == 206, (header, part.text)
            assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert part.headers["content-length"] == str(last - first + 1)
            assert part.headers["content-type"] == "audio/wav"
            assert part.content == wav[first : last + 1], header
        for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
            refused = await ann.http.get(f"{url}/audio", headers={"Range": header})
            assert refused.status_code == 416, header
            assert refused.headers["content-range"] == f"bytes */{size}"
        # several ranges, other units and nonsense: the whole file (allowed by RFC 9110)
        for header in ("bytes=0-1,5-6", "items=0-1", "bytes=abc", "bytes=9-3"):
            whole = await ann.http.get(f"{url}/audio", headers={"Range": header})
            assert whole.status_code == 200 and whole.content == wav, header
        played = await sam.http.get(f"{url}/audio")
        assert played.status_code == 200 and played.content == wav

        # one audit row per playback / download request, refused ranges not counted
        rows = await hub_db.db.recording_access.find({"recording_id": rec["_id"]}).sort("at", 1).to_list()
        assert len(rows) == 1 + len(cases) + 4 + 1
        assert [r["action"] for r in rows] == ["download"] + ["play"] * (len(cases) + 5)
        assert {r["user_id"] for r in rows[:-1]} == {ann_id}
        assert rows[-1]["user_id"] == t["users"]["sam"]["_id"] and rows[-1]["roles"] == ["supervisor"]
        assert rows[1]["range"] == [0, 99] and rows[0]["range"] is None
        assert all(
            r["tenant_id"] == t["tenant"]["_id"] and r["contact_id"] == rec["contact_id"] for r in rows
        )
        assert all(r["user_email"] in ("ann@t.test", "sam@t.test") and r["at"] for r in rows)
        # metadata reads are not playbacks
        await ann.http.get(url)
        assert await hub_db.db.recording_access.count_documents({"recording_id": rec["_id"]}) == len(rows)
    finally:
        await close_all(ann, sam)


async def test_settings_are_validated_and_per_tenant(
    hub_nobot: HubProcess, hub_db: AppContext, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents=STAFF, roles=ROLES)
    other = await tenant_in(hub_nobot, agents={"bob": []}, roles={"bob": ["admin"]})
    adam, sam, ann, eve = await logged_in(hub_nobot, t["slug"], "adam", "sam", "ann", "eve")
    (bob,) = await logged_in(hub_nobot, other["slug"], "bob")
    try:
        defaults = await sam.http.get("/api/recordings/settings")
        assert defaults.status_code == 200
        assert defaults.json() == {
            "enabled": True,
            "disclosure": False,
            "disclosure_text": "This call may be recorded for quality and training purposes.",
            "retention_days": 90,
            "agents_play_own": True,
        }
        for user in (ann, eve):
            assert (await user.http.get("/api/recordings/settings")).status_code == 403
        for user in (sam, ann, eve):
            response = await user.http.put("/api/recordings/settings", json={"retention_days": 30})
            assert response.status_code == 403
        bad_bodies = [
            {"retention_days": -1},
            {"retention_days": 3651},
            {"retention_days": "30"},
            {"retention_days": 1.5},
            {"enabled": "yes"},
            {"disclosure_text": "x" * 501},
            {"disclosure_text": "   "},
            {"record_everything": True},
        ]
        for body in bad_bodies:
            response = await adam.http.put("/api/recordings/settings", json=body)
            assert response.status_code == 422, (body, response.text)
        detail = (await adam.http.put("/api/recordings/settings", json={"retention_days": 4000})).json()
        assert "retention_days" in detail["detail"]
        assert (await adam.http.put("/api/recordings/settings", json=["x"])).status_code == 422
        assert (await sam.http.get("/api/recordings/settings")).json() == defaults.json()  # nothing stored

        wanted = {
            "enabled": False,
            "disclosure": True,
            "disclosure_text": "x" * 500,
            "retention_days": 3650,
            "agents_play_own": False,
        }
        saved = await adam.http.put("/api/recordings/settings", json=wanted)
        assert saved.status_code == 200 and saved.json() == wanted
        assert (await sam.http.get("/api/recordings/settings")).json() == wanted
        tenant = await stored(hub_db, "tenants", t["tenant"]["_id"])
        assert tenant["recording"] == wanted
        # a partial body keeps the other fields; 0 = keep forever
        partial = await adam.http.put("/api/recordings/settings", json={"retention_days": 0})
        assert partial.json() == {**wanted, "retention_days": 0}
        # the other tenant still has the defaults
        assert (await bob.http.get("/api/recordings/settings")).json() == defaults.json()
    finally:
        await close_all(adam, sam, ann, eve, bob)


@pytest.fixture
async def own_db(mongo: EmbeddedDatabase) -> Any:
    """A database of its own, so that purge counts are exact."""
    ctx = context_for(mongo.uri, f"retention_{new_id()[:8]}")
    await ctx.db.ensure_indexes()
    yield ctx
    await ctx.db.client.drop_database(ctx.db.db.name)
    await ctx.db.close()


async def test_retention_purges_old_audio_and_keeps_the_trail(own_db: AppContext) -> None:
    ctx, now = own_db, utcnow()
    monthly = await create_tenant(ctx, f"r-{new_id()[:10]}", "Thirty days")
    forever = await create_tenant(ctx, f"r-{new_id()[:10]}", "Keeps everything")
    default = await create_tenant(ctx, f"r-{new_id()[:10]}", "Default 90 days")
    await ctx.db.tenants.update_one({"_id": monthly["_id"]}, {"$set": {"recording": {"retention_days": 30}}})
    await ctx.db.tenants.update_one({"_id": forever["_id"]}, {"$set": {"recording": {"retention_days": 0}}})

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    old = await add_recording(ctx, monthly["_id"], ["a1"], started_at=ago(31))
    recent = await add_recording(ctx, monthly["_id"], ["a1"], started_at=ago(29))
    ancient = await add_recording(ctx, forever["_id"], ["a2"], started_at=ago(4000))
    stale = await add_recording(ctx, default["_id"], ["a3"], started_at=ago(91))
    fresh = await add_recording(ctx, default["_id"], ["a3"], started_at=ago(89))

    assert await purge_expired(ctx, now=now) == 2
    grid = AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET)
    for rec in (old, stale):
        doc = await stored(ctx, "recordings", rec["_id"])
        assert doc["delete_reason"] == "retention" and doc["deleted_at"] is not None
        assert doc["contact_id"] == rec["contact_id"] and doc["duration_s"] == 1.0  # the trail stays
        with pytest.raises(NoFile):
            await grid.open_download_stream(rec["file_id"])
        assert await ctx.db.db[f"{BUCKET}.chunks"].find_one({"files_id": rec["file_id"]}) is None
    for rec in (recent, ancient, fresh):
        doc = await stored(ctx, "recordings", rec["_id"])
        assert doc["deleted_at"] is None and doc["delete_reason"] is None
        stream = await grid.open_download_stream(rec["file_id"])
        assert await stream.read() == stereo_wav()
    # a second pass changes nothing (the marks are not rewritten)
    marked = (await stored(ctx, "recordings", old["_id"]))["deleted_at"]
    assert await purge_expired(ctx, now=now) == 0
    assert (await stored(ctx, "recordings", old["_id"]))["deleted_at"] == marked
    # a file already gone (an interrupted pass) is still marked
    orphan = await add_recording(ctx, monthly["_id"], ["a1"], started_at=ago(60))
    await grid.delete(orphan["file_id"])
    assert await purge_expired(ctx, now=now) == 1
    assert (await stored(ctx, "recordings", orphan["_id"]))["delete_reason"] == "retention"


async def test_retention_loop_survives_database_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    recovered = asyncio.Event()

    async def flaky(ctx: AppContext, now: datetime | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise PyMongoError("database unreachable")
        recovered.set()
        return 0

    monkeypatch.setattr(retention, "purge_expired", flaky)
    task = asyncio.create_task(retention_loop(None, interval_s=0.01))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(recovered.wait(), 5)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls >= 3


async def test_recordings_page_and_links(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents=STAFF, roles=ROLES)
    sam, ann, eve = await logged_in(hub_nobot, t["slug"], "sam", "ann", "eve")
    try:
        for user in (sam, ann):
            page = await user.http.get("/recordings")
            assert page.status_code == 200 and "/static/recordings.js" in page.text
        refused = await eve.http.get("/recordings")
        assert refused.status_code == 403 and "Not for your role" in refused.text
        async with httpx.AsyncClient(base_url=hub_nobot.url) as anonymous:
            redirect = await anonymous.get("/recordings")
            assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
            script = await anonymous.get("/static/recordings.js")
            assert script.status_code == 200 and "/api/recordings" in script.text
            assert 'id="recordings-link"' in (await anonymous.get("/static/agent.html")).text
            assert 'href="/recordings"' in (await anonymous.get("/static/wallboard.html")).text
    finally:
        await close_all(sam, ann, eve)
