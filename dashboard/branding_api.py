"""Public branding by tenant slug: the login page shows it before anyone signs in.

Only what a login screen shows anyway (the name and the logo) is served here; a slug
that matches no tenant looks like a tenant without branding.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response

from hub.branding import effective_branding, public_branding, read_logo
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.tenancy import get_tenant_by_slug

router = APIRouter(prefix="/branding")


async def _tenant(ctx: AppContext, slug: str) -> Doc:
    tenant = await get_tenant_by_slug(ctx, slug[:60]) if slug.strip() else None
    if tenant is None:
        raise HTTPException(404, "no such tenant")
    return tenant


@router.get("/{slug}")
async def tenant_branding(slug: str, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """An unknown slug answers like an unbranded tenant: the sign-in page asks as the user
    types, and this must not tell which organisations exist."""
    tenant = await get_tenant_by_slug(ctx, slug[:60]) if slug.strip() else None
    if tenant is None:
        return public_branding(slug, {})
    return public_branding(tenant["slug"], await effective_branding(ctx, tenant))


@router.get("/{slug}/logo")
async def tenant_logo(slug: str, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The effective logo (own or inherited); cacheable briefly, the URL changes with the logo."""
    tenant = await _tenant(ctx, slug)
    effective = await effective_branding(ctx, tenant)
    found = await read_logo(ctx, effective["logo_file_id"]) if effective["logo_file_id"] else None
    if found is None:
        raise HTTPException(404, "no logo")
    data, content_type = found
    return Response(data, media_type=content_type, headers={"Cache-Control": "public, max-age=300"})
