"""STOP / START / HELP: carrier-mandated keywords, handled by the hub and never sent to the bot.

STOP black-lists the number (`knowledge.dnc.opt_out`, source "sms_stop") and sets
`sms_opt_out` on the customer profile; START lifts both (from an opted-out number only:
otherwise "yes" is an ordinary reply, e.g. to an SMS questionnaire); HELP answers `HELP_TEXT`.
"""

from __future__ import annotations

from hub.context import AppContext
from hub.ids import utcnow
from knowledge.dnc import opt_out, remove_entry

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})
HELP_TEXT = "Reply STOP to stop messages, START to receive them again. Write your question to reach us."
START_TEXT = "You will receive our messages again. Reply STOP to stop."


def keyword_of(body: str) -> str | None:
    """ "stop" / "start" / "help" when the whole message is such a keyword (any case, punctuation)."""
    word = body.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


async def set_opt_out(
    ctx: AppContext, tenant_id: str, customer_id: str, number: str, opted_out: bool
) -> None:
    """Record the keyword on the DNC list and the profile."""
    if opted_out:
        await opt_out(ctx, tenant_id, number, "sms_stop")
    else:
        entries = ctx.db.dnc_entries.find(
            {"tenant_id": tenant_id, "number": number, "list": "black", "source": "sms_stop"}, {"_id": 1}
        )
        async for entry in entries:
            await remove_entry(ctx, tenant_id, entry["_id"])
    await ctx.db.customers.update_one(
        {"_id": customer_id, "tenant_id": tenant_id},
        {"$set": {"sms_opt_out": opted_out, "sms_opt_out_at": utcnow() if opted_out else None}},
    )
