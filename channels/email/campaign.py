"""Campaign mail: what the dialer hands the email channel for one target of an email campaign.

The dialer (routing/dialer.py) decides who is mailed and when; this module turns that into
a mail: the tenant's address as sender, the body as text and HTML, and an unsubscribe link
both in the body and as RFC 8058 one-click headers (List-Unsubscribe / List-Unsubscribe-Post)
so mail clients offer their own button. The link lands on channels/email/unsubscribe.py.
"""

from __future__ import annotations

import html

from bot.questionnaire_store import answer_link
from channels.email.compose import text_to_html
from channels.email.config import address_of
from channels.email.relay import send_email
from hub.contacts import append_message
from hub.context import AppContext
from hub.db import Doc
from knowledge.dnc import unsubscribe_link

FOOTER = "You receive this because you are on our mailing list. Unsubscribe: {link}"


class NoSenderAddress(RuntimeError):
    """The tenant has no email address configured: campaign mail cannot be sent."""


async def send_campaign_mail(
    ctx: AppContext,
    *,
    tenant_id: str,
    campaign_id: str,
    to: str,
    subject: str,
    body: str,
    key: str,
    contact: Doc,
) -> Doc:
    """Queue one campaign mail for a target (once per `key`) and store it in `contact`; the
    stored message. A campaign with a questionnaire links the respondent's form."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"email": 1})
    ours = address_of(tenant or {})
    if ours is None:
        raise NoSenderAddress("the tenant has no email address (tenants.email.address)")
    if contact.get("questionnaire_id"):
        form = answer_link(ctx, tenant_id, contact["_id"], str(contact["questionnaire_id"]))
        body = f"{body.rstrip()}\n\nPlease answer our short questionnaire: {form}"
    link = unsubscribe_link(ctx, tenant_id, to, campaign_id)
    text = f"{body.rstrip()}\n\n--\n{FOOTER.format(link=link)}\n"
    footer = html.escape(FOOTER.format(link="")).rstrip()
    rich = text_to_html(body.rstrip()).replace(
        "</body>",
        f'<hr><p style="font-size:smaller">{footer} <a href="{html.escape(link)}">{html.escape(link)}</a></p>'
        "</body>",
    )
    row = await send_email(
        ctx,
        tenant_id=tenant_id,
        from_=ours,
        to=to,
        subject=subject,
        body=text,
        key=key,
        contact_id=contact["_id"],
        html=rich,
        headers={"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message_id = row["meta"]["message_id"]
    message, _ = await append_message(
        ctx,
        contact,
        "bot",
        body.rstrip(),
        client_id=key,
        author_name="Campaign",
        # outbox_key: already queued, the email relay's message hook must not send it again
        data={"outbox_key": key, "campaign_id": campaign_id, "subject": subject, "message_id": message_id},
    )
    # the customer's reply names this Message-ID: channels/email/inbound.py threads it here
    await ctx.db.messages.update_one({"_id": message["_id"]}, {"$set": {"email_message_id": message_id}})
    return message
