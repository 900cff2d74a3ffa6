"""First simple assignment: offer a queued contact to the longest-idle agent with its skill.

Every transition is a conditional update on the contact's status, so two racing
callers can never both succeed; a slot reserved for an offer that loses the race
is given back at once. A sweep re-runs assignment and expires unanswered offers,
so contacts left waiting (no agent free, a hub restart) are picked up later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.contacts import append_message, get_contact, messages_after, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from routing.presence import release_slot, repair_slots, reserve_slot, set_status, take_slot

log = logging.getLogger(__name__)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


INTENT_SKILLS = {
    "check_balance": "billing",
    "pay_bill": "billing",
    "report_outage": "technical",
}
DEFAULT_SKILL = "general"


def skill_for_intent(intent: str | None) -> str:
    return INTENT_SKILLS.get(intent or "", DEFAULT_SKILL)


class RoutingError(Exception):
    """A request that does not fit the contact's current state (shown as 409)."""


class Router:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._last_repair = 0.0

    # -- queueing -------------------------------------------------------------------------
    async def enqueue(self, contact_id: str, skill: str, reason: str) -> Doc | None:
        """bot -> queued; idempotent (a contact already with a human stays where it is)."""
        contact = await update_contact(
            self.ctx,
            contact_id,
            {"status": "queued", "skill": skill, "reason": reason, "queued_at": utcnow()},
            expect={"status": "bot"},
        )
        if contact is None:
            return await get_contact(self.ctx, contact_id)
        await self.try_assign(contact)
        return await get_contact(self.ctx, contact_id)

    async def try_assign(self, contact: Doc) -> bool:
        """Find a free agent for this contact's skill and offer them the longest-waiting
        contact they can take (first come, first served: a sweep that reached `contact`
        must not jump the queue when a slot frees up under it). True if an offer was made."""
        if contact["status"] != "queued":
            return False
        agent = await reserve_slot(
            self.ctx, contact["tenant_id"], contact["skill"], self._recently_declined(contact)
        )
        if agent is None:
            return False
        offered = await self._offer_longest_waiting(agent)
        if offered is None:
            await release_slot(self.ctx, agent["_id"])
            return False
        view = await self.offer_view(offered)
        self.ctx.bus.publish(f"user:{agent['_id']}", {"type": "offer", "offer": view})
        log.info("offered contact %s to %s", offered["_id"], agent["name"])
        return True

    async def _offer_longest_waiting(self, agent: Doc) -> Doc | None:
        """Offer the reserved slot to the oldest queued contact this agent may take."""
        expires_at = utcnow() + timedelta(seconds=self.ctx.settings.offer_timeout_s)
        offer = {"agent_id": agent["_id"], "agent_name": agent["name"], "expires_at": expires_at}
        query = {
            "tenant_id": agent["tenant_id"],
            "status": "queued",
            "skill": {"$in": agent.get("skills", [])},
        }
        for _ in range(3):  # other routers may take the head meanwhile: look again
            async for candidate in self.ctx.db.contacts.find(query).sort("queued_at", 1).limit(20):
                if agent["_id"] in self._recently_declined(candidate):
                    continue
                offered = await update_contact(
                    self.ctx,
                    candidate["_id"],
                    {"status": "offered", "offer": offer},
                    expect={"status": "queued"},
                )
                if offered is not None:
                    return offered
        return None

    def _recently_declined(self, contact: Doc) -> list[str]:
        """Agents who declined or missed this contact lately are skipped; after the
        cool-down they may get it again, so a contact is never stranded because every
        agent once declined it."""
        cutoff = utcnow() - timedelta(seconds=self.ctx.settings.decline_cooldown_s)
        return [d["agent_id"] for d in contact.get("declines", []) if _aware(d["at"]) > cutoff]

    async def assign_waiting(self, tenant_id: str | None = None) -> int:
        """Offer queued contacts while agents are free, oldest first."""
        query: Doc = {"status": "queued"}
        if tenant_id:
            query["tenant_id"] = tenant_id
        assigned = 0
        exhausted: set[tuple[str, str]] = set()  # (tenant, skill) with no free agent this sweep
        async for contact in self.ctx.db.contacts.find(query).sort("queued_at", 1).limit(500):
            key = (contact["tenant_id"], contact.get("skill") or "")
            if key in exhausted:
                continue
            if await self.try_assign(contact):
                assigned += 1
            else:
                exhausted.add(key)
        return assigned

    # -- agent actions ----------------------------------------------------------------------
    async def accept(self, contact_id: str, agent_id: str, agent_name: str, tenant_id: str) -> Doc:
        contact = await update_contact(
            self.ctx,
            contact_id,
            {
                "status": "assigned",
                "agent_id": agent_id,
                "agent_name": agent_name,
                "offer": None,
                "assigned_at": utcnow(),
            },
            expect={"status": "offered", "offer.agent_id": agent_id, "tenant_id": tenant_id},
        )
        if contact is None:
            raise RoutingError("this offer is no longer available")
        await append_message(self.ctx, contact, "system", f"{agent_name} joined the conversation.")
        await self.ctx.db.agents.update_one({"_id": agent_id}, {"$set": {"last_contact_at": utcnow()}})
        return contact

    async def decline(self, contact_id: str, agent_id: str, tenant_id: str) -> None:
        if not await self._withdraw_offer(contact_id, agent_id, tenant_id):
            raise RoutingError("this offer is no longer available")

    async def _withdraw_offer(self, contact_id: str, agent_id: str, tenant_id: str | None = None) -> bool:
        expect: Doc = {"status": "offered", "offer.agent_id": agent_id}
        if tenant_id:
            expect["tenant_id"] = tenant_id
        contact = await update_contact(
            self.ctx,
            contact_id,
            {"status": "queued", "offer": None},
            expect=expect,
            extra_update={"$push": {"declines": {"agent_id": agent_id, "at": utcnow()}}},
        )
        if contact is None:
            return False
        await release_slot(self.ctx, agent_id)
        self.ctx.bus.publish(f"user:{agent_id}", {"type": "offer_revoked", "contact_id": contact_id})
        await self.try_assign(contact)
        return True

    async def wrap_up(
        self, contact_id: str, agent_id: str, tenant_id: str, disposition: str, note: str
    ) -> Doc:
        tenant = await self.ctx.db.tenants.find_one({"_id": tenant_id})
        codes = {d["code"] for d in (tenant or {}).get("dispositions", [])}
        if disposition not in codes:
            raise ValueError(f"unknown disposition {disposition!r}")
        contact = await update_contact(
            self.ctx,
            contact_id,
            {
                "status": "closed",
                "disposition": disposition,
                "note": note.strip()[:2000],
                "closed_at": utcnow(),
            },
            expect={"status": "assigned", "agent_id": agent_id, "tenant_id": tenant_id},
        )
        if contact is None:
            raise RoutingError("this conversation is not assigned to you")
        await append_message(self.ctx, contact, "system", "The agent closed this conversation. Thank you!")
        await release_slot(self.ctx, agent_id)
        await self.assign_waiting(tenant_id)
        return contact

    async def abandon(self, contact_id: str, reason: str) -> Doc | None:
        """The customer left before an agent took the contact: close it, free any offer."""
        now = utcnow()
        contact = await get_contact(self.ctx, contact_id)
        if contact is None or contact["status"] not in ("bot", "queued", "offered"):
            return contact
        closed = await update_contact(
            self.ctx,
            contact_id,
            {"status": "closed", "closed_at": now, "disposition": "abandoned", "note": reason, "offer": None},
            expect={"status": contact["status"], "updated_at": contact["updated_at"]},
        )
        if closed is None:  # it moved on meanwhile (e.g. accepted): look again
            return await self.abandon(contact_id, reason)
        offer = contact.get("offer")
        if contact["status"] == "offered" and offer:
            await release_slot(self.ctx, offer["agent_id"])
            revoked = {"type": "offer_revoked", "contact_id": contact_id}
            self.ctx.bus.publish(f"user:{offer['agent_id']}", revoked)
        return closed

    async def assign_to(self, contact_id: str, agent_id: str, tenant_id: str, *, by: str) -> Doc:
        """A waiting contact goes straight to a given agent: an agent picking up a contact
        from any queue, or a supervisor assigning one. The agent's capacity still holds."""
        contact = await get_contact(self.ctx, contact_id, tenant_id)
        if contact is None or contact["status"] not in ("queued", "offered"):
            raise RoutingError("this contact is not waiting")
        agent = await take_slot(self.ctx, tenant_id, agent_id)
        if agent is None:
            raise RoutingError("that agent has no free slot")
        previous = (contact.get("offer") or {}).get("agent_id")
        assigned = await update_contact(
            self.ctx,
            contact_id,
            {
                "status": "assigned",
                "agent_id": agent_id,
                "agent_name": agent["name"],
                "offer": None,
                "assigned_at": utcnow(),
                "assigned_by": by,
            },
            expect={"status": contact["status"], "updated_at": contact["updated_at"]},
        )
        if assigned is None:
            await release_slot(self.ctx, agent_id)
            raise RoutingError("this contact changed meanwhile; try again")
        if contact["status"] == "offered" and previous:
            await release_slot(self.ctx, previous)
            self.ctx.bus.publish(f"user:{previous}", {"type": "offer_revoked", "contact_id": contact_id})
        await append_message(self.ctx, assigned, "system", f"{agent['name']} joined the conversation.")
        return assigned

    async def move(self, contact_id: str, tenant_id: str, skill: str) -> Doc:
        """A supervisor moves a waiting contact to another skill group; it keeps its place in time."""
        contact = await get_contact(self.ctx, contact_id, tenant_id)
        if contact is None or contact["status"] not in ("queued", "offered"):
            raise RoutingError("this contact is not waiting")
        if contact["status"] == "offered":
            await self._withdraw_offer(contact_id, contact["offer"]["agent_id"], tenant_id)
        moved = await update_contact(self.ctx, contact_id, {"skill": skill}, expect={"status": "queued"})
        if moved is None:
            raise RoutingError("this contact changed meanwhile; try again")
        await self.try_assign(moved)
        return await get_contact(self.ctx, contact_id) or moved

    async def set_presence(self, agent_id: str, status: str) -> Doc | None:
        agent = await set_status(self.ctx, agent_id, status)
        if agent is not None and status == "available":
            await self.assign_waiting(agent["tenant_id"])
        return agent

    # -- time-driven ------------------------------------------------------------------------
    async def expire_offers(self) -> int:
        """Ring-no-answer: an unanswered offer moves on and the agent is set away."""
        expired = 0
        async for contact in self.ctx.db.contacts.find(
            {"status": "offered", "offer.expires_at": {"$lt": utcnow()}}
        ):
            agent_id = contact["offer"]["agent_id"]
            if await self._withdraw_offer(contact["_id"], agent_id):
                expired += 1
                await set_status(self.ctx, agent_id, "away")
        return expired

    async def sweep(self) -> None:
        await self.expire_offers()
        now = asyncio.get_running_loop().time()
        if now - self._last_repair >= self.ctx.settings.slot_repair_s:
            self._last_repair = now
            if await repair_slots(self.ctx, self.ctx.settings.slot_repair_s):
                log.warning("repaired agent slot counters left by an interrupted assignment")
        await self.assign_waiting()

    async def run(self, interval_s: float = 1.0) -> None:
        """Background loop; errors (e.g. a database restart) are logged and retried."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("routing sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()

    # -- views ------------------------------------------------------------------------------
    async def offer_view(self, contact: Doc) -> dict[str, Any]:
        """What the agent sees in an offer: who, why, and the last thing the customer said."""
        customer_name = None
        if contact.get("customer_id"):
            customer = await self.ctx.db.customers.find_one({"_id": contact["customer_id"]}, {"name": 1})
            customer_name = (customer or {}).get("name")
        preview = ""
        for message in reversed(await messages_after(self.ctx, contact["_id"])):
            if message["author"] == "visitor":
                preview = message["text"][:200]
                break
        offer = contact.get("offer") or {}
        return {
            "contact_id": contact["_id"],
            "channel": contact["channel"],
            "skill": contact.get("skill"),
            "reason": contact.get("reason"),
            "intent": contact.get("intent"),
            "customer_name": customer_name,
            "preview": preview,
            "expires_at": iso(offer.get("expires_at")),
        }
