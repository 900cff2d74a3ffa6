"""Per-tenant Twilio accounts (channels/twilio/accounts.py) against a real hub and the Twilio double.

A tenant stores its Account SID and auth token: the token is encrypted in the database and the
API never shows it. Webhooks carrying the tenant's AccountSid are checked with its token and
must concern that tenant (a call to another tenant's number signed with it is 403; forged is
403). Outbound calls and SMS of that tenant go to the double under its account, and the double's
callbacks (signed with that account's token) are accepted.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from bot.ivr import DEFAULT_FLOW
from channels.sms.sender import TwilioSmsSender
from channels.twilio.outbound import close_rest_client, hang_up, place_call
from hub import secretbox
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from tests.conftest import context_for
from tests.support import TEST_SECRET, TWILIO_TOKEN, Agent, HubProcess
from tests.test_numbers import sf_number
from tests.twilio_double import TwilioDouble

ADMIN = {"agents": {"ada": [], "ann": ["general"]}, "roles": {"ada": ["admin"]}}
BASE = "/api/admin/telephony/twilio"


def new_account() -> tuple[str, str]:
    return "AC" + secrets.token_hex(16), secrets.token_hex(16)


async def signed_post(
    hub: HubProcess, path: str, params: dict[str, str], token: str, signature: str | None = None
) -> httpx.Response:
    url = f"{hub.url}{path}"
    sig = signature if signature is not None else RequestValidator(token).compute_signature(url, params)
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            url,
            content=urlencode(params),
            headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
        )


def call(account_sid: str, to: str) -> dict[str, str]:
    return {
        "AccountSid": account_sid,
        "CallSid": "CA" + secrets.token_hex(16),
        "To": to,
        "From": "+14155550101",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def test_tenant_account_token_is_stored_encrypted_and_never_shown(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase, twilio_double: TwilioDouble
) -> None:
    a, b = await tenant_in(hub_nobot, **ADMIN), await tenant_in(hub_nobot, **ADMIN)
    ada, ann, bea = (
        await signed_in(hub_nobot, a, "ada"),
        await signed_in(hub_nobot, a, "ann"),
        await signed_in(hub_nobot, b, "ada"),
    )
    db = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    sid, token = new_account()
    try:
        empty = (await ada.http.get(BASE)).json()
        assert empty["configured"] is False and empty["hub_account"] is True
        assert (
            await ada.http.put(BASE, json={"account_sid": "AC123", "auth_token": token})
        ).status_code == 422
        assert (
            await ada.http.put(BASE, json={"account_sid": sid})
        ).status_code == 422  # a new SID needs its token
        hubs = await ada.http.put(BASE, json={"account_sid": twilio_double.account_sid, "auth_token": token})
        assert hubs.status_code == 409
        assert (await ann.http.put(BASE, json={"account_sid": sid, "auth_token": token})).status_code == 403
        saved = await ada.http.put(BASE, json={"account_sid": sid, "auth_token": token})
        assert saved.status_code == 200, saved.text
        assert token not in saved.text
        assert saved.json() | {"updated_at": None} == {
            "configured": True,
            "account_sid": sid,
            "auth_token_set": True,
            "auth_token_last4": token[-4:],
            "updated_at": None,
            "hub_account": True,
        }
        shown = await ada.http.get(BASE)
        assert token not in shown.text and shown.json()["account_sid"] == sid
        row = await db.db.telephony_settings.find_one({"tenant_id": a["tenant"]["_id"]})
        assert row is not None and token not in str(row)
        assert secretbox.decrypt(TEST_SECRET, row["twilio_auth_token_enc"]) == token
        # the SID alone updates keep the token; another tenant cannot claim the same account
        assert (await ada.http.put(BASE, json={"account_sid": sid})).json()["auth_token_last4"] == token[-4:]
        assert (await bea.http.put(BASE, json={"account_sid": sid, "auth_token": token})).status_code == 409
        logged = await db.db.audit_log.find_one(
            {"action": "telephony.twilio.set", "tenant_id": a["tenant"]["_id"]}
        )
        assert logged is not None and token not in str(logged)
        cleared = await ada.http.delete(BASE)
        assert cleared.json()["configured"] is False
        assert await db.db.telephony_settings.find_one({"tenant_id": a["tenant"]["_id"]}) is None
    finally:
        for client in (ada, ann, bea):
            await client.close()
        await db.db.close()


async def test_webhooks_and_outbound_use_the_tenants_own_account(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase, twilio_double: TwilioDouble
) -> None:
    hub = hub_nobot
    a, b = await tenant_in(hub, **ADMIN), await tenant_in(hub, **ADMIN)
    ada, bea = await signed_in(hub, a, "ada"), await signed_in(hub, b, "ada")
    sid_a, token_a = new_account()
    sid_b, token_b = new_account()
    number_a, number_b = sf_number(), sf_number()
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    ctx.settings = dataclasses.replace(
        ctx.settings,
        public_url=hub.url,
        twilio_account_sid=twilio_double.account_sid,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_api_base=twilio_double.url,
    )
    try:
        assert (
            await ada.http.put(BASE, json={"account_sid": sid_a, "auth_token": token_a})
        ).status_code == 200
        assert (
            await bea.http.put(BASE, json={"account_sid": sid_b, "auth_token": token_b})
        ).status_code == 200
        assert (await ada.http.post("/api/ivr/flows", json=DEFAULT_FLOW("x", number_a))).status_code == 201
        assert (await bea.http.post("/api/ivr/flows", json=DEFAULT_FLOW("x", number_b))).status_code == 201

        # an incoming call signed with the tenant's own token reaches its flow
        params = call(sid_a, number_a)
        answered = await signed_post(hub, "/twilio/voice", params, token_a)
        assert answered.status_code == 200, answered.text
        assert "<Stream" in answered.text
        contact = await ctx.db.contacts.find_one({"call_sid": params["CallSid"]})
        assert contact is not None and contact["tenant_id"] == a["tenant"]["_id"]
        # forged, signed with the hub's token for A's account, or A's account calling B's number: 403
        assert (
            await signed_post(hub, "/twilio/voice", call(sid_a, number_a), token_a, "forged")
        ).status_code == 403
        assert (
            await signed_post(hub, "/twilio/voice", call(sid_a, number_a), TWILIO_TOKEN)
        ).status_code == 403
        assert (await signed_post(hub, "/twilio/voice", call(sid_a, number_b), token_b)).status_code == 403
        crossed = await signed_post(hub, "/twilio/voice", call(sid_a, number_b), token_a)
        assert crossed.status_code == 403 and "another tenant" in crossed.text
        sms = {
            "AccountSid": sid_a,
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": "+14155550101",
            "To": number_b,
            "Body": "hello",
        }
        assert (await signed_post(hub, "/twilio/sms", sms, token_a)).status_code == 403
        assert (
            await signed_post(hub, "/twilio/sms", sms | {"AccountSid": sid_b}, token_b)
        ).status_code == 200
        # the hub's own account still speaks for every tenant
        hubs = await signed_post(
            hub, "/twilio/voice", call(twilio_double.account_sid, number_b), TWILIO_TOKEN
        )
        assert hubs.status_code == 200 and "<Stream" in hubs.text

        # outbound: the call is created under A's account, and its callbacks (signed with A's
        # token) are accepted by the hub
        twilio_double.add_account(sid_a, token_a)
        attempt = {
            "_id": new_id(),
            "tenant_id": a["tenant"]["_id"],
            "campaign_id": "camp-" + new_id()[:8],
            "target_id": "target-" + new_id()[:8],
            "number": "+14155550123",
            "call_sid": None,
            "placed_at": utcnow(),
            "answered_at": None,
            "answered_by": None,
            "ended_at": None,
            "outcome": None,
        }
        await ctx.db.dial_attempts.insert_one(attempt)
        call_sid = await place_call(
            ctx,
            tenant_id=a["tenant"]["_id"],
            to=attempt["number"],
            from_=number_a,
            attempt_id=attempt["_id"],
            ring_timeout_s=20,
            amd=False,
            record=False,
        )
        created = twilio_double.creates()[-1]
        assert created.path == f"/2010-04-01/Accounts/{sid_a}/Calls.json" and created.auth_ok
        ringing = await twilio_double.ring(call_sid)
        assert ringing is not None and ringing.status_code == 200
        twiml = await twilio_double.answer(call_sid)  # asserts the hub answered 200
        assert "<Stream" in twiml
        stored = await ctx.db.dial_attempts.find_one({"_id": attempt["_id"]})
        assert stored is not None and stored["call_sid"] == call_sid and stored["answered_at"] is not None
        await hang_up(ctx, call_sid)  # finds the tenant (and its account) from the attempt
        update = twilio_double.updates(call_sid)[-1]
        assert update.path == f"/2010-04-01/Accounts/{sid_a}/Calls/{call_sid}.json" and update.auth_ok

        # SMS from A go through A's account; B (no double account for it) is refused by Twilio
        row = {
            "_id": new_id(),
            "tenant_id": a["tenant"]["_id"],
            "to": "+14155550199",
            "body": "your code is 1234",
            "meta": {"from": number_a, "transactional": True},
        }
        message_sid = await TwilioSmsSender().send(ctx, row)
        sent = twilio_double.message_creates()[-1]
        assert message_sid.startswith("SM") and sent.path == f"/2010-04-01/Accounts/{sid_a}/Messages.json"
        assert sent.auth_ok
        # a tenant without its own account still uses the hub's
        await ctx.db.telephony_settings.delete_one({"tenant_id": a["tenant"]["_id"]})
        await TwilioSmsSender().send(ctx, row | {"_id": new_id()})
        sent = twilio_double.message_creates()[-1]
        assert sent.path == f"/2010-04-01/Accounts/{twilio_double.account_sid}/Messages.json"
    finally:
        for client in (ada, bea):
            await client.close()
        await close_rest_client(ctx)
        await ctx.db.close()
