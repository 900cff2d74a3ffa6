"""Serves the embeddable widget script."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter()
WIDGET = Path(__file__).parent / "static" / "widget.js"


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> FileResponse:
    # Any site may embed the widget; the websocket itself checks the tenant.
    return FileResponse(
        WIDGET,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )
