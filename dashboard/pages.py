"""HTML pages: login, the agent desktop, the supervisor wallboard, routing and recordings pages,
and the demo customer site."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from hub.auth import SESSION_COOKIE, AuthError, Principal, principal_from_token
from hub.context import AppContext, get_ctx
from hub.csrf import CSRF_COOKIE

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"


@router.get("/")
async def index() -> RedirectResponse:
    return RedirectResponse("/agent", status_code=303)


@router.get("/login")
async def login_page() -> FileResponse:
    return FileResponse(STATIC / "login.html", media_type="text/html")


@router.get("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


async def _session(request: Request, ctx: AppContext, pending_password: bool = False) -> Principal | None:
    """The signed-in user of the `hub_session` cookie, or None. A user who must replace an
    admin-set password is sent to the password form (a 303 raised, so every page that asks
    for the session is covered), which returns to this page after the change; only the form
    itself passes `pending_password=True`."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        principal = await principal_from_token(ctx, token)
    except AuthError:
        return None
    if principal.must_change_password and not pending_password:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/password?next={quote(here, safe='')}"})
    return principal


@router.get("/password")
async def password_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The own-password form every page sends a user to while `must_change_password` is set;
    `?next=` is where they return after the change (password.js allows same-site paths only)."""
    if await _session(request, ctx, pending_password=True) is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "password.html", media_type="text/html")


FORBIDDEN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Not allowed \u2013 Contact hub</title>
  <link rel="stylesheet" href="/static/app.css">
</head>
<body class="login-page">
  <main class="login-card" id="forbidden">
    <h1 class="login-title">Supervisors only</h1>
    <p class="login-subtitle">This page is for supervisors and admins.</p>
    <a class="btn btn-primary" href="/agent">Back to the agent desktop</a>
  </main>
</body>
</html>
"""


@router.get("/agent")
async def agent_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    return await _guarded_page(request, ctx, "agent.html", ())


async def _guarded_page(
    request: Request, ctx: AppContext, filename: str, roles: tuple[str, ...], refusal: str | None = None
) -> Response:
    """A static page for the given roles (any role when none are given): signed out goes to the
    login, other roles get a 403 (with `refusal` in place of the supervisors-only wording)."""
    principal = await _session(request, ctx)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if roles and not principal.has_any(*roles):
        page = FORBIDDEN_PAGE
        if refusal is not None:
            page = page.replace("Supervisors only", "Not for your role").replace(
                "This page is for supervisors and admins.", refusal
            )
        return HTMLResponse(page, status_code=403)
    return FileResponse(STATIC / filename, media_type="text/html")


async def _supervisor_page(request: Request, ctx: AppContext, filename: str) -> Response:
    """A static page for supervisors and admins."""
    return await _guarded_page(request, ctx, filename, ("supervisor", "admin"))


@router.get("/wallboard")
async def wallboard_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    return await _supervisor_page(request, ctx, "wallboard.html")


@router.get("/campaigns")
async def campaigns_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    return await _supervisor_page(request, ctx, "campaigns.html")


@router.get("/lists")
async def lists_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Contact lists of a campaign (?campaign=ID): import, progress, report, assignment."""
    return await _supervisor_page(request, ctx, "lists.html")


@router.get("/dnc")
async def dnc_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Do-not-contact lists: entries, filters, add, remove, bulk import, opt-outs."""
    return await _supervisor_page(request, ctx, "dnc.html")


@router.get("/approvals")
async def approvals_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Caller ids and audio prompts for outbound use: supervisors and admins submit, holders of
    approvals.review (e.g. the operator's service staff) approve or reject."""
    principal = await _session(request, ctx)
    if principal is not None and principal.can("approvals.review"):
        return FileResponse(STATIC / "approvals.html", media_type="text/html")
    return await _supervisor_page(request, ctx, "approvals.html")


@router.get("/telephony")
async def telephony_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Numbers, the Twilio account, SIP trunks and outbound routes (dashboard/telephony_api.py):
    holders of telephony.manage or flows.manage."""
    principal = await _session(request, ctx)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not (principal.can("telephony.manage") or principal.can("flows.manage")):
        page = FORBIDDEN_PAGE.replace("Supervisors only", "Not for your role").replace(
            "This page is for supervisors and admins.", "Telephony settings are for admins and technicians."
        )
        return HTMLResponse(page, status_code=403)
    return FileResponse(STATIC / "telephony.html", media_type="text/html")


@router.get("/questionnaires")
async def questionnaires_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The questionnaire designer: questions, options, branching, previews and statistics."""
    return await _supervisor_page(request, ctx, "questionnaires.html")


@router.get("/reports")
async def reports_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    return await _supervisor_page(request, ctx, "reports.html")


@router.get("/workforce")
async def workforce_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The Erlang C calculator and the day's required against actual staffing."""
    return await _supervisor_page(request, ctx, "workforce.html")


@router.get("/bot-analytics")
async def bot_analytics_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Containment, handoff reasons, intents, fallback rate and CSAT of the bot."""
    return await _supervisor_page(request, ctx, "bot_analytics.html")


@router.get("/routing")
async def routing_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Holders of agents.manage (supervisors, admins, technicians by default)."""
    principal = await _session(request, ctx)
    if principal is not None and principal.can("agents.manage"):
        return FileResponse(STATIC / "routing.html", media_type="text/html")
    return await _supervisor_page(request, ctx, "routing.html")


@router.get("/admin")
async def admin_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Tenants, users, roles and branding (dashboard/admin_api.py) for holders of their
    permissions, and everyone's own password change: the page shows the tabs the caller may use
    (the API checks each request)."""
    return await _guarded_page(request, ctx, "admin.html", ())


@router.get("/recordings")
async def recordings_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Supervisors and admins; agents too (the page shows only their own calls, if allowed)."""
    return await _guarded_page(
        request,
        ctx,
        "recordings.html",
        ("agent", "supervisor", "admin"),
        "Recordings are for agents, supervisors and admins.",
    )


@router.get("/quality")
async def quality_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Quality inspection: supervisors score contacts; agents see (and acknowledge) their own."""
    return await _guarded_page(request, ctx, "quality.html", ())


@router.get("/billing")
async def billing_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Balances, top-ups, rate tables and statements (dashboard/billing_api.py): holders of a
    billing permission (finance, admins, supervisors by default)."""
    principal = await _session(request, ctx)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not any(principal.can(p) for p in ("billing.view", "billing.topup", "billing.rates")):
        page = FORBIDDEN_PAGE.replace("Supervisors only", "Not for your role").replace(
            "This page is for supervisors and admins.", "Billing is for finance staff and admins."
        )
        return HTMLResponse(page, status_code=403)
    return FileResponse(STATIC / "billing.html", media_type="text/html")


@router.get("/audit")
async def audit_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The audit log (dashboard/audit_api.py): holders of audit.view."""
    principal = await _session(request, ctx)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    if not principal.can("audit.view"):
        page = FORBIDDEN_PAGE.replace("Supervisors only", "Not for your role").replace(
            "This page is for supervisors and admins.", "The audit log is for admins and supervisors."
        )
        return HTMLResponse(page, status_code=403)
    return FileResponse(STATIC / "audit.html", media_type="text/html")


@router.get("/kb/stats")
async def kb_stats_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """Knowledge-base usage statistics (dashboard/kb_stats_api.py): editors, supervisors, admins."""
    return await _guarded_page(
        request,
        ctx,
        "kb_stats.html",
        ("editor", "supervisor", "admin"),
        "Statistics are for editors, supervisors and admins.",
    )


@router.get("/kb")
async def kb_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The knowledge-base editor: editors and admins write; supervisors and agents read published."""
    return await _guarded_page(request, ctx, "kb.html", ())


@router.get("/demo")
async def demo_page(tenant: str = "demo") -> HTMLResponse:
    page = (STATIC / "demo.html").read_text()
    return HTMLResponse(
        page.replace('data-tenant="demo"', f'data-tenant="{html.escape(tenant, quote=True)}"')
    )
