"""Which model answers a request that names none.

`default_model` set (VGGSVC_DEFAULT_MODEL / --default-model): that one. Unset:
the only model served, so a freshly trained model answers without any setting;
with several models and none chosen, a request must name its model (400 saying
so) and /readyz reports the missing choice. No FastAPI here.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.errors import BadRequest, ModelNotFound

SETTING = "VGGSVC_DEFAULT_MODEL / --default-model"


def default_model(configured: str | None, served: Iterable[str]) -> str | None:
    """The configured default, else the one served model; None when there is no choice."""
    if configured:
        return configured
    names = sorted(served)
    return names[0] if len(names) == 1 else None


def model_for_request(requested: str | None, configured: str | None, served: list[str]) -> str:
    """The model a request is for: the one it names, else the default; a clear error if none."""
    if requested:
        return requested
    chosen = default_model(configured, served)
    if chosen is not None:
        return chosen
    if not served:
        raise ModelNotFound("no model is loaded, so there is no default model; see /readyz")
    raise BadRequest(
        f"several models are served ({', '.join(sorted(served))}) and no default is set: "
        f"name one with ?model=NAME, or set {SETTING}"
    )


def missing_choice(configured: str | None, on_disk: list[str]) -> str | None:
    """The /readyz reason when several models are on disk and no default is set."""
    if configured or len(on_disk) < 2:
        return None
    return (
        f"several models ({', '.join(on_disk)}) and no default model: set {SETTING}, "
        "or name the model in every request"
    )
