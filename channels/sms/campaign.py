"""Campaign texts: what the dialer hands the SMS channel for one target of an SMS campaign.

The dialer (routing/dialer.py) decides who is texted and when, opens the contact and
claims the target; this module writes the text into that contact and queues it in the
outbox, both keyed by the campaign and target so a retry after a crash sends nothing
twice. A campaign with a questionnaire sends its first question with the text and the
conversation goes on in bot/questionnaire_turns.py as the customer replies.
"""

from __future__ import annotations

from bot import questionnaire_turns
from channels.sms.relay import send_sms
from channels.sms.segments import count_segments
from hub.contacts import append_message
from hub.context import AppContext
from hub.db import Doc


async def send_campaign_text(
    ctx: AppContext,
    *,
    tenant_id: str,
    campaign_id: str,
    to: str,
    from_: str,
    body: str,
    key: str,
    contact: Doc,
) -> Doc:
    """Queue the campaign's text for one target and store it in `contact`; the stored message."""
    text = body.strip()
    if contact.get("questionnaire_id"):
        question = await questionnaire_turns.start(ctx, contact)
        if question:
            text = f"{text}\n\n{question}" if text else question
    await send_sms(
        ctx, tenant_id=tenant_id, to=to, from_=from_, body=text, key=key, contact_id=contact["_id"]
    )
    info = count_segments(text)
    message, _ = await append_message(
        ctx,
        contact,
        "bot",
        text,
        client_id=key,
        author_name="Campaign",
        # outbox_key: already queued, the SMS relay's message hook must not send it again
        data={
            "outbox_key": key,
            "campaign_id": campaign_id,
            "segments": info.segments,
            "encoding": info.encoding,
        },
    )
    return message
