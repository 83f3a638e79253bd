"""GET /models: what serves, and what is still loading (the browser page reads both)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from service.schemas import ModelsResponse
from service.state import RepositoryDep, StateDep
from service.unknown_outputs import scorer_summary

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse)
async def list_models(repository: RepositoryDep, state: StateDep) -> dict[str, Any]:
    models = []
    for name in repository.names():
        latest = repository.get(name)
        models.append(
            {
                "name": name,
                "version": latest.version,
                "versions": [m.version for m in repository.versions(name)],
                "labels": latest.labels,
                "image_size": latest.image_size,
                "device": latest.device,
                "precision": latest.precision,
                "base_weights": latest.metadata.base_weights.model_dump(),
                "served": latest.served,
                "serving": [
                    {
                        "version": m.version,
                        "served": m.served,
                        "base": m.base,
                        "whole_reason": m.whole_reason,
                    }
                    for m in repository.versions(name)
                ],
                "unknown_scorer": scorer_summary(latest.model),
            }
        )
    return {
        "default_model": state.default_model(),
        "models": models,
        "loading": [dataclasses.asdict(s) for s in repository.load_states()],
        "scanned": repository.scanned,
        "shared_bases": repository.bases.describe() if repository.bases is not None else [],
    }
