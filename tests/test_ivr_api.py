"""The IVR admin API against a real hub process and database: flows, prompts, roles, tenants."""

from __future__ import annotations

import io
import random
import wave
from typing import Any

import httpx

from bot.ivr import DEFAULT_FLOW
from tests.support import Agent, HubProcess

SUPERVISORS = {
    "agents": {"sam": [], "ann": ["general"], "eve": []},
    "roles": {"sam": ["supervisor"], "eve": ["editor"]},
}


def a_number() -> str:
    """A fresh E.164 number: flows are unique per number across the whole database."""
    return f"+1212{random.randrange(10**6, 10**7)}"


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def upload(client: Agent, data: bytes, filename: str = "hello.wav", **form: str) -> httpx.Response:
    return await client.http.post(
        "/api/ivr/prompts", files={"file": (filename, data, "audio/wav")}, data=form or None
    )


async def test_flow_crud_with_validation(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, **SUPERVISORS)
    sam = await signed_in(hub_nobot, t, "sam")
    number = a_number()
    body = {**DEFAULT_FLOW("someone-else", number), "tenant_id": "someone-else"}
    created = await sam.http.post("/api/ivr/flows", json=body)
    assert created.status_code == 201, created.text
    flow = created.json()
    assert flow["number"] == number and flow["name"] == "Northwind main line" and flow["created_at"]
    assert "tenant_id" not in flow and flow["id"] != body["_id"]  # the server assigns ids and tenant
    assert flow["nodes"]["welcome"]["prompt"] == {"text": "Thank you for calling Northwind."}

    listed = (await sam.http.get("/api/ivr/flows")).json()
    assert [f["id"] for f in listed] == [flow["id"]]
    assert (await sam.http.get(f"/api/ivr/flows/{flow['id']}")).json() == flow

    # a GET result can be edited and PUT back as is
    edited = {**flow, "name": "Night line", "number": a_number()}
    replaced = await sam.http.put(f"/api/ivr/flows/{flow['id']}", json=edited)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Night line" and replaced.json()["created_at"] == flow["created_at"]

    broken = {**edited, "start": "lobby"}
    response = await sam.http.put(f"/api/ivr/flows/{flow['id']}", json=broken)
    assert response.status_code == 422 and "start node 'lobby' is not defined" in response.json()["detail"]
    bad_time = DEFAULT_FLOW("t", a_number())
    bad_time["schedule"]["hours"]["mon"] = [["8am", "20:00"]]
    response = await sam.http.post("/api/ivr/flows", json=bad_time)
    assert response.status_code == 422 and "time '8am' must be HH:MM" in response.json()["detail"]
    assert (await sam.http.post("/api/ivr/flows", json=["not", "a", "flow"])).status_code == 422

    # one flow per number
    clash = await sam.http.post("/api/ivr/flows", json=DEFAULT_FLOW("t", edited["number"]))
    assert clash.status_code == 409 and "already has a flow" in clash.json()["detail"]
    unchanged = (await sam.http.get(f"/api/ivr/flows/{flow['id']}")).json()
    assert unchanged["name"] == "Night line"

    assert (await sam.http.delete(f"/api/ivr/flows/{flow['id']}")).json() == {"status": "deleted"}
    assert (await sam.http.get(f"/api/ivr/flows/{flow['id']}")).status_code == 404
    assert (await sam.http.delete(f"/api/ivr/flows/{flow['id']}")).status_code == 404
    assert (await sam.http.put(f"/api/ivr/flows/{flow['id']}", json=edited)).status_code == 404
    await sam.close()


async def test_only_admins_and_supervisors_manage_ivr(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot,
        agents={"ann": ["general"], "eve": [], "ada": []},
        roles={"eve": ["editor"], "ada": ["admin"]},
    )
    ada = await signed_in(hub_nobot, t, "ada")
    flow = (await ada.http.post("/api/ivr/flows", json=DEFAULT_FLOW("t", a_number()))).json()
    prompt = (await upload(ada, wav_bytes())).json()
    for name in ("ann", "eve"):
        client = await signed_in(hub_nobot, t, name)
        for method, path in (
            ("GET", "/api/ivr/flows"),
            ("GET", f"/api/ivr/flows/{flow['id']}"),
            ("POST", "/api/ivr/flows"),
            ("PUT", f"/api/ivr/flows/{flow['id']}"),
            ("DELETE", f"/api/ivr/flows/{flow['id']}"),
            ("GET", "/api/ivr/prompts"),
            ("GET", f"/api/ivr/prompts/{prompt['id']}"),
        ):
            response = await client.http.request(method, path, json={} if method in ("POST", "PUT") else None)
            assert response.status_code == 403, (name, method, path)
        assert (await upload(client, wav_bytes())).status_code == 403
        await client.close()
    async with httpx.AsyncClient(base_url=hub_nobot.url) as anonymous:
        assert (await anonymous.get("/api/ivr/flows")).status_code == 401
    await ada.close()


async def test_tenants_cannot_see_or_touch_each_others_flows_and_prompts(
    hub_nobot: HubProcess, tenant_in
) -> None:
    a = await tenant_in(hub_nobot, **SUPERVISORS)
    b = await tenant_in(hub_nobot, **SUPERVISORS)
    sam_a = await signed_in(hub_nobot, a, "sam")
    sam_b = await signed_in(hub_nobot, b, "sam")
    prompt = (await upload(sam_a, wav_bytes(), name="Welcome")).json()
    doc = DEFAULT_FLOW("t", a_number())
    doc["nodes"]["welcome"]["prompt"] = {"audio_id": prompt["id"]}
    created = await sam_a.http.post("/api/ivr/flows", json=doc)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]

    assert (await sam_b.http.get("/api/ivr/flows")).json() == []
    assert (await sam_b.http.get(f"/api/ivr/flows/{flow_id}")).status_code == 404
    assert (await sam_b.http.put(f"/api/ivr/flows/{flow_id}", json=doc)).status_code == 404
    assert (await sam_b.http.delete(f"/api/ivr/flows/{flow_id}")).status_code == 404
    assert (await sam_b.http.get(f"/api/ivr/prompts/{prompt['id']}")).status_code == 404
    assert (await sam_b.http.delete(f"/api/ivr/prompts/{prompt['id']}")).status_code == 404
    assert (await sam_b.http.get("/api/ivr/prompts")).json() == []
    # B cannot make its flow play A's audio
    stolen = DEFAULT_FLOW("t", a_number())
    stolen["nodes"]["hours"]["prompt"] = {"audio_id": prompt["id"]}
    response = await sam_b.http.post("/api/ivr/flows", json=stolen)
    assert response.status_code == 422 and "does not exist" in response.json()["detail"]

    # A still has everything, and cannot delete a prompt its flow plays
    assert (await sam_a.http.get(f"/api/ivr/flows/{flow_id}")).status_code == 200
    audio = await sam_a.http.get(f"/api/ivr/prompts/{prompt['id']}")
    assert audio.status_code == 200 and audio.content == wav_bytes()
    in_use = await sam_a.http.delete(f"/api/ivr/prompts/{prompt['id']}")
    assert in_use.status_code == 409 and "used by flow" in in_use.json()["detail"]
    for client in (sam_a, sam_b):
        await client.close()


async def test_prompt_upload_download_and_limits(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, **SUPERVISORS)
    sam = await signed_in(hub_nobot, t, "sam")
    data = wav_bytes(2.0, 8000)
    response = await upload(sam, data, filename="../../etc/greeting.wav", name="Greeting")
    assert response.status_code == 201, response.text
    prompt = response.json()
    assert prompt["name"] == "Greeting" and prompt["filename"] == "greeting.wav"
    assert prompt["size"] == len(data) and prompt["duration_s"] == 2.0
    assert prompt["sample_rate"] == 8000 and prompt["channels"] == 1 and prompt["codec"] == "pcm"

    audio = await sam.http.get(f"/api/ivr/prompts/{prompt['id']}")
    assert audio.status_code == 200 and audio.content == data
    assert audio.headers["content-type"] == "audio/wav"
    assert [p["id"] for p in (await sam.http.get("/api/ivr/prompts")).json()] == [prompt["id"]]
    for missing in ("not-an-id", "65f0c0ffee0000000000abcd"):
        assert (await sam.http.get(f"/api/ivr/prompts/{missing}")).status_code == 404

    too_big = await upload(sam, wav_bytes(6 * 1024 * 1024 / 16000, 8000))  # 6 MB
    assert too_big.status_code == 413 and "larger than 5 MB" in too_big.json()["detail"]
    just_over = await upload(sam, b"RIFF" + b"\x00" * (5 * 1024 * 1024 - 3))  # passes the header check
    assert just_over.status_code == 413 and "larger than 5 MB" in just_over.json()["detail"]
    for name, junk in (("song.mp3", b"ID3\x03\x00" + b"\x00" * 2000), ("notes.txt", b"hello world")):
        response = await upload(sam, junk, filename=name)
        assert response.status_code == 415 and "WAV" in response.json()["detail"]
    truncated = await upload(sam, data[:20])
    assert truncated.status_code == 415
    no_file = await sam.http.post("/api/ivr/prompts", data={"name": "x"}, files={"other": ("a", b"b")})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    assert (await sam.http.post("/api/ivr/prompts", json={"file": "x"})).status_code == 422
    # the rejected uploads left nothing behind
    assert len((await sam.http.get("/api/ivr/prompts")).json()) == 1

    assert (await sam.http.delete(f"/api/ivr/prompts/{prompt['id']}")).json() == {"status": "deleted"}
    assert (await sam.http.get(f"/api/ivr/prompts/{prompt['id']}")).status_code == 404
    await sam.close()
