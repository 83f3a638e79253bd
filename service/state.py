"""What the routes share: settings, repository, predictor, metrics and the lifecycle flag.

Routes receive them through typed dependencies: `StateDep`, `SettingsDep`,
`RepositoryDep` and `PredictorDep` (the last two answer 503 while the app is
still starting, before the lifespan has built them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from modelstore.layout import list_models
from modelstore.runtime import Runtime
from service import default_model as defaults
from service.drain import Drain
from service.errors import NotReady
from service.explain import Explainer
from service.predictor import Predictor
from service.repository import ModelRepository
from service.settings import Settings
from service.telemetry import Metrics


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    runtime: Runtime
    repository: ModelRepository | None = None
    predictor: Predictor | None = None
    explainer: Explainer | None = None  # Grad-CAM heatmaps, on their own bounded thread
    # Started on SIGTERM: /readyz answers 503 and new requests are refused until the
    # requests in flight are answered; only then does uvicorn stop listening.
    drain: Drain = field(default_factory=Drain)

    def not_ready_reasons(self) -> list[str]:
        reasons = []
        if self.drain.started.is_set():
            reasons.append("the service is shutting down")
        repo = self.repository
        if repo is None or not repo.scanned:
            reasons.append("models are still loading")
            return reasons
        names = repo.names()
        if not names:
            reasons.append(f"no valid model version found in {repo.models_dir}")
        default = self.settings.default_model
        if default and default not in names:
            reasons.append(f"the default model {default!r} is not loaded")
        choice = defaults.missing_choice(default, list_models(repo.models_dir))
        if choice:
            reasons.append(choice)
        reasons += [f"pinned version {pin} is not loaded" for pin in repo.missing_pins()]
        return reasons

    def default_model(self) -> str | None:
        """The model of a request that names none (service.default_model), or None."""
        served = self.repository.names() if self.repository else []
        return defaults.default_model(self.settings.default_model, served)

    def model_for(self, requested: str | None) -> str:
        """The model a request is for; NotReady before the first scan decides the default."""
        repo = self.repository
        if not requested and not self.settings.default_model and not (repo and repo.scanned):
            raise NotReady("models are still loading; retry shortly (see /readyz)")
        served = repo.names() if repo else []
        return defaults.model_for_request(requested, self.settings.default_model, served)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.service
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_repository(state: StateDep) -> ModelRepository:
    if state.repository is None:
        raise NotReady("the service is starting; retry shortly (see /readyz)")
    return state.repository


def get_predictor(state: StateDep) -> Predictor:
    if state.predictor is None:
        raise NotReady("the service is starting; retry shortly (see /readyz)")
    return state.predictor


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
