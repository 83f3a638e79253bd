"""Assemble the FastAPI app: settings, devices, repository, routers, errors, middleware.

`create_app(settings)` is the factory (`uvicorn --factory service.app:create_app`);
`python -m service` is the usual way to run it. The lifespan loads every model
(warmed up) before the app reports ready, starts the directory poller, and on
shutdown lets every batcher finish its queue before the models are released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from modelstore.runtime import Runtime, configure_runtime
from service.connections import quiet_accept_errors
from service.drain import DrainMiddleware
from service.explain import Explainer
from service.http_errors import UnexpectedErrorMiddleware, install_error_handlers
from service.middleware import BodyLimitMiddleware, MetricsMiddleware
from service.model_version import BatchingConfig
from service.predictor import Predictor
from service.repository import ModelRepository
from service.routers import admin, demo_page, explain, health, models, oip, predict, tfserving
from service.settings import Settings
from service.state import AppState
from service.telemetry import Metrics

log = logging.getLogger(__name__)


def build_repository(settings: Settings, runtime: Runtime, metrics: Metrics) -> ModelRepository:
    batching = BatchingConfig(
        buckets=settings.buckets,
        max_delay_s=settings.max_batch_delay_ms / 1000.0,
        max_queue=settings.max_queue,
    )
    return ModelRepository(
        settings.models_dir, runtime, batching, settings.pins, metrics, settings.share_base
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Before any model loads: devices, then precision (PrecisionUnavailableError for an
    # explicit precision this machine cannot run).
    runtime = configure_runtime(
        settings.precision,
        settings.gpu_memory_limit_mb,
        settings.tf_intra_op_threads,
        settings.tf_inter_op_threads,
    )
    state = AppState(settings=settings, metrics=Metrics(), runtime=runtime)
    state.metrics.queue_capacity.set(settings.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        quiet_accept_errors(asyncio.get_running_loop())
        if not settings.models_dir.is_dir():
            log.warning("models directory %s does not exist; nothing to serve", settings.models_dir)
        repo = build_repository(settings, runtime, state.metrics)
        state.repository = repo
        state.predictor = Predictor(repo, settings, state.metrics)
        state.explainer = Explainer(state.predictor)

        async def first_load() -> None:
            # In a thread: the event loop keeps answering /healthz and /readyz meanwhile.
            await asyncio.to_thread(repo.reload)
            loaded = {name: [m.version for m in repo.versions(name)] for name in repo.names()}
            log.info("serving %s from %s", loaded or "no model", settings.models_dir)
            repo.start_polling(settings.poll_interval_s)

        # uvicorn opens the port only when start-up returns, so loading in the background
        # is what lets liveness probes see the process while VGG16 loads and warms up.
        loading = asyncio.create_task(first_load()) if settings.load_in_background else None
        if loading is None:
            await first_load()
        try:
            yield
        finally:
            state.drain.started.set()
            if loading is not None:
                await loading  # a reload thread cannot be interrupted: let it finish
            await asyncio.to_thread(repo.close, settings.graceful_timeout_s)
            state.explainer.close()
            state.predictor.close()
            log.info("service stopped")

    # /docs and /redoc serve Swagger UI / ReDoc from files in the fastapi-offline package:
    # FastAPI's default pages load them from a CDN, and show a blank page offline.
    app = FastAPIOffline(
        title="vgg-transfer-service",
        summary="VGG16 transfer-learning classifiers: predict, decode_predictions, TF Serving.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    for router in (
        predict.router,
        explain.router,  # before tfserving: its GET /v1/models/{name} would take ":explain"
        tfserving.router,
        oip.router,
        models.router,
        health.router,
        admin.router,
        demo_page.router,
    ):
        app.include_router(router)
    # Last added runs first: metrics see every answer, including the 413 of the body cap
    # and the drain gate's 503. The error middleware wraps the body cap too: buffering a
    # body of up to max_request_bytes is where a MemoryError is likeliest (503, not a
    # plain-text 500 from Starlette).
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(DrainMiddleware, drain=state.drain)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(
        MetricsMiddleware,
        metrics=state.metrics,
        default_model=state.default_model,
        known_models=lambda: state.repository.names() if state.repository else (),
    )
    return app
