"""What the routes share: settings, repository, predictor, metrics and the lifecycle flag.

Routes receive it through the typed dependency `StateDep`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from service.inference import Predictor
from service.metrics import Metrics
from service.repository import ModelRepository
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    repository: ModelRepository | None = None
    predictor: Predictor | None = None
    # Set on SIGTERM (before uvicorn stops listening) so /readyz answers 503 at once.
    shutting_down: threading.Event = field(default_factory=threading.Event)

    def not_ready_reasons(self) -> list[str]:
        reasons = []
        if self.shutting_down.is_set():
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
        reasons += [f"pinned version {pin} is not loaded" for pin in repo.missing_pins()]
        return reasons


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.service
    return state


StateDep = Annotated[AppState, Depends(get_state)]
