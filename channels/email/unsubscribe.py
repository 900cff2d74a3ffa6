"""The unsubscribe link of campaign mail: `GET/POST /u/{token}`, public.

GET shows a page with one button and changes nothing: mail scanners and link previews
fetch links, and must not unsubscribe anyone. POST unsubscribes: the page's button, or a
mail client's RFC 8058 one-click request (`List-Unsubscribe=One-Click`, no cookies, no
page). The opt-out takes effect at once through knowledge.dnc.opt_out (a black entry for
the address; its pending targets in every campaign of the tenant are skipped) and is
recorded on the customer's profile. The signed token (knowledge.dnc.unsubscribe_link)
names the tenant, the address and the campaign.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from bot.questionnaire import render_message_page
from hub.auth import AuthError
from hub.context import AppContext, get_ctx
from hub.ids import utcnow
from knowledge.dnc import UnsubscribeGrant, opt_out, read_unsubscribe_token

router = APIRouter(prefix="/u", include_in_schema=False)
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _page(title: str, message: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(render_message_page(title, message), status_code=status, headers=HEADERS)


def _grant(ctx: AppContext, token: str) -> UnsubscribeGrant | HTMLResponse:
    try:
        return read_unsubscribe_token(ctx.settings.secret, token)
    except AuthError:
        return _page("Link not valid", "This unsubscribe link is not valid. Please reply to our mail.", 404)


@router.get("/{token}")
async def unsubscribe_page(token: str, ctx: AppContext = Depends(get_ctx)) -> HTMLResponse:
    grant = _grant(ctx, token)
    if isinstance(grant, HTMLResponse):
        return grant
    address = html.escape(grant.address)
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Unsubscribe</title></head>"
        f"<body><h1>Unsubscribe</h1><p>Stop sending mail to <b>{address}</b>?</p>"
        f'<form method="post" action="/u/{html.escape(token)}">'
        '<button type="submit" id="unsubscribe">Unsubscribe</button></form></body></html>'
    )
    return HTMLResponse(body, headers=HEADERS)


@router.post("/{token}")
async def unsubscribe(token: str, ctx: AppContext = Depends(get_ctx)) -> HTMLResponse:
    """Both the page's button and RFC 8058 one-click land here; the body is not needed."""
    grant = _grant(ctx, token)
    if isinstance(grant, HTMLResponse):
        return grant
    tenant = await ctx.db.tenants.find_one({"_id": grant.tenant_id}, {"_id": 1})
    if tenant is None:
        return _page("Link not valid", "This unsubscribe link is no longer valid.", 404)
    await opt_out(ctx, grant.tenant_id, grant.address, "email_unsubscribe", campaign_id=grant.campaign_id)
    await ctx.db.customers.update_many(
        {"tenant_id": grant.tenant_id, "emails": grant.address},
        {"$set": {"email_opt_out": True, "email_opt_out_at": utcnow()}},
    )
    return _page("Unsubscribed", f"We will send no more campaign mail to {grant.address}.")
