"""GET /models: what is loaded (the browser page fills its model picker from it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.schemas import ModelsResponse
from service.state import StateDep

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse)
async def list_models(state: StateDep) -> dict[str, Any]:
    repo = state.repository
    models = []
    for name in repo.names() if repo is not None else []:
        assert repo is not None
        latest = repo.get(name)
        models.append(
            {
                "name": name,
                "version": latest.version,
                "versions": [m.version for m in repo.versions(name)],
                "labels": latest.labels,
                "image_size": latest.image_size,
                "device": latest.device,
                "base_weights": latest.metadata.get("base_weights"),
            }
        )
    return {"default_model": state.settings.default_model, "models": models}
