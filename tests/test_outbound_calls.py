"""Outbound calls through the real `twilio` client against a local Twilio double and a real hub.

The dialer's side (placing a call) runs in this process with a context on the hub's
database; Twilio's side (callbacks, the TwiML request, the media stream) reaches the
`hub_nobot` process, whose own REST client (hanging up) is pointed at the same double.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from channels.twilio.outbound import PlacementError, TwilioCallError, close_rest_client, hang_up, place_call
from hub.app import create_app
from hub.context import AppContext
from hub.db import Doc
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.ids import new_id, utcnow
from hub.settings import Settings
from tests.conftest import context_for, make_tenant
from tests.support import TEST_SECRET, TWILIO_TOKEN, HubProcess
from tests.twilio_double import TwilioDouble
from tests.voice_support import TwilioCaller

CALLEE = "+14155550123"
CALLER_ID = "+15557770200"


@pytest.fixture
async def dialer(
    mongo: EmbeddedDatabase, hub_nobot: HubProcess, twilio_double: TwilioDouble
) -> AsyncIterator[AppContext]:
    """What the dialer has: the hub's database, its public URL and Twilio credentials."""
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    ctx.settings = dataclasses.replace(
        ctx.settings,
        public_url=hub_nobot.url,
        twilio_account_sid=twilio_double.account_sid,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_api_base=twilio_double.url,
    )
    yield ctx
    await close_rest_client(ctx)
    await ctx.db.close()


async def new_attempt(ctx: AppContext, tenant_id: str, number: str = CALLEE) -> Doc:
    """A dial attempt as the dialer writes it before placing the call (docs/outbound.md)."""
    attempt: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "campaign_id": "camp-" + new_id()[:8],
        "target_id": "target-" + new_id()[:8],
        "number": number,
        "call_sid": None,
        "placed_at": utcnow(),
        "answered_at": None,
        "answered_by": None,
        "ended_at": None,
        "outcome": None,
    }
    await ctx.db.dial_attempts.insert_one(attempt)
    return attempt


async def call(ctx: AppContext, attempt: Doc, **options: Any) -> str:
    settings: dict[str, Any] = {"ring_timeout_s": 25, "amd": True, "record": True, **options}
    return await place_call(
        ctx,
        tenant_id=attempt["tenant_id"],
        to=attempt["number"],
        from_=CALLER_ID,
        attempt_id=attempt["_id"],
        **settings,
    )


async def reread(ctx: AppContext, attempt: Doc) -> Doc:
    found = await ctx.db.dial_attempts.find_one({"_id": attempt["_id"]})
    assert found is not None
    return found


async def attempt_when(ctx: AppContext, attempt: Doc, condition: Any, timeout: float = 10) -> Doc:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        stored = await reread(ctx, attempt)
        if condition(stored):
            return stored
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"attempt is still {stored}")
        await asyncio.sleep(0.05)


async def test_a_placed_call_reaches_twilio_with_the_campaign_settings(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)

    assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
    [request] = twilio_double.creates()
    assert request.auth_ok and request.path == f"/2010-04-01/Accounts/{twilio_double.account_sid}/Calls.json"
    hook = f"{hub_nobot.url}/twilio/outbound/%s?attempt={attempt['_id']}"
    assert request.get("To") == CALLEE and request.get("From") == CALLER_ID
    assert request.get("Timeout") == "25" and request.get("Record") == "true"
    assert request.get("Url") == hook % "answer" and request.get("Method") == "POST"
    assert request.get("StatusCallback") == hook % "status"
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert request.get("MachineDetection") == "Enable" and request.get("AsyncAmd") == "true"
    assert request.get("AsyncAmdStatusCallback") == hook % "amd"
    assert (await reread(dialer, attempt))["call_sid"] == sid

    # no AMD, no recording; a ring shorter than the 15 s regulators require is lengthened
    second = await new_attempt(dialer, t["tenant"]["_id"], "+14155550124")
    await call(dialer, second, ring_timeout_s=5, amd=False, record=False)
    request = twilio_double.creates()[-1]
    assert request.get("Timeout") == "15" and request.get("Record") == "false"
    assert "MachineDetection" not in request.form and "AsyncAmd" not in request.form
    # leaving a message after the greeting waits for the beep
    third = await new_attempt(dialer, t["tenant"]["_id"], "+14155550125")
    await call(dialer, third, leave_message=True)
    assert twilio_double.creates()[-1].get("MachineDetection") == "DetectMessageEnd"


@pytest.mark.parametrize(
    ("outcome", "call_status", "drive"),
    [("busy", "busy", "busy"), ("no_answer", "no-answer", "no_answer"), ("failed", "failed", "fail")],
)
async def test_unanswered_calls_are_recorded_once_however_often_twilio_repeats(
    dialer: AppContext,
    hub_nobot: HubProcess,
    twilio_double: TwilioDouble,
    tenant_in: Any,
    outcome: str,
    call_status: str,
    drive: str,
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)
    first = await twilio_double.ring(sid, initiated=False)
    assert first is not None and first.json() == {"status": "ok"}
    assert (await twilio_double.ring(sid, initiated=False)).json() == {"status": "duplicate"}  # type: ignore[union-attr]
    assert (await reread(dialer, attempt))["call_status"] == "ringing"

    ended = await getattr(twilio_double, drive)(sid)
    assert ended.status_code == 200 and ended.json() == {"status": "ok"}
    stored = await reread(dialer, attempt)
    assert stored["outcome"] == outcome and stored["call_status"] == call_status
    assert stored["ended_at"] is not None and stored["duration"] == 0 and stored["answered_at"] is None
    again = await getattr(twilio_double, drive)(sid)
    assert again.json() == {"status": "duplicate"}
    # an "initiated" that Twilio delivers late does not reopen the call
    late = await twilio_double.post(
        twilio_double.call(sid).get("StatusCallback") or "",
        {**twilio_double.call_params(twilio_double.call(sid), "initiated")},
    )
    assert late.json() == {"status": "ok"}
    final = await reread(dialer, attempt)
    assert final["ended_at"] == stored["ended_at"] and final["call_status"] == call_status
    assert final["call_events"] == [f"{sid}:ringing", f"{sid}:{call_status}", f"{sid}:initiated"]


async def test_unsigned_or_wrongly_signed_callbacks_are_refused(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)
    fake = twilio_double.call(sid)
    for kind, params in (
        ("status", {**twilio_double.call_params(fake, "busy"), "CallDuration": "0"}),
        ("amd", {"CallSid": sid, "AccountSid": twilio_double.account_sid, "AnsweredBy": "machine_start"}),
        ("answer", twilio_double.call_params(fake, "in-progress")),
    ):
        url = f"{hub_nobot.url}/twilio/outbound/{kind}?attempt={attempt['_id']}"
        assert (await twilio_double.post(url, params, signature="")).status_code == 403
        assert (await twilio_double.post(url, params, token="not-the-token")).status_code == 403
        assert (await twilio_double.post(url, params, signature="Zm9yZ2Vk")).status_code == 403
        # signed for another attempt: the URL is part of what Twilio signs
        other = url.replace(attempt["_id"], "someone-else")
        forged = twilio_double.sign(other, params)
        assert (await twilio_double.post(url, params, signature=forged)).status_code == 403
        # a parameter changed after signing
        signature = twilio_double.sign(url, params)
        tampered = {**params, "CallSid": "CA" + "f" * 32}
        assert (await twilio_double.post(url, tampered, signature=signature)).status_code == 403
    stored = await reread(dialer, attempt)
    assert stored["outcome"] is None and not stored.get("call_events") and stored.get("contact_id") is None
    assert await dialer.db.contacts.count_documents({"call_sid": sid}) == 0
    # a signed callback for an attempt that does not exist is accepted and ignored
    url = f"{hub_nobot.url}/twilio/outbound/status?attempt=no-such-attempt"
    response = await twilio_double.post(url, twilio_double.call_params(fake, "ringing"))
    assert response.status_code == 200 and response.json() == {"status": "ignored"}


async def test_an_answered_call_opens_a_contact_and_its_stream_and_the_default_hangs_up(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)
    await twilio_double.ring(sid)
    twiml = await twilio_double.answer(sid, answered_by="human")

    assert f'<Stream url="{hub_nobot.ws_url}/twilio/media">' in twiml and "<Connect>" in twiml
    token = re.search(r'name="token" value="([^"]+)"', twiml)
    assert token is not None
    stored = await reread(dialer, attempt)
    assert stored["outcome"] == "answered" and stored["answered_at"] is not None
    assert stored["answered_by"] == "human" and stored["amd_result"] == "human"
    assert stored["call_status"] == "in-progress"
    contact = await dialer.db.contacts.find_one({"call_sid": sid})
    assert contact is not None and contact["_id"] == stored["contact_id"]
    assert contact["tenant_id"] == t["tenant"]["_id"] and contact["channel"] == "voice"
    assert contact["direction"] == "outbound" and contact["attempt_id"] == attempt["_id"]
    assert contact["campaign_id"] == attempt["campaign_id"] and contact["target_id"] == attempt["target_id"]
    assert contact["to_number"] == CALLEE and contact["from_number"] == CALLER_ID
    assert contact["customer_id"] is not None  # the callee's profile, found or created by number
    # Twilio asking again for the TwiML gets the same contact
    again = await twilio_double.post(
        twilio_double.call(sid).get("Url") or "",
        twilio_double.call_params(twilio_double.call(sid), "in-progress"),
    )
    assert again.status_code == 200 and "<Stream" in again.text
    assert await dialer.db.contacts.count_documents({"call_sid": sid}) == 1

    # the stream's token opens the media websocket; with no dialer hook the hub hangs up
    caller = TwilioCaller(hub_nobot.ws_url, token.group(1), sid)
    await caller.connect()
    await caller.silence(0.5)
    await twilio_double.wait_for(lambda: caller.hung_up_by_hub)
    [update] = await twilio_double.wait_for(lambda: twilio_double.updates(sid))
    assert update.auth_ok and update.get("Status") == "completed"
    # ... and Twilio reports the completed call back
    stored = await attempt_when(dialer, attempt, lambda a: a.get("ended_at") is not None)
    assert stored["call_status"] == "completed" and stored["outcome"] == "answered"
    assert isinstance(stored["duration"], int)
    closed = await dialer.db.contacts.find_one({"_id": contact["_id"]})
    assert closed is not None and closed["status"] == "closed" and closed["note"] == "no_outbound_flow"


async def test_a_machine_answer_is_stored_once(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)
    await twilio_double.ring(sid)
    await twilio_double.answer(sid, answered_by="machine_start")
    stored = await reread(dialer, attempt)
    assert stored["answered_by"] == "machine" and stored["amd_result"] == "machine_start"
    assert stored["outcome"] == "machine" and stored["amd_duration_ms"] == 2100
    assert (await twilio_double.amd(sid, "human")).json() == {"status": "duplicate"}
    assert (await reread(dialer, attempt))["answered_by"] == "machine"
    await twilio_double.complete(sid, duration=12)
    stored = await reread(dialer, attempt)
    assert (
        stored["outcome"] == "machine" and stored["duration"] == 12 and stored["call_status"] == "completed"
    )


async def test_twilio_errors_become_placement_errors(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])

    twilio_double.fail_next(400, 21211, "The 'To' number +1415555 is not a valid phone number.")
    with pytest.raises(PlacementError) as refused:
        await call(dialer, attempt)
    error = refused.value
    assert error.status == 400 and error.code == 21211 and not error.retryable
    assert "The 'To' number +1415555 is not a valid phone number." in str(error)

    twilio_double.fail_next(503, 20503, "Service Unavailable")
    with pytest.raises(PlacementError) as unavailable:
        await call(dialer, attempt)
    assert unavailable.value.retryable and unavailable.value.code == 20503

    # the double checks what Twilio checks: a missing caller id is Twilio's error 21213
    with pytest.raises(PlacementError) as no_from:
        await place_call(
            dialer,
            tenant_id=attempt["tenant_id"],
            to=CALLEE,
            from_="",
            attempt_id=attempt["_id"],
            ring_timeout_s=20,
            amd=False,
            record=False,
        )
    assert no_from.value.code == 21213 and "No 'From' number is specified" in str(no_from.value)

    wrong_token = dataclasses.replace(dialer.settings, twilio_auth_token="not-the-token")
    with pytest.raises(PlacementError) as unauthorised:
        await call(AppContext(settings=wrong_token, db=dialer.db), attempt)
    assert unauthorised.value.status == 401 and unauthorised.value.code == 20003

    nobody = dataclasses.replace(dialer.settings, twilio_api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PlacementError) as unreachable:
        await call(AppContext(settings=nobody, db=dialer.db), attempt)
    assert unreachable.value.retryable and "cannot reach Twilio" in str(unreachable.value)

    unconfigured = dataclasses.replace(dialer.settings, twilio_account_sid=None)
    with pytest.raises(PlacementError, match="TWILIO_ACCOUNT_SID"):
        await call(AppContext(settings=unconfigured, db=dialer.db), attempt)

    assert (await reread(dialer, attempt))["call_sid"] is None
    with pytest.raises(TwilioCallError) as unknown:
        await hang_up(dialer, "CA" + "0" * 32)
    assert unknown.value.status == 404 and unknown.value.code == 20404


async def test_hanging_up_a_ringing_call_cancels_it(
    dialer: AppContext, hub_nobot: HubProcess, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    t = await tenant_in(hub_nobot)
    attempt = await new_attempt(dialer, t["tenant"]["_id"])
    sid = await call(dialer, attempt)
    await twilio_double.ring(sid)
    await hang_up(dialer, sid)
    # the status callback writes ended_at, then the outcome: wait for both
    stored = await attempt_when(dialer, attempt, lambda a: a.get("ended_at") is not None and a.get("outcome"))
    assert stored["call_status"] == "canceled" and stored["outcome"] == "no_answer"


class InProcessHub:
    """A hub app served by uvicorn in a thread of this process, so a test can register the
    dialer's hooks on its context (a hub process would need a dialer to do it)."""

    def __init__(self, var_dir: Path, mongo_uri: str, double: TwilioDouble) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(
            var_dir=var_dir,
            mongodb_uri=mongo_uri,
            db_name="hub_outbound_hooks",
            port=self.port,
            public_url=self.url,
            secret=TEST_SECRET,
            twilio_auth_token=TWILIO_TOKEN,
            twilio_account_sid=double.account_sid,
            twilio_api_base=double.url,
            asr_model=None,  # the flows below run on key presses: no speech model needed
            models_dir=var_dir / "models",
        )
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="in-process-hub", daemon=True)

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the in-process hub did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def hooked_hub(
    tmp_path: Path, mongo: EmbeddedDatabase, twilio_double: TwilioDouble
) -> Iterator[InProcessHub]:
    hub = InProcessHub(tmp_path, mongo.uri, twilio_double)
    hub.start()
    yield hub
    hub.stop()


@pytest.mark.voice
async def test_the_dialer_hooks_decide_what_the_callee_hears_and_hear_each_event_once(
    hooked_hub: InProcessHub, mongo: EmbeddedDatabase, twilio_double: TwilioDouble
) -> None:
    t = await make_tenant(mongo.uri, "hub_outbound_hooks")
    tenant_id = t["tenant"]["_id"]
    seen: list[tuple[str, str, Any]] = []
    answered: list[tuple[str, str]] = []

    async def on_answer(contact: Doc, attempt: Doc) -> Doc | None:
        answered.append((contact["_id"], attempt["_id"]))
        if attempt["number"] == "+14155550199":
            raise RuntimeError("the dialer is broken")
        return {
            "tenant_id": tenant_id,
            "number": CALLER_ID,
            "name": "reminder",
            "start": "reminder",
            "nodes": {
                "reminder": {"type": "hangup", "prompt": "This is a reminder of your appointment. Goodbye."}
            },
        }

    async def on_status(attempt: Doc, event: Doc) -> None:
        seen.append(("status", event["status"], attempt["outcome"]))

    async def on_amd(attempt: Doc, event: Doc) -> None:
        seen.append(("amd", event["amd_result"], attempt["answered_by"]))

    hooked_hub.ctx.extra.update(
        outbound_on_answer=on_answer, outbound_on_status=on_status, outbound_on_amd=on_amd
    )
    dialer = context_for(mongo.uri, "hub_outbound_hooks")
    dialer.settings = hooked_hub.ctx.settings
    try:
        attempt = await new_attempt(dialer, tenant_id)
        sid = await call(dialer, attempt)
        await twilio_double.ring(sid)
        await twilio_double.ring(sid)  # Twilio repeating itself: the hooks hear it once
        twiml = await twilio_double.answer(sid, answered_by="human")
        await twilio_double.amd(sid, "human")
        token = re.search(r'name="token" value="([^"]+)"', twiml)
        assert token is not None
        caller = TwilioCaller(f"ws://127.0.0.1:{hooked_hub.port}", token.group(1), sid)
        await caller.connect()
        await caller.wait_audio(8000)  # the flow the hook chose speaks to the callee ...
        await asyncio.wait_for(caller._reader, 20)  # type: ignore[arg-type]
        assert caller.hung_up_by_hub  # ... and ends the call when it is done
        contact = await dialer.db.contacts.find_one({"call_sid": sid})
        assert contact is not None and answered == [(contact["_id"], attempt["_id"])]
        messages = [m["text"] async for m in dialer.db.messages.find({"contact_id": contact["_id"]})]
        assert "This is a reminder of your appointment. Goodbye." in messages
        await twilio_double.complete(sid, duration=9)
        await twilio_double.complete(sid, duration=9)
        assert seen == [
            ("status", "initiated", None),
            ("status", "ringing", None),
            ("status", "in-progress", "answered"),
            ("amd", "human", "human"),
            ("status", "completed", "answered"),
        ]

        # a dialer hook that fails hangs the call up instead of leaving the callee in silence
        broken = await new_attempt(dialer, tenant_id, "+14155550199")
        sid = await call(dialer, broken, amd=False)
        twiml = await twilio_double.answer(sid)
        token = re.search(r'name="token" value="([^"]+)"', twiml)
        assert token is not None
        caller = TwilioCaller(f"ws://127.0.0.1:{hooked_hub.port}", token.group(1), sid)
        await caller.connect()
        [update] = await twilio_double.wait_for(lambda: twilio_double.updates(sid))
        assert update.get("Status") == "completed"
        await twilio_double.wait_for(lambda: caller.hung_up_by_hub)
    finally:
        await close_rest_client(dialer)
        await dialer.db.close()
