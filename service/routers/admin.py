"""POST /admin/reload: rescan the model repository now (Bearer key from settings).

With no key configured the admin endpoints answer 403: they are disabled, never open.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Forbidden, Unauthorized
from service.executors import ADMIN_POOL, run_in
from service.schemas import ERRORS, ReloadResponse
from service.state import RepositoryDep, StateDep

# A security scheme (not a bare header) so /docs and OpenAPI clients know how to send the key.
bearer = HTTPBearer(auto_error=False, description="the admin key (VGGSVC_ADMIN_KEY)")


def require_admin(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    key = state.settings.admin_key
    if not key:
        raise Forbidden("admin endpoints are disabled; set VGGSVC_ADMIN_KEY to enable them")
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison, so the key cannot be guessed byte by byte from timings.
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise Unauthorized("missing or wrong admin key; send Authorization: Bearer <key>")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post(
    "/reload", response_model=ReloadResponse, responses={401: ERRORS[400], 403: ERRORS[400]}
)
async def reload(repository: RepositoryDep) -> dict[str, Any]:
    """Load any new model version now instead of at the next poll."""
    loaded = await run_in(ADMIN_POOL, repository.reload)  # one at a time, off the shared pool
    failures = {f"{name}:{v}": why for (name, v), why in repository.failures.copy().items()}
    return {"loaded": loaded, "failures": failures}
