"""HTML pages: login, the agent desktop and the demo customer site."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from hub.auth import SESSION_COOKIE, AuthError, principal_from_token
from hub.context import AppContext, get_ctx

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
    return response


@router.get("/agent")
async def agent_page(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    try:
        if not token:
            raise AuthError("not signed in")
        await principal_from_token(ctx, token)
    except AuthError:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "agent.html", media_type="text/html")


@router.get("/demo")
async def demo_page(tenant: str = "demo") -> HTMLResponse:
    page = (STATIC / "demo.html").read_text()
    return HTMLResponse(
        page.replace('data-tenant="demo"', f'data-tenant="{html.escape(tenant, quote=True)}"')
    )
