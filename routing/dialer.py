"""The outbound dialer: places the calls of running campaigns, by priority, at their pacing,
under the dial-time rules, and turns each call's outcome into the target's next step.

Every tick (a second) for each running voice campaign, highest priority first:
1. how many calls to place now: routing/pacing.py from the campaign's live figures (free
   agents of the campaign, calls in flight, answer / machine rates, the abandon rate so far);
   robot and broadcast campaigns by their line capacity;
2. the due targets (pending, `next_attempt_at` passed or unset, not held for another agent);
3. routing/compliance.py decides each number *now*: black / red lists, the recipient's
   local window and holidays, the frequency cap across campaigns; a number held back waits
   for `retry_at`, a grey one waits for an agent's confirmation, a blocked one is skipped;
4. the call is placed through the `place` function the hub wires in (channels/twilio/
   outbound.py; routing never imports a channel).

Twilio reports back through the channel's hooks (`install` registers them): an answered
call runs a flow (robot: the campaign's IVR flow; broadcast: its prompt; agent campaigns:
straight to a free agent of the campaign within ABANDON_AFTER_S, else the call counts as
abandoned and is hung up); a finished call's outcome reschedules the target by the
campaign's retry rule for that outcome, or closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from hub.context import AppContext
from hub.db import Doc, update_then_read
from hub.ids import new_id, utcnow
from knowledge.dnc import active_entries
from routing.campaigns import AGENT_TYPES, Campaign, approval_problem, next_attempt_after, outbound_block
from routing.compliance import CallingRules, Decision, check, may_dial_many
from routing.pacing import PacingStats, calls_to_place, censored_mean, policy_for_campaign
from routing.presence import tenant_routing
from routing.text_campaigns import TEXT_TYPES, SendMail, SendText, TextCampaigns

log = logging.getLogger(__name__)

PlaceCall = Callable[..., Awaitable[str]]
HangUp = Callable[[str], Awaitable[None]]
ABANDON_AFTER_S = 2.0  # answered by a person and no agent within this: an abandoned call
IN_FLIGHT_STALE_S = 300.0  # an attempt with no final status after this no longer holds a line
DIALLED_TYPES = ("progressive", "predictive", "robot", "broadcast", *TEXT_TYPES)
AGENT_WAIT_POLL_S = 0.1


class Dialer:
    def __init__(
        self,
        ctx: AppContext,
        place: PlaceCall,
        hang_up: HangUp,
        send_text: SendText | None = None,
        send_mail: SendMail | None = None,
    ) -> None:
        self.ctx = ctx
        self.place = place
        self.hang_up = hang_up
        self.texts = TextCampaigns(ctx, send_text, send_mail, self._hold_back, self._complete)
        self._last_placed: dict[str, datetime] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Hear the telephony channel's call events (see channels/twilio/outbound.py)."""
        self.ctx.extra["outbound_on_answer"] = self.on_answer
        self.ctx.extra["outbound_on_status"] = self.on_status
        self.ctx.extra["outbound_on_amd"] = self.on_amd

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a DB outage must not stop the dialer for good
                log.exception("dialer tick failed")
            await asyncio.sleep(interval_s)

    # -- placing calls ---------------------------------------------------------------------
    async def tick(self, now: datetime | None = None) -> int:
        """One pass over the running campaigns; the number of calls placed."""
        now = now or utcnow()
        placed = 0
        async for doc in self.ctx.db.campaigns.find(
            {"state": "running", "type": {"$in": list(DIALLED_TYPES)}}
        ).sort("priority", -1):
            try:
                placed += await self._campaign_tick(doc, now)
            except Exception:
                log.exception("campaign %s: dialling failed this tick", doc["_id"])
        return placed

    async def _campaign_tick(self, doc: Doc, now: datetime) -> int:
        campaign = Campaign.from_doc(doc)
        schedule = campaign.schedule
        if schedule.ends_at is not None and now >= _aware(schedule.ends_at):
            await self._complete(doc, "the campaign's end time passed")
            return 0
        if schedule.starts_at is not None and now < _aware(schedule.starts_at):
            return 0
        blocked = await outbound_block(self.ctx, campaign.tenant_id)
        if blocked:  # e.g. the prepaid balance ran out: no call, SMS or email until resumed
            await self._pause(doc, blocked)
            return 0
        if campaign.interval_s > 0:
            last = self._last_placed.get(campaign.id)
            if last is not None and (now - last).total_seconds() < campaign.interval_s:
                return 0
        problem = await approval_problem(self.ctx, doc)
        if problem:  # an approval was withdrawn while the campaign ran: stop dialling it
            await self._pause(doc, problem)
            return 0
        if campaign.type in TEXT_TYPES:
            return await self.texts.tick(doc, campaign, now)
        callbacks = await self._callbacks(campaign, now)
        budget = await self._budget(campaign, now)
        if budget <= 0:
            return callbacks
        if campaign.interval_s > 0:
            budget = 1  # one call per interval
        targets = await self._due(campaign, now, limit=budget * 3 + 10)
        if not targets:
            if not await self.ctx.db.campaign_targets.find_one(
                {"campaign_id": campaign.id, "status": {"$in": ["pending", "dialing", "needs_confirmation"]}},
                {"_id": 1},
            ):
                await self._complete(doc, "every target was tried")
            return 0
        rules = CallingRules.of_campaign(doc)
        decisions = await may_dial_many(
            self.ctx, campaign.tenant_id, rules, [t["number"] for t in targets], now
        )
        placed = 0
        for target in targets:  # every fetched target is judged; as many as the budget dialled
            decision = decisions[target["number"]]
            if not decision.allowed:
                await self._hold_back(target, decision)
                continue
            if placed < budget and await self.dial(campaign, target, now):
                placed += 1
        if placed:
            self._last_placed[campaign.id] = now
        return placed + callbacks

    async def _callbacks(self, campaign: Campaign, now: datetime) -> int:
        """Callbacks agents booked: dialled at the agreed time for that same agent, once the
        agent is free (preview campaigns leave them to the agent's own next-record list)."""
        if campaign.type not in ("progressive", "predictive"):
            return 0
        placed = 0
        cursor = self.ctx.db.campaign_targets.find(
            {"campaign_id": campaign.id, "status": "pending", "callback_at": {"$ne": None, "$lte": now}}
        ).limit(20)
        async for target in cursor:
            agent_id = target.get("assigned_agent_id")
            free = await self.ctx.db.agents.find_one(
                {"_id": agent_id, "state": "available", "free.voice": {"$gt": 0}}, {"_id": 1}
            )
            if free is None:
                continue
            # the customer agreed to this call: lists and calling hours hold, the frequency cap not
            rules = CallingRules.of_campaign(campaign.to_doc())
            entry = (await active_entries(self.ctx, campaign.tenant_id, [target["number"]], now)).get(
                target["number"]
            )
            decision = check(target["number"], now, rules, entry, None)
            if decision.allowed and await self.dial(campaign, target, now, agent_id=agent_id):
                await self.ctx.db.campaign_targets.update_one(
                    {"_id": target["_id"]}, {"$set": {"callback_at": None}}
                )
                placed += 1
        return placed

    async def _budget(self, campaign: Campaign, now: datetime) -> int:
        ringing = [
            (now - _aware(a["placed_at"])).total_seconds()
            async for a in self.ctx.db.dial_attempts.find(
                {
                    "campaign_id": campaign.id,
                    "ended_at": None,
                    "answered_at": None,
                    "placed_at": {"$gt": now - timedelta(seconds=IN_FLIGHT_STALE_S)},
                    "agent_id": None,
                },
                {"placed_at": 1},
            )
        ]
        policy = policy_for_campaign(campaign.type, campaign.pacing_ratio)
        if campaign.type in ("robot", "broadcast"):
            return calls_to_place(
                PacingStats(free_agents=0, lines_available=max(0, campaign.lines - len(ringing))), policy
            )
        history = await self._history(campaign, now)
        stats = PacingStats(
            free_agents=await self._free_agents(campaign),
            calls_ringing=len(ringing),
            ringing_ages_s=tuple(ringing),
            ring_timeout_s=float(campaign.ring_timeout_s),
            target_abandon_rate=campaign.max_abandon_rate,
            **await self._agents_busy(campaign, now),
            **history,
        )
        return calls_to_place(stats, policy)

    async def _agents_busy(self, campaign: Campaign, now: datetime) -> dict[str, Any]:
        """How long the campaign's busy agents have talked, and the wrap-up the others have left:
        the predictive policy dials ahead for agents about to be free."""
        agents: Doc = {"tenant_id": campaign.tenant_id}
        if campaign.agent_ids:
            agents["_id"] = {"$in": campaign.agent_ids}
        wrapping = [
            max(0.0, (_aware(a["wrapup_until"]) - now).total_seconds())
            async for a in self.ctx.db.agents.find({**agents, "state": "wrapup"}, {"wrapup_until": 1})
            if a.get("wrapup_until")
        ]
        talking_query: Doc = {"tenant_id": campaign.tenant_id, "status": "assigned", "channel": "voice"}
        if campaign.agent_ids:
            talking_query["agent_id"] = {"$in": campaign.agent_ids}
        talking = [
            (now - _aware(c["assigned_at"])).total_seconds()
            async for c in self.ctx.db.contacts.find(talking_query, {"assigned_at": 1})
            if c.get("assigned_at")
        ]
        settings = await tenant_routing(self.ctx, campaign.tenant_id)
        return {
            "agents_talking_s": tuple(talking),
            "agents_soon_free": tuple(wrapping),
            "wrap_up_s": float(settings.wrapup_s.get("voice", 0)),
        }

    async def _free_agents(self, campaign: Campaign) -> int:
        query: Doc = {"tenant_id": campaign.tenant_id, "state": "available", "free.voice": {"$gt": 0}}
        if campaign.agent_ids:
            query["_id"] = {"$in": campaign.agent_ids}
        return await self.ctx.db.agents.count_documents(query)

    async def _history(self, campaign: Campaign, now: datetime) -> dict[str, Any]:
        """Answer and machine rates, ring and handle times and abandons from the campaign's calls.

        Only calls placed longer ago than the ring timeout count for the rates: early on, fast
        busy signals would otherwise make the answer rate look low and the dialer overshoot.
        """
        settled = now - timedelta(seconds=campaign.ring_timeout_s)
        pipeline: list[Doc] = [
            {
                "$match": {
                    "campaign_id": campaign.id,
                    "placed_at": {"$lte": settled},
                    "outcome": {"$ne": None},
                }
            },
            {
                "$group": {
                    "_id": None,
                    "placed": {"$sum": 1},
                    "answered": {
                        "$sum": {"$cond": [{"$in": ["$outcome", ["answered", "abandoned", "machine"]]}, 1, 0]}
                    },
                    "machines": {"$sum": {"$cond": [{"$eq": ["$outcome", "machine"]}, 1, 0]}},
                    "abandoned": {"$sum": {"$cond": [{"$eq": ["$outcome", "abandoned"]}, 1, 0]}},
                    "ring_ms": {"$avg": "$ring_ms"},
                }
            },
        ]
        rows = [row async for row in await self.ctx.db.dial_attempts.aggregate(pipeline)]
        if not rows or not rows[0]["placed"]:
            return {}
        row = rows[0]
        answered = row["answered"]
        figures: dict[str, Any] = {
            "answer_rate": answered / row["placed"],
            "machine_rate": row["machines"] / answered if answered else 0.0,
            "mean_ring_s": row["ring_ms"] / 1000 if row.get("ring_ms") else None,
            "answered_so_far": answered - row["machines"],
            "abandoned_so_far": row["abandoned"],
        }
        # handle time of calls put through to agents: finished ones and the elapsed part of live ones
        finished: list[float] = []
        running = 0.0
        async for attempt in self.ctx.db.dial_attempts.find(
            {"campaign_id": campaign.id, "connected_at": {"$ne": None}},
            {"connected_at": 1, "ended_at": 1},
        ):
            start = _aware(attempt["connected_at"])
            if attempt.get("ended_at"):
                finished.append((_aware(attempt["ended_at"]) - start).total_seconds())
            else:
                running += (now - start).total_seconds()
        figures["handle_mean_s"] = censored_mean(sum(finished), len(finished), running)
        if len(finished) >= 2:
            figures["handle_stdev_s"] = statistics.stdev(finished)
        return figures

    async def _due(self, campaign: Campaign, now: datetime, limit: int) -> list[Doc]:
        """Pending targets whose time has come; callbacks held for an agent wait for that agent."""
        query: Doc = {
            "campaign_id": campaign.id,
            "status": "pending",
            "$or": [{"next_attempt_at": None}, {"next_attempt_at": {"$lte": now}}],
            "callback_at": None,
        }
        cursor = (
            self.ctx.db.campaign_targets.find(query)
            .sort([("next_attempt_at", 1), ("line", 1), ("_id", 1)])
            .limit(limit)
        )
        return [t async for t in cursor]

    async def _hold_back(self, target: Doc, decision: Decision) -> None:
        """A number that may not be dialled now: later, after an agent's confirmation, or never."""
        changes: Doc = {"last_block": decision.reason}
        if decision.needs_confirmation:
            changes["status"] = "needs_confirmation"
        elif decision.retry_at is not None:
            changes["next_attempt_at"] = decision.retry_at
        else:
            changes.update(status="skipped", last_outcome="blocked")
        await self.ctx.db.campaign_targets.update_one(
            {"_id": target["_id"], "status": "pending"}, {"$set": changes}
        )

    async def dial(
        self, campaign: Campaign, target: Doc, now: datetime, *, agent_id: str | None = None
    ) -> bool:
        """Claim the target, record the attempt, place the call; False if someone else took it.
        `agent_id`: a preview call the agent places themselves (their slot is already theirs)."""
        claimed = await update_then_read(
            self.ctx.db.campaign_targets,
            {"_id": target["_id"], "status": {"$in": ["pending", "needs_confirmation", "previewing"]}},
            {"$set": {"status": "dialing", "dialing_since": now}, "$inc": {"attempts": 1}},
        )
        if claimed is None:
            return False
        attempt: Doc = {
            "_id": new_id(),
            "tenant_id": campaign.tenant_id,
            "campaign_id": campaign.id,
            "target_id": target["_id"],
            "number": target["number"],
            "customer_id": target.get("customer_id"),
            "agent_id": agent_id,
            "placed_at": now,
            "answered_at": None,
            "ended_at": None,
            "outcome": None,
            "call_sid": None,
        }
        await self.ctx.db.dial_attempts.insert_one(attempt)
        try:
            assert campaign.caller_id is not None  # a voice campaign cannot start without one
            sid = await self.place(
                self.ctx,
                tenant_id=campaign.tenant_id,
                to=target["number"],
                from_=campaign.caller_id,
                attempt_id=attempt["_id"],
                ring_timeout_s=campaign.ring_timeout_s,
                amd=campaign.amd.enabled,
                leave_message=campaign.amd.enabled and bool(campaign.amd.message_prompt_id),
                record=campaign.recording,
            )
        except Exception as exc:  # the channel's PlacementError, or anything unexpected: retry later
            log.warning("campaign %s: placing a call to %s failed: %s", campaign.id, target["number"], exc)
            await self.ctx.db.dial_attempts.update_one(
                {"_id": attempt["_id"]},
                {"$set": {"outcome": "failed", "ended_at": utcnow(), "error": str(exc)[:500]}},
            )
            await self._finish_target(campaign, claimed, "failed")
            return True
        await self.ctx.db.dial_attempts.update_one({"_id": attempt["_id"]}, {"$set": {"call_sid": sid}})
        return True

    # -- what happened to a call -------------------------------------------------------------
    async def on_status(self, attempt: Doc, event: Doc) -> None:
        current = await self.ctx.db.dial_attempts.find_one({"_id": attempt["_id"]}) or attempt
        if current.get("call_status") not in ("completed", "busy", "no-answer", "failed", "canceled"):
            return
        now = utcnow()
        changes: Doc = {"ended_at": current.get("ended_at") or now}
        if current.get("answered_at") and current.get("placed_at"):
            changes["ring_ms"] = (
                _aware(current["answered_at"]) - _aware(current["placed_at"])
            ).total_seconds() * 1000
        await self.ctx.db.dial_attempts.update_one({"_id": current["_id"]}, {"$set": changes})
        outcome = current.get("outcome") or "no_answer"
        campaign_doc = await self.ctx.db.campaigns.find_one({"_id": current.get("campaign_id")})
        target = await self.ctx.db.campaign_targets.find_one({"_id": current.get("target_id")})
        if campaign_doc is None or target is None:
            return
        await self._finish_target(Campaign.from_doc(campaign_doc), target, outcome)

    async def on_amd(self, attempt: Doc, event: Doc) -> None:
        """A machine answered: leave the campaign's message after the beep if it has one (the
        call's pipeline plays it), else hang up; the outcome says machine either way."""
        if event.get("answered_by") != "machine":
            return
        doc = await self.ctx.db.campaigns.find_one({"_id": attempt.get("campaign_id")})
        if doc is None:
            return  # not a campaign's call: whoever placed it decides
        prompt_id = (doc.get("amd") or {}).get("message_prompt_id")
        current = await self.ctx.db.dial_attempts.find_one({"_id": attempt["_id"]}) or attempt
        if prompt_id and current.get("contact_id"):
            self.ctx.bus.publish(
                f"contact:{current['contact_id']}",
                {"type": "call_control", "action": "leave_message", "prompt_id": prompt_id},
            )
            return
        if current.get("call_sid"):
            with contextlib.suppress(Exception):
                await self.hang_up(current["call_sid"])

    async def _finish_target(self, campaign: Campaign, target: Doc, outcome: str) -> None:
        """After a call: done, or back to pending at the retry time for that outcome."""
        now = utcnow()
        changes: Doc = {"last_outcome": outcome, "last_attempt_at": now}
        retry_as = {"abandoned": "no_answer"}.get(outcome, outcome)
        if outcome == "answered":
            changes["status"] = "done"
        else:
            retry_at = next_attempt_after(campaign, retry_as, int(target.get("attempts") or 1), now)
            if retry_at is None:
                changes.update(
                    status="done", disposition_class=target.get("disposition_class") or "unreachable"
                )
            else:
                changes.update(status="pending", next_attempt_at=retry_at)
        # a result the agent recorded meanwhile (a callback) wins over the dialer's bookkeeping
        await self.ctx.db.campaign_targets.update_one(
            {"_id": target["_id"], "status": "dialing"}, {"$set": changes}
        )

    async def on_answer(self, contact: Doc, attempt: Doc) -> Doc | None:
        """The flow an answered call runs (channels/twilio/outbound.py runs it)."""
        doc = await self.ctx.db.campaigns.find_one({"_id": attempt.get("campaign_id")})
        if doc is None:
            return None
        campaign = Campaign.from_doc(doc)
        base: Doc = {
            "_id": f"campaign-{campaign.id}",
            "tenant_id": campaign.tenant_id,
            "number": campaign.caller_id or "+10000000000",
            "name": campaign.name,
            "survey": {"enabled": False},
        }
        if attempt.get("answered_by") == "machine":  # the verdict came before the stream
            if not campaign.amd.message_prompt_id:
                return None
            return {
                **base,
                "start": "message",
                "nodes": {
                    "message": {
                        "type": "say",
                        "prompt": {"audio_id": campaign.amd.message_prompt_id},
                        "next": "bye",
                    },
                    "bye": {"type": "hangup"},
                },
            }
        if campaign.type == "robot" and campaign.questionnaire_id and not campaign.flow_id:
            # media/call.py asks the contact's questionnaire instead of running this flow
            await self.ctx.db.contacts.update_one(
                {"_id": contact["_id"]}, {"$set": {"questionnaire_id": campaign.questionnaire_id}}
            )
            return {**base, "start": "bye", "nodes": {"bye": {"type": "hangup"}}}
        if campaign.type == "robot" and campaign.flow_id:
            flow = await self.ctx.db.ivr_flows.find_one(
                {"_id": campaign.flow_id, "tenant_id": campaign.tenant_id}
            )
            if flow is None:
                log.error("campaign %s: robot flow %s is missing", campaign.id, campaign.flow_id)
                return None
            return {**flow, "number": base["number"]}
        if campaign.type == "broadcast" and campaign.prompt_id:
            return {
                **base,
                "start": "message",
                "nodes": {
                    "message": {"type": "say", "prompt": {"audio_id": campaign.prompt_id}, "next": "bye"},
                    "bye": {"type": "hangup"},
                },
            }
        if campaign.type in AGENT_TYPES:
            self._watch(self._to_agent(campaign, contact, attempt))
            return {
                **base,
                "start": "agent",
                "nodes": {
                    "agent": {
                        "type": "queue",
                        "skill": "outbound",
                        "queue_id": campaign.queue_id,
                        "agent_id": attempt.get("agent_id"),
                        "reason": "outbound",
                    }
                },
            }
        return None

    def _watch(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _to_agent(self, campaign: Campaign, contact: Doc, attempt: Doc) -> None:
        """Put the answered callee through to a free agent of the campaign at once; nobody
        within ABANDON_AFTER_S: the call counts as abandoned and is hung up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ABANDON_AFTER_S
        router = self.ctx.require_router()
        while loop.time() < deadline:
            current = await self.ctx.db.contacts.find_one({"_id": contact["_id"]})
            if current is None or current["status"] == "closed":
                return
            if current["status"] == "assigned":
                await self._connected(attempt, current.get("agent_id"))
                return
            if current["status"] in ("queued", "offered"):
                ringing = (current.get("offer") or {}).get("agent_ids") or []
                for agent_id in await self._candidates(campaign, attempt):
                    with contextlib.suppress(Exception):
                        taken = await self._take(router, campaign, contact["_id"], agent_id, ringing)
                        await self._connected(attempt, taken.get("agent_id"))
                        return
            await asyncio.sleep(AGENT_WAIT_POLL_S)
        log.info(
            "campaign %s: no agent for an answered call within %.0f s: abandoned",
            campaign.id,
            ABANDON_AFTER_S,
        )
        await self.ctx.db.dial_attempts.update_one(
            {"_id": attempt["_id"], "outcome": {"$in": [None, "answered"]}},
            {"$set": {"outcome": "abandoned"}},
        )
        await router.abandon(contact["_id"], "outbound_no_agent")
        if attempt.get("call_sid") or contact.get("call_sid"):
            with contextlib.suppress(Exception):
                await self.hang_up(attempt.get("call_sid") or contact["call_sid"])

    async def _take(
        self, router: Any, campaign: Campaign, contact_id: str, agent_id: str, ringing: list[str]
    ) -> Doc:
        """The agent takes the call: accept the router's offer that already holds the agent's
        slot (a preview call rings its own agent), else assign it to them directly."""
        if agent_id in ringing:
            user = await self.ctx.db.users.find_one({"_id": agent_id}, {"name": 1}) or {}
            taken: Doc = await router.accept(contact_id, agent_id, user.get("name") or "", campaign.tenant_id)
            return taken
        assigned: Doc = await router.assign_to(contact_id, agent_id, campaign.tenant_id, by="dialer")
        return assigned

    async def _candidates(self, campaign: Campaign, attempt: Doc) -> list[str]:
        if attempt.get("agent_id"):
            return [attempt["agent_id"]]
        query: Doc = {"tenant_id": campaign.tenant_id, "state": "available", "free.voice": {"$gt": 0}}
        if campaign.agent_ids:
            query["_id"] = {"$in": campaign.agent_ids}
        return [
            a["_id"] async for a in self.ctx.db.agents.find(query, {"_id": 1}).sort("idle_since", 1).limit(5)
        ]

    async def _connected(self, attempt: Doc, agent_id: str | None) -> None:
        await self.ctx.db.dial_attempts.update_one(
            {"_id": attempt["_id"]}, {"$set": {"agent_id": agent_id, "connected_at": utcnow()}}
        )
        await self.ctx.db.campaign_targets.update_one(
            {"_id": attempt.get("target_id")}, {"$set": {"last_agent_id": agent_id}}
        )

    async def _pause(self, doc: Doc, why: str) -> None:
        now = utcnow()
        updated = await update_then_read(
            self.ctx.db.campaigns,
            {"_id": doc["_id"], "state": "running"},
            {"$set": {"state": "paused", "paused_at": now, "updated_at": now, "paused_because": why}},
        )
        if updated is not None:
            log.warning("campaign %s paused: %s", doc["_id"], why)
            self.ctx.bus.publish(
                f"tenant:{doc['tenant_id']}",
                {"type": "campaign", "campaign": {"id": doc["_id"], "state": "paused"}},
            )

    async def _complete(self, doc: Doc, why: str) -> None:
        now = utcnow()
        updated = await update_then_read(
            self.ctx.db.campaigns,
            {"_id": doc["_id"], "state": "running"},
            {
                "$set": {
                    "state": "completed",
                    "completed_at": now,
                    "updated_at": now,
                    "completed_because": why,
                }
            },
        )
        if updated is not None:
            self.ctx.bus.publish(
                f"tenant:{doc['tenant_id']}",
                {"type": "campaign", "campaign": {"id": doc["_id"], "state": "completed"}},
            )


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
