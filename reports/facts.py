"""Contact facts: one flat, pre-computed `contact_facts` row per contact, for the reports.

Reports group and sum; a contact document would make every report re-derive waits, talk
time and flags with expressions (SecantusDB has no `$expr`, and it would be slow at a
million contacts). So each contact is turned into a fact row (`fact_of`, pure) whose
measures are numbers and 0/1 flags (0/1, not booleans: `$sum` of a boolean is 0), and
whose time buckets (`interval_start` in UTC floored to 15 minutes; `hour`, `day`, `week`,
`month` in the tenant's time zone) are stored, so reports only `$match`, `$group`, `$sort`.

`FactUpdater` keeps the rows current: every few seconds it re-facts the contacts whose
`updated_at` moved past a watermark, the wrap-up spells that ended since (the wrap-up time
of the contact the agent just closed) and finished dial attempts that never became a
contact (outbound: `_id` "attempt:<id>"); it also adds the agent time of the state spells
closed since to the rollups (reports/rollups.py). Rows are keyed by `_id` and only rewritten
when they changed, so re-running is harmless (several hub processes may run it); `backfill`
re-facts everything. The first pass of a new install is a backfill of all contacts.

Where the sources are (and are not):
- wait: `queued_at` (kept across transfers) to `assigned_at` (the last assignment, so a
  transferred contact's wait includes the first agent's part); abandoned: to `closed_at`.
- talk: `assigned_at` to `agent_hung_up_at` (calls) or `closed_at` (text channels).
- wrap-up: `agent_hung_up_at` to `closed_at` (calls: after-call work while the contact is
  still the agent's) plus the agent's timed wrap-up spell that followed the close.
- hold: `hold_s` on the contact (media/voice_desk.py adds up each hold of the caller: the
  agent's hold button and consults) plus a hold still open (`hold_since`) until talk ended;
  talk excludes hold and handle = talk + hold + wrap-up. Text channels have no hold (None).
- csat: `survey_score` (the IVR's key-press survey). Chat has no survey source yet.
- complaint: the contact's disposition is "complaint" (a tenant's own code); no other source.
- fcr: as docs/reports.md says, 1 when the customer had no other contact in the 7 days
  before this one, None without a known customer.
- outbound: `outcome_class` from the campaign target's result class; `connected` from the
  dial attempt's outcome (answered or dropped by the dialer, i.e. a person picked up).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pymongo.errors import DuplicateKeyError

from hub.context import AppContext
from hub.db import Doc

log = logging.getLogger(__name__)

FALLBACK_TEXT_START = "Sorry, I didn't understand that."  # bot/actions.py FALLBACK_TEXT
SL_THRESHOLD_S = 20.0
FCR_DAYS = 7
OVERLAP = timedelta(seconds=5)  # re-read a little before the watermark: writes land out of order
BATCH = 500
WATERMARK_ID = "contact_facts"
CONNECTED_OUTCOMES = ("answered", "abandoned")  # a person picked up (abandoned: the dialer dropped)
INVALID_OUTCOMES = ("failed",)  # the number could not be dialled at all
MAX_WRAPUP_LAG = timedelta(seconds=5)  # a wrap-up spell starts right after its contact closes


def zone(name: str | None) -> ZoneInfo:
    """The tenant's time zone; unknown names count as UTC rather than failing a report."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def floor_15(value: datetime) -> datetime:
    """UTC floored to 15 minutes (every real time zone offset is a multiple of 15 minutes, so
    this is also the local 15-minute boundary)."""
    value = aware(value).astimezone(UTC)
    return value.replace(minute=value.minute - value.minute % 15, second=0, microsecond=0)


def buckets(at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The stored time buckets of an instant: UTC 15 minutes, local hour / day / week / month."""
    local = aware(at).astimezone(tz)
    monday = (local - timedelta(days=local.weekday())).date()
    return {
        "interval_start": floor_15(at),
        "hour": local.strftime("%Y-%m-%dT%H"),
        "day": local.strftime("%Y-%m-%d"),
        "week": monday.isoformat(),
        "month": local.strftime("%Y-%m"),
    }


def _seconds(later: Any, earlier: Any) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, round((aware(later) - aware(earlier)).total_seconds(), 3))


def _hold_seconds(contact: Doc, talk_end: Any) -> float | None:
    """Seconds the caller spent on hold (None for channels without hold)."""
    if contact.get("channel") != "voice":
        return None
    held = float(contact.get("hold_s") or 0.0)
    since = contact.get("hold_since")
    if since is not None and talk_end is not None:
        held += _seconds(talk_end, since) or 0.0
    return round(held, 3)


def _flag(value: bool) -> int:
    return 1 if value else 0


def dialled_number(contact: Doc) -> str | None:
    """Our number the customer reached (inbound) or called from (outbound)."""
    if contact.get("direction") == "outbound":
        return contact.get("from_number") or contact.get("sms_number") or contact.get("email_address")
    return contact.get("to_number") or contact.get("sms_number") or contact.get("email_address")


def question_answers(contact: Doc) -> list[Doc]:
    """Questionnaire answers flattened for `$unwind`: one item per question and chosen value."""
    out: list[Doc] = []
    for questionnaire_id, answers in (contact.get("answers") or {}).items():
        for question, value in (answers or {}).items():
            values = value if isinstance(value, list) else [value]
            for one in values:
                if one is not None:
                    out.append(
                        {"questionnaire_id": questionnaire_id, "question": question, "answer": str(one)}
                    )
    return out


def fact_of(
    contact: Doc,
    messages_summary: Doc,
    tenant: Doc,
    *,
    threshold_s: float = SL_THRESHOLD_S,
    wrapup_spell_s: float | None = None,
    outcome_class: str | None = None,
    attempt: Doc | None = None,
    repeat: bool | None = None,
) -> Doc:
    """The fact row of one contact (pure: everything it needs is passed in).

    `messages_summary`: {bot_turns, fallback_count}; `tenant`: its `timezone`;
    `threshold_s`: the service-level threshold of the contact's queue; `wrapup_spell_s`:
    the agent's timed wrap-up after this contact; `attempt`: the outbound dial attempt;
    `repeat`: the customer had another contact in the 7 days before (None: unknown).
    """
    tz = zone(tenant.get("timezone"))
    opened = aware(contact["opened_at"])
    queued, assigned, closed = contact.get("queued_at"), contact.get("assigned_at"), contact.get("closed_at")
    closed_flag = contact.get("status") == "closed"
    offered = queued is not None
    answered = assigned is not None and contact.get("agent_id") is not None
    abandoned = offered and not answered and closed_flag
    wait_s = _seconds(assigned, queued) if answered else (_seconds(closed, queued) if abandoned else None)
    talk_end = contact.get("agent_hung_up_at") or (closed if closed_flag else None)
    talk_s = _seconds(talk_end, assigned) if answered else None
    hold_s = _hold_seconds(contact, talk_end) if answered else None
    if talk_s is not None and hold_s:
        talk_s = round(max(0.0, talk_s - hold_s), 3)
    wrapup_s: float | None = None
    if answered and closed_flag:
        after_call = _seconds(closed, contact.get("agent_hung_up_at")) or 0.0
        wrapup_s = round(after_call + (wrapup_spell_s or 0.0), 3)
    handle_s = round((talk_s or 0.0) + (hold_s or 0.0) + (wrapup_s or 0.0), 3) if talk_s is not None else None
    direction = contact.get("direction") or "inbound"
    outcome = (attempt or {}).get("outcome")
    outbound = direction == "outbound"
    connected = outbound and (attempt is None or outcome in CONNECTED_OUTCOMES or outcome == "sent")
    csat = contact.get("survey_score")
    return {
        "_id": contact["_id"],
        "tenant_id": contact["tenant_id"],
        "contact_id": contact["_id"],
        "customer_id": contact.get("customer_id"),
        "channel": contact.get("channel"),
        "direction": direction,
        "status": contact.get("status"),
        "closed": _flag(closed_flag),
        "queue": contact.get("queue_name") or (contact.get("skill") if offered else None),
        "queue_id": contact.get("queue_id"),
        "agent_id": contact.get("agent_id"),
        "agent_name": contact.get("agent_name"),
        "dialled_number": dialled_number(contact),
        "campaign_id": contact.get("campaign_id"),
        "questionnaire_id": contact.get("questionnaire_id"),
        "answers": question_answers(contact),
        "opened_at": opened,
        "queued_at": queued,
        "offered_at": (contact.get("offer") or {}).get("at") or (assigned if answered else None),
        "answered_at": assigned if answered else None,
        "closed_at": closed,
        **buckets(opened, tz),
        "contacts": 1,
        "offered": _flag(offered),
        "answered": _flag(answered),
        "abandoned": _flag(abandoned),
        "sl_threshold_s": threshold_s,
        "answered_in_sl": _flag(answered and wait_s is not None and wait_s <= threshold_s),
        "wait_s": wait_s,
        "answer_wait_s": wait_s if answered else None,
        "talk_s": talk_s,
        "talk_n": _flag(talk_s is not None),
        "hold_s": hold_s,
        "hold_n": _flag(hold_s is not None),
        "wrapup_s": wrapup_s,
        "wrapup_n": _flag(wrapup_s is not None),
        "handle_s": handle_s,
        "transfers": len(contact.get("transfers") or []),
        "bot_contained": _flag(closed_flag and not offered and not answered and not outbound),
        "bot_turns": int(messages_summary.get("bot_turns") or 0),
        "handoff_reason": contact.get("reason") if offered else None,
        "intent": contact.get("intent") or contact.get("last_intent"),
        "fallback_count": int(messages_summary.get("fallback_count") or 0),
        "csat": float(csat) if isinstance(csat, int | float) else None,
        "csat_n": _flag(isinstance(csat, int | float)),
        "fcr": None if repeat is None or not answered else _flag(not repeat),
        "fcr_n": _flag(repeat is not None and answered),
        "complaint": _flag(contact.get("disposition") == "complaint"),
        "disposition": contact.get("disposition"),
        "outcome_class": outcome_class if outbound else None,
        "success": _flag(outbound and outcome_class == "success"),
        "attempts": _flag(outbound),
        "valid_number": _flag(outbound and outcome not in INVALID_OUTCOMES),
        "connected": _flag(connected),
    }


def attempt_fact(attempt: Doc, tenant: Doc, channel: str = "voice") -> Doc:
    """The fact row of a finished dial attempt that never became a contact (nobody picked up,
    busy, a machine, or a number that could not be dialled)."""
    tz = zone(tenant.get("timezone"))
    at = aware(attempt["placed_at"])
    outcome = attempt.get("outcome")
    zeros = dict.fromkeys(
        ("offered", "answered", "abandoned", "answered_in_sl", "bot_contained", "complaint", "success"), 0
    )
    return {
        "_id": f"attempt:{attempt['_id']}",
        "tenant_id": attempt["tenant_id"],
        "contact_id": None,
        "attempt_id": attempt["_id"],
        "customer_id": attempt.get("customer_id"),
        "channel": channel,
        "direction": "outbound",
        "status": "closed",
        "closed": 1,
        "queue": None,
        "agent_id": attempt.get("agent_id"),
        "agent_name": None,
        "dialled_number": attempt.get("from_number"),
        "campaign_id": attempt.get("campaign_id"),
        "answers": [],
        "opened_at": at,
        "closed_at": attempt.get("ended_at"),
        **buckets(at, tz),
        "contacts": 1,
        **zeros,
        "transfers": 0,
        "fallback_count": 0,
        "bot_turns": 0,
        "outcome": outcome,
        "outcome_class": "unreachable",
        "attempts": 1,
        "valid_number": _flag(outcome not in INVALID_OUTCOMES),
        "connected": _flag(outcome in CONNECTED_OUTCOMES),
    }


# ------------------------------------------------------------------------------------ updater


class FactUpdater:
    """Turns changed contacts into fact rows, incrementally (see the module docstring)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._tenants: dict[str, Doc] = {}
        self._thresholds: dict[str, dict[str, float]] = {}

    async def _tenant(self, tenant_id: str) -> Doc:
        if tenant_id not in self._tenants:
            doc = await self.ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1}) or {}
            self._tenants[tenant_id] = doc
            self._thresholds[tenant_id] = {
                q["_id"]: float((q.get("service_level") or {}).get("threshold_s") or SL_THRESHOLD_S)
                async for q in self.ctx.db.queues.find({"tenant_id": tenant_id}, {"service_level": 1})
            }
        return self._tenants[tenant_id]

    def forget(self) -> None:
        """Drop cached tenants and queues (a pass re-reads them: time zones and thresholds change)."""
        self._tenants.clear()
        self._thresholds.clear()

    async def summary(self, contact_id: str) -> Doc:
        rows = await (
            await self.ctx.db.messages.aggregate(
                [
                    {"$match": {"contact_id": contact_id, "author": "bot"}},
                    {"$project": {"text": 1}},
                ]
            )
        ).to_list(None)
        fallbacks = sum(1 for r in rows if str(r.get("text") or "").startswith(FALLBACK_TEXT_START))
        return {"bot_turns": len(rows), "fallback_count": fallbacks}

    async def _wrapup_spell_s(self, contact: Doc) -> float | None:
        closed, agent_id = contact.get("closed_at"), contact.get("agent_id")
        if closed is None or agent_id is None:
            return None
        spell = await self.ctx.db.agent_states.find_one(
            {
                "agent_id": agent_id,
                "state": "wrapup",
                "start": {
                    "$gte": aware(closed) - timedelta(seconds=1),
                    "$lte": aware(closed) + MAX_WRAPUP_LAG,
                },
            }
        )
        if spell is None or spell.get("end") is None:
            return None
        return _seconds(spell["end"], spell["start"])

    async def _repeat(self, contact: Doc) -> bool | None:
        if not contact.get("customer_id"):
            return None
        opened = aware(contact["opened_at"])
        earlier = await self.ctx.db.contacts.find_one(
            {
                "tenant_id": contact["tenant_id"],
                "customer_id": contact["customer_id"],
                "opened_at": {"$gte": opened - timedelta(days=FCR_DAYS), "$lt": opened},
            },
            {"_id": 1},
        )
        return earlier is not None

    async def _outbound(self, contact: Doc) -> tuple[str | None, Doc | None]:
        if contact.get("direction") != "outbound":
            return None, None
        outcome_class = None
        if contact.get("target_id"):
            target = await self.ctx.db.campaign_targets.find_one(
                {"_id": contact["target_id"]}, {"disposition_class": 1}
            )
            outcome_class = (target or {}).get("disposition_class")
        attempt = None
        if contact.get("attempt_id"):
            attempt = await self.ctx.db.dial_attempts.find_one({"_id": contact["attempt_id"]}, {"outcome": 1})
        return outcome_class, attempt

    async def fact(self, contact: Doc) -> Doc:
        """The fact row of a stored contact, with what it needs read from the database."""
        tenant = await self._tenant(contact["tenant_id"])
        threshold = self._thresholds[contact["tenant_id"]].get(contact.get("queue_id") or "", SL_THRESHOLD_S)
        outcome_class, attempt = await self._outbound(contact)
        return fact_of(
            contact,
            await self.summary(contact["_id"]),
            tenant,
            threshold_s=threshold,
            wrapup_spell_s=await self._wrapup_spell_s(contact),
            outcome_class=outcome_class,
            attempt=attempt,
            repeat=await self._repeat(contact),
        )

    async def write(self, facts: list[Doc]) -> int:
        """Store changed fact rows and add their differences to the rollups.

        Each write is conditional on the row's revision (`rev`): of two processes refacting
        the same contact, only one adds the difference to the rollups.
        """
        from reports import rollups  # the rollups build on this module's buckets

        if not facts:
            return 0
        ids = [f["_id"] for f in facts]
        stored = {d["_id"]: d async for d in self.ctx.db.contact_facts.find({"_id": {"$in": ids}})}
        delta: dict[str, Any] = {}
        written = 0
        for fact in facts:
            before = stored.get(fact["_id"])
            rev = int((before or {}).get("rev") or 0)
            if before is not None and {k: v for k, v in before.items() if k != "rev"} == fact:
                continue
            if before is None:
                try:
                    await self.ctx.db.contact_facts.insert_one({**fact, "rev": 1})
                except DuplicateKeyError:
                    continue  # another process wrote it first, with its difference
            else:
                won = await self.ctx.db.contact_facts.update_one(
                    {"_id": fact["_id"], "rev": rev}, {"$set": {**fact, "rev": rev + 1}}
                )
                if not won.modified_count:
                    continue
            tenant = await self._tenant(fact["tenant_id"])
            rollups.merge(delta, rollups.changes(before, fact, zone(tenant.get("timezone"))))
            written += 1
        await rollups.apply(self.ctx, delta)
        return written

    async def refresh(self, contact_ids: list[str]) -> int:
        """Re-fact these contacts now (e.g. right after a close)."""
        facts = [await self.fact(c) async for c in self.ctx.db.contacts.find({"_id": {"$in": contact_ids}})]
        return await self.write(facts)

    async def _contacts_since(self, since: datetime | None, query: Doc | None = None) -> int:
        filt: Doc = dict(query or {})
        if since is not None:
            filt["updated_at"] = {"$gte": aware(since) - OVERLAP}
        written = 0
        batch: list[Doc] = []
        async for contact in self.ctx.db.contacts.find(filt).batch_size(BATCH):
            batch.append(await self.fact(contact))
            if len(batch) >= BATCH:
                written += await self.write(batch)
                batch = []
        written += await self.write(batch)
        return written

    async def _wrapups_since(self, since: datetime) -> int:
        """Contacts whose agent's wrap-up spell ended since `since` (their wrap-up time is known now)."""
        ids: list[str] = []
        async for spell in self.ctx.db.agent_states.find(
            {"state": "wrapup", "end": {"$gte": aware(since) - OVERLAP}}, {"agent_id": 1, "start": 1}
        ):
            start = aware(spell["start"])
            closed = await self.ctx.db.contacts.find_one(
                {
                    "agent_id": spell["agent_id"],
                    "status": "closed",
                    "closed_at": {"$gte": start - MAX_WRAPUP_LAG, "$lte": start + timedelta(seconds=1)},
                },
                {"_id": 1},
            )
            if closed is not None:
                ids.append(closed["_id"])
        return await self.refresh(ids) if ids else 0

    async def _attempts_since(self, since: datetime | None) -> int:
        filt: Doc = {"ended_at": {"$ne": None}, "contact_id": None}
        if since is not None:
            filt["ended_at"] = {"$gte": aware(since) - OVERLAP}
        facts = []
        async for attempt in self.ctx.db.dial_attempts.find(filt):
            if attempt.get("contact_id") or not attempt.get("tenant_id"):
                continue
            facts.append(attempt_fact(attempt, await self._tenant(attempt["tenant_id"])))
        return await self.write(facts)

    async def roll_spells(self, since: datetime | None = None, tenant_id: str | None = None) -> int:
        """Add the agent time of spells closed since `since` (all not yet added, without) to
        the rollups; each spell once (`rolled`, set by a conditional update first)."""
        from reports import rollups

        query: Doc = {"end": {"$ne": None}, "rolled": {"$ne": True}}
        if since is not None:
            query["end"] = {"$gte": aware(since) - OVERLAP}
        if tenant_id is not None:
            query["tenant_id"] = tenant_id
        delta: dict[str, Any] = {}
        rolled = 0
        async for spell in self.ctx.db.agent_states.find(query):
            if spell.get("state") not in rollups.TIME_FIELDS or not spell.get("tenant_id"):
                continue
            claimed = await self.ctx.db.agent_states.update_one(
                {"_id": spell["_id"], "rolled": {"$ne": True}}, {"$set": {"rolled": True}}
            )
            if claimed.modified_count:
                tenant = await self._tenant(spell["tenant_id"])
                rollups.merge(delta, rollups.spell_changes(spell, zone(tenant.get("timezone"))))
                rolled += 1
        await rollups.apply(self.ctx, delta)
        return rolled

    async def run_once(self) -> int:
        """One incremental pass; returns the rows written."""
        self.forget()
        state = await self.ctx.db.report_state.find_one({"_id": WATERMARK_ID}) or {}
        since = state.get("at")
        started = datetime.now(UTC)  # the next pass re-reads from here (less OVERLAP)
        written = await self._contacts_since(since)
        if since is not None:
            written += await self._wrapups_since(since)
        written += await self._attempts_since(since)
        await self.roll_spells(since)
        await self.ctx.db.report_state.update_one(
            {"_id": WATERMARK_ID}, {"$set": {"at": started}}, upsert=True
        )
        return written

    async def backfill(self, tenant_id: str | None = None) -> int:
        """Re-fact every contact (of one tenant, or all) and every unanswered dial attempt."""
        self.forget()
        written = await self._contacts_since(None, {"tenant_id": tenant_id} if tenant_id else None)
        await self.roll_spells(tenant_id=tenant_id)
        return written + await self._attempts_since(None)

    async def run(self, interval_s: float = 3.0) -> None:
        """The hub's background loop; errors (e.g. a database restart) are logged and retried."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("contact facts update failed; retrying")
            await asyncio.sleep(interval_s)
