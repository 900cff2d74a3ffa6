"""SMS and email campaigns: one message per target, under the same dial-time rules as calls.

Each tick of a running SMS or email campaign takes up to TEXTS_PER_TICK due targets, asks
routing/compliance.py about each (lists, the recipient's window — an address's window is
the campaign's fallback time zone —, the frequency cap across campaigns), and for each one
allowed:

1. claims the target (pending -> dialing);
2. finds or creates the customer and opens an outbound contact for the target (the
   customer's timeline shows the message; a reply threads into it);
3. hands it to the channel through the sender the hub wires in (channels/sms/campaign.py,
   channels/email/campaign.py; routing never imports a channel), which stores the message
   and queues it in the outbox, both keyed by campaign and target;
4. records the attempt (a delivered message counts as a contact for the frequency cap),
   closes the contact unless a questionnaire conversation is running, and marks the target
   done.

Every step is idempotent, so a target left `dialing` by a crash is taken again after
RECLAIM_AFTER and ends up with one contact, one message and one send.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from hub.contacts import open_contact, update_contact
from hub.context import AppContext
from hub.db import Doc, update_then_read
from knowledge.customers import InvalidContactDetail, find_or_create_customer
from routing.campaigns import Campaign
from routing.compliance import CallingRules, Decision, may_dial_many

log = logging.getLogger(__name__)

TEXT_TYPES = ("sms", "email")
TEXTS_PER_TICK = 50  # messages queued per campaign per second
RECLAIM_AFTER = timedelta(minutes=2)  # a target still `dialing` this long was left by a crash

SendText = Callable[..., Awaitable[Any]]  # channels/sms/campaign.py send_campaign_text
SendMail = Callable[..., Awaitable[Any]]  # channels/email/campaign.py send_campaign_mail
HoldBack = Callable[[Doc, Decision], Awaitable[None]]
Complete = Callable[[Doc, str], Awaitable[None]]


class TextCampaigns:
    def __init__(
        self,
        ctx: AppContext,
        send_text: SendText | None,
        send_mail: SendMail | None,
        hold_back: HoldBack,
        complete: Complete,
    ) -> None:
        self.ctx = ctx
        self.send_text = send_text
        self.send_mail = send_mail
        self.hold_back = hold_back
        self.complete = complete

    def ready(self, campaign: Campaign) -> bool:
        """Whether this campaign can send at all (a channel wired in, its text, a sender)."""
        if campaign.type == "sms":
            return (
                self.send_text is not None
                and bool(campaign.caller_id)
                and bool(campaign.sms_text or campaign.questionnaire_id)
            )
        return self.send_mail is not None and bool(campaign.email_subject and campaign.email_body)

    async def tick(self, doc: Doc, campaign: Campaign, now: datetime) -> int:
        """Queue the campaign's due messages; how many were queued."""
        if not self.ready(campaign):
            return 0
        targets = await self._due(campaign, now)
        if not targets:
            if not await self.ctx.db.campaign_targets.find_one(
                {"campaign_id": campaign.id, "status": {"$in": ["pending", "dialing"]}}, {"_id": 1}
            ):
                await self.complete(doc, "every target was sent its message")
            return 0
        rules = CallingRules.of_campaign(doc)
        fresh = [t["number"] for t in targets if t["status"] == "pending"]
        decisions = await may_dial_many(self.ctx, campaign.tenant_id, rules, fresh, now)
        sent = 0
        for target in targets:
            # a reclaimed target was judged when first claimed: finishing it is the same send
            decision = decisions.get(target["number"]) if target["status"] == "pending" else None
            if decision is not None and not decision.allowed:
                await self.hold_back(target, decision)
                continue
            try:
                sent += await self._send(campaign, target, now)
            except Exception:
                # one bad target (an address the channel refuses) must not stop the campaign
                log.exception("campaign %s: target %s could not be sent", campaign.id, target["_id"])
                await self.ctx.db.campaign_targets.update_one(
                    {"_id": target["_id"], "status": "dialing"},
                    {"$set": {"status": "failed", "last_outcome": "failed"}},
                )
        return sent

    async def _due(self, campaign: Campaign, now: datetime) -> list[Doc]:
        query: Doc = {
            "campaign_id": campaign.id,
            "$or": [
                {"status": "pending", "next_attempt_at": None},
                {"status": "pending", "next_attempt_at": {"$lte": now}},
                {"status": "dialing", "dialing_since": {"$lte": now - RECLAIM_AFTER}},
            ],
        }
        cursor = self.ctx.db.campaign_targets.find(query).sort([("line", 1), ("_id", 1)])
        return [t async for t in cursor.limit(TEXTS_PER_TICK)]

    async def _send(self, campaign: Campaign, target: Doc, now: datetime) -> int:
        claimed = await update_then_read(
            self.ctx.db.campaign_targets,
            {"_id": target["_id"], "status": target["status"], "dialing_since": target.get("dialing_since")},
            {"$set": {"status": "dialing", "dialing_since": now}, "$inc": {"attempts": 1}},
        )
        if claimed is None:
            return 0  # another hub took it
        contact = await self._contact(campaign, target)
        key = f"campaign:{campaign.id}:{target['_id']}"
        if campaign.type == "sms":
            assert self.send_text is not None and campaign.caller_id
            await self.send_text(
                self.ctx,
                tenant_id=campaign.tenant_id,
                campaign_id=campaign.id,
                to=target["number"],
                from_=campaign.caller_id,
                body=fill(campaign.sms_text or "", target),
                key=key,
                contact=contact,
            )
        else:
            assert self.send_mail is not None
            await self.send_mail(
                self.ctx,
                tenant_id=campaign.tenant_id,
                campaign_id=campaign.id,
                to=target["number"],
                subject=fill(campaign.email_subject or "", target),
                body=fill(campaign.email_body or "", target),
                key=key,
                contact=contact,
            )
        await self.ctx.db.dial_attempts.update_one(
            {"_id": f"{key}:attempt"},
            {
                "$setOnInsert": {
                    "tenant_id": campaign.tenant_id,
                    "campaign_id": campaign.id,
                    "target_id": target["_id"],
                    "contact_id": contact["_id"],
                    "number": target["number"],
                    "channel": campaign.type,
                    "placed_at": now,
                    "answered_at": now,  # a delivered message is a contact (the frequency cap)
                    "ended_at": now,
                    "outcome": "sent",
                }
            },
            upsert=True,
        )
        if not contact.get("questionnaire_id") or campaign.type == "email":
            await update_contact(
                self.ctx, contact["_id"], {"status": "closed", "closed_at": now, "disposition": "sent"}
            )
        await self.ctx.db.campaign_targets.update_one(
            {"_id": target["_id"], "status": "dialing"},
            {"$set": {"status": "done", "last_outcome": "sent", "contact_id": contact["_id"]}},
        )
        return 1

    async def _contact(self, campaign: Campaign, target: Doc) -> Doc:
        """The target's outbound contact, opened once (a retried send finds it again)."""
        found = await self.ctx.db.contacts.find_one({"campaign_id": campaign.id, "target_id": target["_id"]})
        if found is not None:
            return found
        address = target["number"]
        try:
            if campaign.type == "email":
                customer = await find_or_create_customer(
                    self.ctx, campaign.tenant_id, email=address, name=target.get("name")
                )
            else:
                customer = await find_or_create_customer(
                    self.ctx, campaign.tenant_id, phone=address, name=target.get("name")
                )
        except InvalidContactDetail:
            customer = None
        extra: Doc = {
            "direction": "outbound",
            "campaign_id": campaign.id,
            "target_id": target["_id"],
            "questionnaire_id": campaign.questionnaire_id,
        }
        if campaign.type == "email":
            extra.update(customer_email=address, email_subject=fill(campaign.email_subject or "", target))
        else:
            extra.update(customer_number=address, sms_number=campaign.caller_id)
        return await open_contact(
            self.ctx,
            campaign.tenant_id,
            campaign.type,
            customer_id=customer["_id"] if customer else None,
            extra=extra,
        )


def fill(template: str, target: Doc) -> str:
    """The campaign text with `{name}` and the target's list fields (by column name, also in
    lower case: `{plan}` for a column "Plan"); unknown names stay as written."""
    fields = {str(k): str(v) for k, v in (target.get("fields") or {}).items()}
    values = {**{k.lower(): v for k, v in fields.items()}, **fields, "name": target.get("name") or ""}

    class Keep(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    try:
        return template.format_map(Keep(values))
    except (ValueError, IndexError):  # a stray brace in the text: send it as written
        return template
