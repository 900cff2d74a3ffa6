"""Billing: the arithmetic (hand-computed cases and hypothesis properties), rate tables, and the
rater against the real embedded database: a three-level chain rated from a dial attempt, an
inbound call's contact and an SMS sent through the outbox to the Twilio double, charged once
however often the rater runs, the two-phase charge surviving a crash, and the statement
reconciling with the balance."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from billing import accounts, rates, statements
from billing.pricing import PriceBook
from billing.rater import Rater, call_event, inbound_event, records_for
from billing.rating import (
    RatingError,
    Tariff,
    billed_seconds,
    call_amount,
    format_micros,
    marked_up,
    parse_increment,
    per_minute_amount,
    sms_amount,
    to_micros,
)
from channels.sms.relay import send_sms
from channels.sms.sender import TwilioSmsSender
from channels.twilio.outbound import close_rest_client
from hub import outbox
from hub.contacts import open_contact
from hub.context import AppContext
from hub.ids import new_id, utcnow
from hub.settings import Settings
from hub.tenancy import create_tenant
from tests.support import TEST_SECRET
from tests.twilio_double import TwilioDouble

# ------------------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize(
    ("duration", "increment", "minimum", "billed"),
    [
        (61, "60/60", 0, 120),
        (61, "6/6", 0, 66),
        (61, "30/6", 0, 66),
        (61, "1/1", 0, 61),
        (60, "60/60", 0, 60),
        (1, "30/6", 0, 30),
        (31, "30/6", 0, 36),
        (5, "1/1", 60, 60),
        (5, "6/6", 60, 60),
        (0, "60/60", 60, 0),  # answered and hung up at once: nothing, unless a connection fee
        (125, "60/60", 60, 180),
    ],
)
def test_billed_seconds_by_hand(duration: int, increment: str, minimum: int, billed: int) -> None:
    first, following = parse_increment(increment)
    assert billed_seconds(duration, first, following, minimum) == billed


def test_amounts_round_half_up_to_the_micro_unit() -> None:
    assert per_minute_amount(100_000, 120) == 200_000  # 0.10 / min for 2 min
    assert per_minute_amount(100_000, 66) == 110_000
    assert per_minute_amount(1, 30) == 1  # 0.5 micro rounds up
    assert per_minute_amount(1, 29) == 0  # 0.4833 rounds down
    assert per_minute_amount(3, 10) == 1  # 0.5 exactly -> up
    tariff = Tariff(price_micros=100_000, connection_micros=20_000)
    assert call_amount(tariff, 0) == (0, 20_000)  # connection fee only
    assert call_amount(tariff, 61) == (120, 220_000)
    assert sms_amount(Tariff(price_micros=50_000), 3) == 150_000
    assert marked_up(100_000, [20, 50]) == 180_000
    assert marked_up(333_333, ["12.5"]) == 375_000  # 374999.625 -> 375000
    assert to_micros("0.10") == 100_000 and to_micros("12") == 12_000_000
    assert format_micros(100_000) == "0.10" and format_micros(12_345) == "0.012345"
    assert format_micros(-1_500_000) == "-1.50"
    for bad in ("0.1234567", "abc", "1e3", ""):
        with pytest.raises(RatingError):
            to_micros(bad)
    for bad in ("60", "0/6", "6/0", "a/b", "60/60/60"):
        with pytest.raises(RatingError):
            parse_increment(bad)


increments = st.integers(min_value=1, max_value=120)


@given(
    duration=st.integers(min_value=1, max_value=20_000),
    first=increments,
    following=increments,
    minimum=st.integers(min_value=0, max_value=300),
)
def test_billed_seconds_properties(duration: int, first: int, following: int, minimum: int) -> None:
    billed = billed_seconds(duration, first, following, minimum)
    assert billed >= duration and billed >= minimum and billed >= first
    # increments respected: the first whole, then whole next increments (unless the minimum rules)
    if billed > minimum:
        assert billed == first or (billed - first) % following == 0
    # never a whole increment more than needed
    assert billed < max(duration + following, first + 1, minimum + 1) or billed == first
    assert billed_seconds(duration + 1, first, following, minimum) >= billed  # monotone


@given(
    price=st.integers(min_value=0, max_value=10_000_000),
    a=st.integers(min_value=0, max_value=10_000),
    b=st.integers(min_value=0, max_value=10_000),
)
def test_amount_is_monotone_and_exactly_rounded(price: int, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert per_minute_amount(price, lo) <= per_minute_amount(price, hi)
    exact = price * hi / 60
    assert abs(per_minute_amount(price, hi) - exact) <= 0.5


@given(base=st.integers(min_value=0, max_value=10**9), m=st.integers(min_value=0, max_value=500))
def test_markups_never_lower_a_price(base: int, m: int) -> None:
    assert marked_up(base, [m]) >= base
    assert marked_up(base, [m, m]) >= marked_up(base, [m])


# ------------------------------------------------------------------------------ rate tables


async def test_rate_entries_validate_and_the_longest_prefix_wins(ctx: AppContext) -> None:
    owner = await create_tenant(ctx, f"op-{new_id()[:8]}", "Operator", level="operator")
    group = await rates.create_group(ctx, owner["_id"], "Retail", "voice", "usd")
    await rates.put_rate(ctx, group, {"prefix": "1", "price": "0.10", "increment": "60/60"})
    await rates.put_rate(
        ctx, group, {"prefix": "+1415", "price": "0.02", "increment": "6/6", "minimum_s": 30}
    )
    for bad in (
        {"prefix": "1a", "price": "0.1"},
        {"prefix": "1234567890123456", "price": "0.1"},
        {"prefix": "1", "price": "-0.1"},
        {"prefix": "1", "price": "0.1", "increment": "60"},
        {"prefix": "1", "price": "0.1", "connection": "-1"},
        {"prefix": "1"},
    ):
        with pytest.raises(rates.RateError):
            await rates.put_rate(ctx, group, bad)
    hit = await rates.match(ctx, group["_id"], "+14155550100")
    assert hit is not None and hit["prefix"] == "1415" and hit["minimum_s"] == 30
    other = await rates.match(ctx, group["_id"], "+12125550100")
    assert other is not None and other["prefix"] == "1"
    assert await rates.match(ctx, group["_id"], "+447700900000") is None


async def test_rate_table_import_reports_invalid_rows_and_exports_what_it_stored(ctx: AppContext) -> None:
    owner = await create_tenant(ctx, f"op-{new_id()[:8]}", "Operator", level="operator")
    group = await rates.create_group(ctx, owner["_id"], "Wholesale", "voice", "EUR")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Prefix", "Description", "Price", "Increment", "Minimum_s", "Connection"])
    sheet.append([44, "UK", 0.012, "6/6", 0, 0])
    sheet.append(["447", "UK mobile", "0.05", "30/6", 30, "0.01"])
    sheet.append(["44x", "bad prefix", "0.05", "60/60", 0, 0])
    sheet.append(["33", "France", "-1", "60/60", 0, 0])
    sheet.append(["49", "Germany", "0.02", "1/0", 0, 0])
    buffer = io.BytesIO()
    book.save(buffer)
    result = await rates.import_rates(ctx, group, buffer.getvalue(), "rates.xlsx")
    assert result.stored == 2
    assert [e["line"] for e in result.errors] == [4, 5, 6]
    csv_result = await rates.import_rates(
        ctx, group, b"prefix,price,increment\n1,0.10,60/60\nx,1,1/1\n", "r.csv"
    )
    assert csv_result.stored == 1 and csv_result.errors[0]["line"] == 3
    rows = await rates.export_rows(ctx, group)
    assert rows[0] == list(rates.COLUMNS)
    assert [r[0] for r in rows[1:]] == ["1", "44", "447"]
    exported = load_workbook(io.BytesIO(rates.rows_to_xlsx(rows, "rates")))
    assert exported.active is not None
    assert [c.value for c in exported.active[4]] == ["447", "UK mobile", "0.05", "30/6", 30, "0.01"]
    again = await rates.import_rates(ctx, group, rates.rows_to_csv(rows), "back.csv")  # round trip
    assert again.stored == 3 and not again.errors


# ------------------------------------------------------------------------------ the chain


async def three_levels(ctx: AppContext) -> dict[str, Any]:
    """Operator group 0.10/min at 60/60 and 0.05/SMS; reseller +20 %, customer +50 %."""
    op = await create_tenant(ctx, f"op-{new_id()[:8]}", "Operator", level="operator")
    rs = await create_tenant(ctx, f"rs-{new_id()[:8]}", "Reseller", level="reseller", parent=op)
    cu = await create_tenant(ctx, f"cu-{new_id()[:8]}", "Customer", level="customer", parent=rs)
    voice = await rates.create_group(ctx, op["_id"], "Standard", "voice", "USD")
    await rates.put_rate(ctx, voice, {"prefix": "1", "price": "0.10", "increment": "60/60"})
    sms = await rates.create_group(ctx, op["_id"], "SMS", "sms", "USD")
    await rates.put_rate(ctx, sms, {"prefix": "1", "price": "0.05"})
    for tenant, markup in ((rs, 20), (cu, 50)):
        await accounts.configure(
            ctx,
            tenant["_id"],
            {"voice_group_id": voice["_id"], "sms_group_id": sms["_id"], "markup_pct": markup},
        )
        await accounts.top_up(ctx, tenant["_id"], to_micros("10"), by="test", by_tenant_id=op["_id"])
    return {"op": op, "rs": rs, "cu": cu, "voice": voice, "sms": sms}


def an_attempt(tenant_id: str, seconds: int, number: str = "+14155550100") -> dict[str, Any]:
    """A dial attempt as routing/dialer.py inserts it and the Twilio status callback ends it."""
    now = utcnow()
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "campaign_id": None,
        "target_id": None,
        "number": number,
        "placed_at": now - timedelta(seconds=seconds + 10),
        "answered_at": now - timedelta(seconds=seconds),
        "ended_at": now,
        "outcome": "answered",
        "call_sid": f"CA{new_id()}",
        "call_status": "completed",
        "duration": seconds,
    }


async def balance(ctx: AppContext, tenant_id: str) -> int:
    account = await accounts.get_account(ctx, tenant_id)
    assert account is not None and not account["pending"]
    return int(account["balance_micros"])


async def test_a_call_is_rated_for_the_customer_and_its_reseller_once(ctx: AppContext) -> None:
    chain = await three_levels(ctx)
    cu, rs, op = chain["cu"]["_id"], chain["rs"]["_id"], chain["op"]["_id"]
    attempt = an_attempt(cu, 61)
    await ctx.db.dial_attempts.insert_one(attempt)
    unanswered = {**an_attempt(cu, 0), "answered_at": None, "duration": 0, "outcome": "busy"}
    await ctx.db.dial_attempts.insert_one(unanswered)
    rater = Rater(ctx)
    await rater.run_once()
    records = {
        r["tenant_id"]: r async for r in ctx.db.billing_records.find({"source_key": f"call:{attempt['_id']}"})
    }
    assert set(records) == {cu, rs}  # the operator earns the rest: no record of its own
    assert records[cu]["billed_seconds"] == 120 and records[cu]["unit_price_micros"] == 180_000
    assert records[cu]["amount_micros"] == 360_000  # 0.10 * 1.2 * 1.5 per min, 2 min
    assert records[rs]["unit_price_micros"] == 120_000 and records[rs]["amount_micros"] == 240_000
    assert records[cu]["prefix"] == "1" and "applied" not in records[cu]  # its charge says it:
    charge = await ctx.db.billing_charges.find_one({"_id": records[cu]["charge_id"]})
    assert charge is not None and charge["state"] == "applied" and charge["total_micros"] == 360_000
    assert not await ctx.db.billing_records.find_one({"source_key": f"call:{unanswered['_id']}"})
    assert await balance(ctx, cu) == 10_000_000 - 360_000
    assert await balance(ctx, rs) == 10_000_000 - 240_000
    assert await accounts.get_account(ctx, op) is None
    await rater.run_once()  # again: nothing new is charged
    event = call_event(attempt)
    assert event is not None
    await Rater(ctx).rate_events([event])  # even when fed the same call directly
    assert await ctx.db.billing_records.count_documents({"source_key": f"call:{attempt['_id']}"}) == 2
    assert await balance(ctx, cu) == 10_000_000 - 360_000


async def test_an_sms_sent_through_the_outbox_is_rated_per_segment(
    ctx: AppContext, twilio_double: TwilioDouble
) -> None:
    chain = await three_levels(ctx)
    cu, rs = chain["cu"]["_id"], chain["rs"]["_id"]
    settings = Settings(
        secret=TEST_SECRET,
        db_name=ctx.settings.db_name,
        twilio_account_sid=twilio_double.account_sid,
        twilio_auth_token=twilio_double.auth_token,
        twilio_api_base=twilio_double.url,
    )
    sending = AppContext(settings=settings, db=ctx.db)
    outbox.register(sending, "sms", TwilioSmsSender())
    body = "Your bill is ready. " * 16  # 320 GSM-7 characters: 3 segments
    rows = await send_sms(
        sending, tenant_id=cu, to="+14155550123", from_="+15005550006", body=body, key=new_id()
    )
    assert rows[0]["meta"]["segments"] == 3
    claimed = await outbox.claim_due(sending)
    while claimed is not None and claimed["_id"] != rows[0]["_id"]:  # other tests' rows: leave them
        await ctx.db.outbox.update_one({"_id": claimed["_id"]}, {"$set": {"state": "queued"}})
        claimed = await outbox.claim_due(sending)
    assert claimed is not None and await outbox.process(sending, claimed) == "sent"
    assert twilio_double.sent_messages("+14155550123")
    await close_rest_client(sending)
    await Rater(ctx).run_once()
    record = await ctx.db.billing_records.find_one({"tenant_id": cu, "source_key": f"sms:{rows[0]['_id']}"})
    assert record is not None and record["segments"] == 3 and record["unit_price_micros"] == 90_000
    assert record["amount_micros"] == 270_000
    reseller = await ctx.db.billing_records.find_one({"tenant_id": rs, "source_key": f"sms:{rows[0]['_id']}"})
    assert reseller is not None and reseller["amount_micros"] == 180_000


async def test_a_crash_between_insert_and_charge_is_recovered_once(ctx: AppContext) -> None:
    chain = await three_levels(ctx)
    cu = chain["cu"]["_id"]
    before = await balance(ctx, cu)
    # a rater died after inserting the record (step 1): recover charges it
    records = [
        r
        for r in await records_for(
            PriceBook(ctx), call_event(an_attempt(cu, 30)) or {}, utcnow() - timedelta(minutes=5)
        )
        if r["tenant_id"] == cu
    ]
    await ctx.db.billing_records.insert_many(records)
    # another died after the balance moved (step 2) but before marking the record applied
    crashed = {**records[0], "_id": new_id(), "source_key": f"call:{new_id()}"}
    await ctx.db.billing_records.insert_one(crashed)
    await ctx.db.billing_accounts.update_one(
        {"_id": cu},
        {"$inc": {"balance_micros": -crashed["amount_micros"]}, "$push": {"pending": crashed["_id"]}},
    )
    assert await accounts.recover(ctx) >= 2
    assert await accounts.recover(ctx) == 0
    assert await balance(ctx, cu) == before - 2 * records[0]["amount_micros"]


async def test_a_rater_dying_inside_a_charge_is_finished_once(ctx: AppContext) -> None:
    """The rater's own steps (rater.store_and_charge): a charge opened and its records inserted,
    and one whose balance had moved too, are both finished by recover without a second debit."""
    chain = await three_levels(ctx)
    cu = chain["cu"]["_id"]
    before = await balance(ctx, cu)
    past = utcnow() - timedelta(minutes=5)
    charges = {"inserted": new_id(), "moved": new_id()}
    for step, charge_id in charges.items():
        await accounts.open_charges(ctx, {cu: charge_id})
        await ctx.db.billing_charges.update_one({"_id": charge_id}, {"$set": {"created_at": past}})
        event = call_event(an_attempt(cu, 30)) or {}
        records = [r for r in await records_for(PriceBook(ctx), event, past) if r["tenant_id"] == cu]
        for record in records:
            record["charge_id"] = charge_id
            record.pop("applied")
        await ctx.db.billing_records.insert_many(records)
        if step == "moved":  # step 2 done: the key is pending
            await ctx.db.billing_accounts.update_one(
                {"_id": cu},
                {"$inc": {"balance_micros": -records[0]["amount_micros"]}, "$push": {"pending": charge_id}},
            )
    assert await accounts.recover(ctx) >= 2
    assert await accounts.recover(ctx) == 0
    assert await balance(ctx, cu) == before - 2 * 180_000  # 30 s -> 60 s at 0.18
    async for charge in ctx.db.billing_charges.find({"_id": {"$in": list(charges.values())}}):
        assert charge["state"] == "applied" and charge["total_micros"] == 180_000
    # a batch made only of events rated before opens no lasting charge
    attempt = an_attempt(cu, 30)
    await Rater(ctx).rate_events([call_event(attempt) or {}])
    opened = await ctx.db.billing_charges.count_documents({"tenant_id": cu})
    assert await Rater(ctx).rate_events([call_event(attempt) or {}]) == 0
    assert await ctx.db.billing_charges.count_documents({"tenant_id": cu}) == opened


async def test_the_statement_closes_on_the_account_balance_and_exports(ctx: AppContext) -> None:
    chain = await three_levels(ctx)
    cu = chain["cu"]
    for seconds in (61, 5, 200):
        await ctx.db.dial_attempts.insert_one(an_attempt(cu["_id"], seconds))
    await Rater(ctx).run_once()
    start = datetime.now(UTC) - timedelta(days=1)
    doc = await statements.statement(ctx, cu, start, datetime.now(UTC) + timedelta(seconds=1))
    # 61 s -> 120 s, 5 s -> 60 s, 200 s -> 240 s: 7 min at 0.18
    assert doc["charges_total_micros"] == 7 * 180_000
    assert doc["opening_balance_micros"] == 0 and doc["top_ups_total_micros"] == 10_000_000
    assert doc["closing_balance_micros"] == await balance(ctx, cu["_id"]) == 10_000_000 - 1_260_000
    assert doc["reconciles"] is True
    assert doc["charges_by_prefix"][0]["prefix"] == "1" and doc["charges_by_prefix"][0]["count"] == 3
    book = load_workbook(io.BytesIO(statements.to_xlsx(doc)))
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Closing balance"] == pytest.approx(8.74)
    assert summary["Charges total"] == pytest.approx(-1.26)
    assert summary["Top-ups"] == pytest.approx(10.0)
    later = await statements.statement(
        ctx, cu, datetime.now(UTC) + timedelta(seconds=2), datetime.now(UTC) + timedelta(days=1)
    )
    assert later["opening_balance_micros"] == doc["closing_balance_micros"] and not later["charges_by_kind"]


async def test_low_balance_stops_the_tenant_and_the_customers_of_a_stopped_reseller(ctx: AppContext) -> None:
    chain = await three_levels(ctx)
    cu, rs = chain["cu"]["_id"], chain["rs"]["_id"]
    assert await accounts.may_place_outbound(ctx, cu) is None
    await accounts.configure(ctx, cu, {"stop_below_micros": to_micros("9.99")})
    await ctx.db.dial_attempts.insert_one(an_attempt(cu, 10))  # 0.18: the balance drops to 9.82
    await Rater(ctx).run_once()
    reason = await accounts.may_place_outbound(ctx, cu)
    assert reason is not None and reason.startswith("balance")
    assert await accounts.may_place_outbound(ctx, rs) is None
    await accounts.top_up(ctx, cu, to_micros("1"), by="test", by_tenant_id=rs)
    assert await accounts.may_place_outbound(ctx, cu) is None
    await accounts.configure(ctx, rs, {"stop_below_micros": to_micros("100")})
    assert (await accounts.may_place_outbound(ctx, cu) or "").startswith("balance: the reseller's")
    lone = await create_tenant(ctx, f"lo-{new_id()[:8]}", "Unbilled")
    assert await accounts.may_place_outbound(ctx, lone["_id"]) is None  # billing off


# ------------------------------------------------------------------------------ inbound calls


async def with_inbound_group(ctx: AppContext, chain: dict[str, Any]) -> dict[str, Any]:
    """The operator's inbound group (toll-free 1800: 0.05/min at 60/60) on the reseller and
    its customer, with their markups (+20 %, +50 %) unchanged."""
    inbound = await rates.create_group(ctx, chain["op"]["_id"], "Toll-free", "inbound", "USD")
    await rates.put_rate(ctx, inbound, {"prefix": "1800", "price": "0.05", "increment": "60/60"})
    for tenant in (chain["rs"], chain["cu"]):
        await accounts.configure(ctx, tenant["_id"], {"inbound_group_id": inbound["_id"]})
    return {**chain, "inbound": inbound}


async def inbound_call(
    ctx: AppContext,
    tenant_id: str,
    seconds: int | None,
    *,
    to: str = "+18005550100",
    ended_ago: float = 0,
    status: str = "completed",
    **extra: Any,
) -> dict[str, Any]:
    """A contact as channels/twilio/voice.py opens it for a call to `to`, ended the way the
    status callback ends it (Twilio's `CallDuration` as `call_duration_s`) or, with
    `seconds=None`, the way channels/twilio/media.py does when the stream ends (no duration)."""
    ended = utcnow() - timedelta(seconds=ended_ago)
    contact = await open_contact(
        ctx,
        tenant_id,
        "voice",
        extra={
            "call_sid": f"CA{new_id()}",
            "from_number": "+14155550101",
            "to_number": to,
            "flow_id": None,
            "ivr_path": [],
            "call_status": "ringing",
            **extra,
        },
    )
    opened = ended - timedelta(seconds=seconds if seconds is not None else 81)
    changes: dict[str, Any] = {"opened_at": opened, "call_status": status, "call_ended_at": ended}
    if seconds is not None:
        changes["call_duration_s"] = seconds
    await ctx.db.contacts.update_one({"_id": contact["_id"]}, {"$set": changes})
    return {**contact, **changes}


async def records_of(ctx: AppContext, contact: dict[str, Any]) -> dict[str, dict[str, Any]]:
    key = f"call-in:{contact['_id']}"
    return {r["tenant_id"]: r async for r in ctx.db.billing_records.find({"source_key": key})}


async def test_an_inbound_call_is_rated_by_the_dialled_number_once(ctx: AppContext) -> None:
    chain = await with_inbound_group(ctx, await three_levels(ctx))
    cu, rs, op = chain["cu"]["_id"], chain["rs"]["_id"], chain["op"]["_id"]
    call = await inbound_call(ctx, cu, 61)
    # the same call continued in a follow-up contact (media/call.py): it holds no call sid
    follow_up = await open_contact(
        ctx, cu, "voice", extra={"to_number": "+18005550100", "call_ref": call["call_sid"]}
    )
    await ctx.db.contacts.update_one({"_id": follow_up["_id"]}, {"$set": {"call_ended_at": utcnow()}})
    outbound = await inbound_call(ctx, cu, 30, direction="outbound")  # rated from its dial attempt
    missed = await inbound_call(ctx, cu, 0, status="canceled")
    settling = await inbound_call(ctx, cu, None)  # stream ended just now, no duration yet
    settled = await inbound_call(ctx, cu, None, ended_ago=20)  # 81 s by the contact's own times
    elsewhere = await inbound_call(ctx, cu, 61, to="+14155550199")  # no 1800 prefix: unrated
    rater = Rater(ctx)
    await rater.run_once()
    records = await records_of(ctx, call)
    assert set(records) == {cu, rs}  # the operator owns the group: no record of its own
    assert records[cu]["kind"] == "inbound" and records[cu]["direction"] == "inbound"
    assert records[cu]["number"] == "+18005550100" and records[cu]["prefix"] == "1800"
    assert records[cu]["billed_seconds"] == 120 and records[cu]["unit_price_micros"] == 90_000
    assert records[cu]["amount_micros"] == 180_000  # 0.05 * 1.2 * 1.5 per min, 2 min
    assert records[rs]["amount_micros"] == 120_000 and records[cu]["contact_id"] == call["_id"]
    for contact in (follow_up, outbound, missed, settling):
        assert not await records_of(ctx, contact), contact
    assert (await records_of(ctx, settled))[cu]["seconds"] == 81
    assert (await records_of(ctx, elsewhere))[cu]["unrated"] is True
    assert await balance(ctx, cu) == 10_000_000 - 2 * 180_000
    assert await balance(ctx, rs) == 10_000_000 - 2 * 120_000
    assert await accounts.get_account(ctx, op) is None
    await rater.run_once()  # again, and fed directly: charged once
    event = inbound_event(call)
    assert event is not None and event["source_key"] == f"call-in:{call['_id']}"
    await Rater(ctx).rate_events([event])
    assert len(await records_of(ctx, call)) == 2
    assert await balance(ctx, cu) == 10_000_000 - 2 * 180_000


async def test_without_an_inbound_group_inbound_calls_cost_nothing(ctx: AppContext) -> None:
    chain = await three_levels(ctx)  # voice and SMS groups only
    cu, rs = chain["cu"]["_id"], chain["rs"]["_id"]
    call = await inbound_call(ctx, cu, 61)
    outbound = an_attempt(cu, 61)
    await ctx.db.dial_attempts.insert_one(outbound)
    await Rater(ctx).run_once()
    assert await ctx.db.billing_records.find_one({"source_key": f"call:{outbound['_id']}"})  # rated
    assert not await records_of(ctx, call)
    assert await balance(ctx, cu) == 10_000_000 - 360_000  # the outbound call only
    assert await balance(ctx, rs) == 10_000_000 - 240_000


async def test_the_statement_shows_inbound_as_its_own_kind(ctx: AppContext) -> None:
    chain = await with_inbound_group(ctx, await three_levels(ctx))
    cu = chain["cu"]
    await ctx.db.dial_attempts.insert_one(an_attempt(cu["_id"], 61))
    await inbound_call(ctx, cu["_id"], 61)
    await Rater(ctx).run_once()
    doc = await statements.statement(
        ctx, cu, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(seconds=1)
    )
    kinds = {k["kind"]: k for k in doc["charges_by_kind"]}
    assert set(kinds) == {"inbound", "voice"}
    assert kinds["inbound"]["amount_micros"] == 180_000 and kinds["inbound"]["billed_seconds"] == 120
    assert kinds["voice"]["amount_micros"] == 360_000
    assert doc["closing_balance_micros"] == await balance(ctx, cu["_id"]) and doc["reconciles"] is True
    book = load_workbook(io.BytesIO(statements.to_xlsx(doc)))
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Charges: inbound"] == pytest.approx(-0.18)
    assert summary["Charges: voice"] == pytest.approx(-0.36)
    prefixes = {(r[0], r[1]) for r in book["by prefix"].iter_rows(min_row=2, values_only=True)}
    assert prefixes == {("inbound", "1800"), ("voice", "1")}
