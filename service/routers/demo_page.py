"""GET /: the browser demo page (service/static/index.html, written by the packaging work)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from service.http_errors import error_response

router = APIRouter(tags=["demo"])
INDEX = Path(__file__).resolve().parent.parent / "static" / "index.html"


@router.get("/", include_in_schema=False, response_model=None)
async def index() -> Response:
    if not INDEX.is_file():
        return error_response(404, "the demo page is not installed (service/static/index.html)")
    return FileResponse(INDEX, media_type="text/html")
