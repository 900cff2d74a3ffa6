"""Historical reports over HTTP: JSON for the /reports page, CSV and Excel files, templates.

Supervisors and admins of the tenant only; everything is scoped to the caller's tenant
(an agent id or campaign id of another tenant simply matches no facts).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from reports.export import (
    MAX_TEMPLATE_BYTES,
    XLSX_TYPE,
    TemplateError,
    delete_template,
    historical_file,
    save_template,
    template_for,
)
from reports.facts import zone
from reports.historical import ReportError, ReportQuery, historical

router = APIRouter(prefix="/api/reports")
SUPERVISOR = require_roles("supervisor", "admin")


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be YYYY-MM-DD") from exc


@router.get("/historical", response_model=None)
async def historical_report(
    by: str = "none",
    interval: str = "day",
    from_: str | None = Query(default=None, alias="from"),
    to: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    channel: str | None = None,
    campaign: str | None = None,
    questionnaire: str | None = None,
    fmt: str = Query(default="json", alias="format"),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any] | Response:
    """The measures by `by` and `interval` over the local days from..to (default: today)."""
    start, end = _day(from_, "from"), _day(to, "to")
    tenant = await ctx.db.tenants.find_one({"_id": principal.tenant_id}, {"timezone": 1}) or {}
    today = datetime.now(zone(tenant.get("timezone"))).date()  # the tenant's today
    query = ReportQuery(
        by=by,
        interval=interval,
        start=start or end or today,
        end=end or start or today,
        queue=queue,
        agent=agent,
        channel=channel,
        campaign=campaign,
        questionnaire=questionnaire,
    )
    try:
        if fmt == "json":
            return await historical(ctx, principal.tenant_id, query)
        if fmt not in ("csv", "xlsx"):
            raise HTTPException(422, "format must be json, csv or xlsx")
        content, media_type, filename = await historical_file(ctx, principal.tenant_id, query, fmt)
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from exc
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.put("/templates/{report}")
async def upload_template(
    report: str, request: Request, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """The tenant's own .xlsx for `report` ("historical", or "historical_<by>" for one
    dimension); the body is the file itself. Its sheet "data" receives the table."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_TEMPLATE_BYTES:
            raise HTTPException(413, "templates are at most 5 MB")
    try:
        return await save_template(ctx, principal.tenant_id, report, bytes(data), principal.user_id)
    except TemplateError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/templates/{report}")
async def download_template(
    report: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> Response:
    data = await template_for(ctx, principal.tenant_id, report)
    if data is None:
        raise HTTPException(404, "no template of yours for this report")
    return Response(
        data, media_type=XLSX_TYPE, headers={"Content-Disposition": f'attachment; filename="{report}.xlsx"'}
    )


@router.delete("/templates/{report}")
async def remove_template(
    report: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, bool]:
    """Back to the built-in template."""
    if not await delete_template(ctx, principal.tenant_id, report):
        raise HTTPException(404, "no template of yours for this report")
    return {"deleted": True}
