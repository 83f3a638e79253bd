"""GET /healthz (alive), GET /readyz (models loaded and warmed), GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from modelstore.runtime import gpu_memory_in_use
from service.executors import PROBE_POOL, run_in
from service.http_errors import error_response
from service.schemas import HealthResponse, ReadyError
from service.state import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": ReadyError}})
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when every configured model is loaded and warmed up, and not shutting down."""
    reasons = state.not_ready_reasons()
    if reasons:
        return error_response(
            503, "not ready: " + "; ".join(reasons), {"Retry-After": "5"}, reasons=reasons
        )
    return JSONResponse({"status": "ready", "reasons": []})


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus text format."""
    gpu = await run_in(PROBE_POOL, gpu_memory_in_use)  # never behind model or admin work
    body = state.metrics.render(not state.not_ready_reasons(), gpu)
    return Response(body, media_type=state.metrics.content_type)
