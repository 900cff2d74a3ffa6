"""The rater: turns ended calls and sent SMS into billing records and charges them, once each.

Sources (billing reads them; nothing there imports billing):
- outbound calls: `dial_attempts` (routing/dialer.py writes them, channels/twilio/outbound.py
  stamps `ended_at` with Twilio's `duration` in the same write). Billable when the call was
  answered (`answered_at`) or Twilio reported talk seconds; the seconds are Twilio's
  `duration`, else `ended_at - answered_at` rounded up. Source key "call:<attempt id>".
- SMS: `outbox` rows of channel sms once sent (`sent_at`), per segment (`meta.segments`,
  written by channels/sms/relay.py). Source key "sms:<outbox id>".
- inbound calls: voice `contacts` without `direction: "outbound"` that hold the call's
  `call_sid` (a follow-up contact of the same call holds `call_ref` instead, so a call is
  rated once however many contacts it went through) and whose `call_ended_at` is set
  (channels/twilio/voice.py stamps it on Twilio's final status callback with `call_duration_s`,
  channels/twilio/media.py when the media stream ends). Priced by the dialled number
  (`to_number`: what a 400 / toll-free line costs its holder depends on the number called,
  not on who calls) on the tenant's `inbound_group_id`; tenants without one pay nothing for
  inbound. Seconds: Twilio's `call_duration_s`, else `call_ended_at - opened_at` rounded up
  (our TwiML answers the call when the contact opens) once SETTLE has passed without
  Twilio's figure. Source key "call-in:<contact id>", record kind "inbound".

For the tenant that placed the call and every billed tenant above it (pricing.PriceBook.chain)
a record is written at that tenant's own price (the customer pays its marked-up price, its
reseller the reseller's price, the operator earns the rest). The unique index
(tenant_id, source_key) makes a second rating of the same event fail to insert, and only
inserted records are charged (accounts.py explains the exactly-once charge). A tenant rated
on a group without a matching prefix gets a zero record marked `unrated`, visible in the
records list.

The loop keeps a watermark (`billing_state`, like reports/facts.py) and re-reads OVERLAP
before it, because writes land slightly out of order; several hubs may run it at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError

from billing import accounts
from billing.pricing import PriceBook
from billing.rating import call_amount, sms_amount
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

log = logging.getLogger(__name__)

OVERLAP = timedelta(seconds=30)
SETTLE = timedelta(seconds=10)  # how long an inbound call waits for Twilio's own duration
UNANSWERED = ("busy", "failed", "no-answer", "canceled")
PER_MINUTE_KINDS = ("voice", "inbound")
# the fields each source's event is made of (the rest of a contact, e.g. its IVR state, stays)
SOURCE_FIELDS: dict[str, list[str]] = {
    "dial_attempts": ["tenant_id", "ended_at", "number", "duration", "answered_at", "campaign_id"],
    "outbox": ["channel", "sent_at", "tenant_id", "meta", "to"],
    "contacts": [
        "channel", "direction", "call_ended_at", "tenant_id", "call_sid", "to_number", "call_status",
        "call_duration_s", "answered_at", "opened_at",
    ],
}  # fmt: skip
WATERMARK_ID = "rater"
BATCH = 1000
RECOVER_EVERY = 15  # passes between recover() runs


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def call_event(attempt: Doc) -> Doc | None:
    """The billable facts of a finished dial attempt, or None (never answered, not ended)."""
    if not attempt.get("tenant_id") or not attempt.get("ended_at") or not attempt.get("number"):
        return None
    duration = attempt.get("duration")
    if isinstance(duration, int | float) and duration > 0:
        seconds = math.ceil(duration)
    elif attempt.get("answered_at") is not None:
        delta = (aware(attempt["ended_at"]) - aware(attempt["answered_at"])).total_seconds()
        seconds = max(0, math.ceil(delta - 1e-6))
    else:
        return None
    if attempt.get("answered_at") is None and seconds <= 0:
        return None
    return {
        "tenant_id": attempt["tenant_id"],
        "source_key": f"call:{attempt['_id']}",
        "kind": "voice",
        "direction": "outbound",
        "number": attempt["number"],
        "seconds": seconds,
        "segments": 0,
        "campaign_id": attempt.get("campaign_id"),
        "at": aware(attempt["ended_at"]),
    }


def inbound_event(contact: Doc, ready_before: datetime | None = None) -> Doc | None:
    """The billable facts of an ended inbound call's contact, or None (not a rated inbound
    call, never answered, or still waiting up to SETTLE for Twilio's duration)."""
    if contact.get("channel") != "voice" or contact.get("direction") == "outbound":
        return None
    ended = contact.get("call_ended_at")
    if (
        not contact.get("tenant_id")
        or not contact.get("call_sid")
        or not contact.get("to_number")
        or not ended
    ):
        return None
    if contact.get("call_status") in UNANSWERED:
        return None
    ended = aware(ended)
    duration = contact.get("call_duration_s")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
        seconds = math.ceil(duration)
    else:
        if ready_before is not None and ended > ready_before:
            return None  # Twilio's status callback may still bring the carrier's figure
        started = aware(contact.get("answered_at") or contact.get("opened_at") or ended)
        seconds = max(0, math.ceil((ended - started).total_seconds() - 1e-6))
    return {
        "tenant_id": contact["tenant_id"],
        "source_key": f"call-in:{contact['_id']}",
        "kind": "inbound",
        "direction": "inbound",
        "number": contact["to_number"],
        "seconds": seconds,
        "segments": 0,
        "campaign_id": None,
        "contact_id": contact["_id"],
        "at": ended,
    }


def sms_event(row: Doc) -> Doc | None:
    if row.get("channel") != "sms" or not row.get("sent_at") or not row.get("tenant_id"):
        return None
    segments = int((row.get("meta") or {}).get("segments") or 1)
    return {
        "tenant_id": row["tenant_id"],
        "source_key": f"sms:{row['_id']}",
        "kind": "sms",
        "direction": "outbound",
        "number": row.get("to") or "",
        "seconds": 0,
        "segments": segments,
        "campaign_id": (row.get("meta") or {}).get("campaign_id"),
        "at": aware(row["sent_at"]),
    }


async def records_for(book: PriceBook, event: Doc, now: datetime) -> list[Doc]:
    """One record per billed tenant on the event's chain, each at that tenant's price."""
    out: list[Doc] = []
    for tenant_id in await book.chain(event["tenant_id"]):
        account = await book.account(tenant_id)
        if account is None or not account.get(f"{event['kind']}_group_id"):
            continue
        priced = await book.price(tenant_id, event["kind"], event["number"])
        record: Doc = {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "origin_tenant_id": event["tenant_id"],
            "source_key": event["source_key"],
            "kind": event["kind"],
            "direction": event["direction"],
            "number": event["number"],
            "campaign_id": event.get("campaign_id") if tenant_id == event["tenant_id"] else None,
            "seconds": event["seconds"],
            "segments": event["segments"],
            "currency": account.get("currency") or "USD",
            "at": event["at"],
            "created_at": now,
            "applied": False,
        }
        if priced is None:
            record.update(
                prefix=None,
                group_id=account.get(f"{event['kind']}_group_id"),
                billed_seconds=0,
                unit_price_micros=0,
                connection_micros=0,
                amount_micros=0,
                unrated=True,
            )
        else:
            per_minute = event["kind"] in PER_MINUTE_KINDS
            if per_minute:
                billed, amount = call_amount(priced.tariff, event["seconds"])
            else:
                billed, amount = 0, sms_amount(priced.tariff, event["segments"])
            record.update(
                prefix=priced.rate["prefix"],
                description=priced.rate.get("description") or "",
                group_id=priced.group["_id"],
                billed_seconds=billed,
                unit_price_micros=priced.tariff.price_micros,
                connection_micros=priced.tariff.connection_micros if per_minute else 0,
                amount_micros=amount,
                unrated=False,
            )
        if event.get("contact_id"):
            record["contact_id"] = event["contact_id"]
        out.append(record)
    return out


async def store_and_charge(ctx: AppContext, records: list[Doc]) -> int:
    """Open one charge per account, insert the records with it (duplicates of already rated
    events are refused by the unique index: ordered=False inserts the rest) and debit each
    account the sum of its inserted records in one update; how many records were charged.
    Each record is written once: its charge, not the record, is marked applied (accounts.py)."""
    if not records:
        return 0
    charge_ids: dict[str, str] = {}
    for record in records:
        record["charge_id"] = charge_ids.setdefault(record["tenant_id"], new_id())
        record.pop("applied", None)  # the charge's state says it
    await accounts.open_charges(ctx, charge_ids)
    refused: set[int] = set()
    try:
        await ctx.db.billing_records.insert_many(records, ordered=False)
    except BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            if error.get("code") != 11000:
                raise
            refused.add(int(error["index"]))
    inserted = [r for i, r in enumerate(records) if i not in refused]
    totals: dict[str, int] = {}
    for record in inserted:
        totals[record["tenant_id"]] = totals.get(record["tenant_id"], 0) + int(record["amount_micros"])
    for tenant_id, charge_id in charge_ids.items():
        if tenant_id in totals:
            await accounts.apply_charge(ctx, tenant_id, charge_id, totals[tenant_id])
        else:
            await accounts.drop_charge(ctx, charge_id)
    return len(inserted)


class Rater:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.passes = 0

    async def rate_events(self, events: list[Doc], book: PriceBook | None = None) -> int:
        book = book or PriceBook(self.ctx)
        now = utcnow()
        charged = 0
        batch: list[Doc] = []
        for event in events:
            batch.extend(await records_for(book, event, now))
            if len(batch) >= BATCH:
                charged += await store_and_charge(self.ctx, batch)
                batch = []
        return charged + await store_and_charge(self.ctx, batch)

    async def _source(self, collection: str, query: Doc, to_event: Any, book: PriceBook) -> int:
        charged = 0
        events: list[Doc] = []
        cursor = self.ctx.db.db[collection].find(query, SOURCE_FIELDS[collection]).batch_size(BATCH)
        async for doc in cursor:
            event = to_event(doc)
            if event is None:
                continue
            events.append(event)
            if len(events) >= BATCH:
                charged += await self.rate_events(events, book)
                events = []
        return charged + await self.rate_events(events, book)

    async def run_once(self) -> int:
        """One incremental pass over outbound and inbound calls and SMS since the watermark;
        records charged."""
        state = await self.ctx.db.billing_state.find_one({"_id": WATERMARK_ID}) or {}
        since = state.get("at")
        started = datetime.now(UTC)
        book = PriceBook(self.ctx)
        calls: Doc = {"ended_at": {"$ne": None}}
        texts: Doc = {"channel": "sms", "sent_at": {"$ne": None}}
        if since is not None:
            calls["ended_at"] = {"$gte": aware(since) - OVERLAP}
            texts["sent_at"] = {"$gte": aware(since) - OVERLAP}
        inbound: Doc = {"channel": "voice", "call_ended_at": {"$ne": None}}
        if since is not None:
            inbound["call_ended_at"] = {"$gte": aware(since) - OVERLAP - SETTLE}
        ready_before = started - SETTLE
        charged = await self._source("dial_attempts", calls, call_event, book)
        charged += await self._source("outbox", texts, sms_event, book)
        charged += await self._source(
            "contacts", inbound, lambda contact: inbound_event(contact, ready_before), book
        )
        await self.ctx.db.billing_state.update_one(
            {"_id": WATERMARK_ID}, {"$set": {"at": started}}, upsert=True
        )
        self.passes += 1
        if self.passes % RECOVER_EVERY == 1:
            await accounts.recover(self.ctx)
        return charged

    async def run(self, interval_s: float = 2.0) -> None:
        """The hub's background loop; errors (a database restart) are logged and retried."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("billing rater pass failed; retrying")
            await asyncio.sleep(interval_s)
