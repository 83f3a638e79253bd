"""`Client` (sync) and `AsyncClient`: predict, decode_predictions, TF Serving, health, models.

Both build the same requests (`_Requests`) and differ only in how they send them. Every
call but the health probes retries 503/429 answers as `RetryPolicy` allows; any other
error answer raises `ApiError` with the status and the service's message.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from client.retry import ApiError, RetryPolicy
from client.types import Health, Models, Prediction

Image = str | Path | bytes  # a file path, or the encoded image itself


def _read(image: Image) -> tuple[str, bytes]:
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    return path.name, path.read_bytes()


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    json: Any = None


def _images_request(path: str, images: Image | Sequence[Image], params: dict[str, Any]) -> _Request:
    items = [images] if isinstance(images, str | Path | bytes) else list(images)
    files = [("file", _read(image)) for image in items]
    return _Request("POST", path, {k: v for k, v in params.items() if v is not None}, files)


def _tfserving_request(instances: Sequence[Any], model: str, version: int | None) -> _Request:
    """Encoded images (bytes) become `{"b64": ...}`; anything else (pixel arrays) is sent as is."""
    rows = [
        {"b64": base64.b64encode(item).decode()} if isinstance(item, bytes) else item
        for item in instances
    ]
    where = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")
    return _Request("POST", f"{where}:predict", json={"instances": rows})


def _health(response: httpx.Response) -> Health:
    if response.status_code not in (200, 503):
        raise ApiError.from_response(response)
    body = response.json()
    status = body.get("status") or body.get("error", "")
    return Health(ok=response.status_code == 200, status=status, reasons=body.get("reasons", []))


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    raise ApiError.from_response(response)


class _Requests:
    def __init__(self, default_model: str | None, retry: RetryPolicy | None) -> None:
        self.default_model = default_model
        self.retry = retry or RetryPolicy()

    def _predict(
        self, images: Image | Sequence[Image], model: str | None, top_k: int | None
    ) -> _Request:
        # top_k: the best k classes (/decode_predictions); without it every class (/predict).
        path = "/predict" if top_k is None else "/decode_predictions"
        return _images_request(path, images, {"model": model or self.default_model, "top": top_k})

    def _tfserving(
        self, instances: Sequence[Any], model: str | None, version: int | None
    ) -> _Request:
        name = model or self.default_model
        if not name:
            raise ValueError("tfserving_predict needs a model name (or the client's default_model)")
        return _tfserving_request(instances, name, version)


class Client(_Requests):
    """Synchronous client. `with Client(url) as api: api.predict("car.jpg")`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        default_model: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,  # replaced by tests to count waits
    ) -> None:
        super().__init__(default_model, retry)
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)
        self._sleep = sleep
        self.attempts = 0  # requests sent, retries included (read by tests and logs)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: _Request, retry: bool = True) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            self.attempts += 1
            response = self._http.request(
                request.method,
                request.url,
                params=request.params,
                files=request.files,
                json=request.json,
            )
            wait = self.retry.wait_before_retry(response, attempt, waited) if retry else None
            if wait is None:
                return response
            self._sleep(wait)
            waited += wait

    def predict(
        self, images: Image | Sequence[Image], *, model: str | None = None, top_k: int | None = None
    ) -> Prediction:
        """Every class per image, best first (`top_k`: only the best k)."""
        return Prediction.model_validate(_checked(self._send(self._predict(images, model, top_k))))

    def decode_predictions(
        self, images: Image | Sequence[Image], *, top: int = 5, model: str | None = None
    ) -> Prediction:
        """Top `top` classes per image (for vgg16_imagenet: WordNet ids and names)."""
        return self.predict(images, model=model, top_k=top)

    def tfserving_predict(
        self, instances: Sequence[Any], *, model: str | None = None, version: int | None = None
    ) -> list[list[float]]:
        """TF Serving's `:predict`: probabilities per instance, in label order."""
        body = _checked(self._send(self._tfserving(instances, model, version)))
        return [list(map(float, row)) for row in body["predictions"]]

    def health(self) -> Health:
        return _health(self._send(_Request("GET", "/healthz"), retry=False))

    def ready(self) -> Health:
        """`/readyz`: `ok` False (with the reasons) while loading, draining or missing a model."""
        return _health(self._send(_Request("GET", "/readyz"), retry=False))

    def models(self) -> Models:
        return Models.model_validate(_checked(self._send(_Request("GET", "/models"))))


class AsyncClient(_Requests):
    """The same calls as `Client`, awaitable: `async with AsyncClient(url) as api: ...`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        default_model: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(default_model, retry)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._sleep = sleep
        self.attempts = 0

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: _Request, retry: bool = True) -> httpx.Response:
        waited, attempt = 0.0, 0
        while True:
            attempt += 1
            self.attempts += 1
            response = await self._http.request(
                request.method,
                request.url,
                params=request.params,
                files=request.files,
                json=request.json,
            )
            wait = self.retry.wait_before_retry(response, attempt, waited) if retry else None
            if wait is None:
                return response
            await self._sleep(wait)
            waited += wait

    async def predict(
        self, images: Image | Sequence[Image], *, model: str | None = None, top_k: int | None = None
    ) -> Prediction:
        response = await self._send(self._predict(images, model, top_k))
        return Prediction.model_validate(_checked(response))

    async def decode_predictions(
        self, images: Image | Sequence[Image], *, top: int = 5, model: str | None = None
    ) -> Prediction:
        return await self.predict(images, model=model, top_k=top)

    async def tfserving_predict(
        self, instances: Sequence[Any], *, model: str | None = None, version: int | None = None
    ) -> list[list[float]]:
        body = _checked(await self._send(self._tfserving(instances, model, version)))
        return [list(map(float, row)) for row in body["predictions"]]

    async def health(self) -> Health:
        return _health(await self._send(_Request("GET", "/healthz"), retry=False))

    async def ready(self) -> Health:
        return _health(await self._send(_Request("GET", "/readyz"), retry=False))

    async def models(self) -> Models:
        return Models.model_validate(_checked(await self._send(_Request("GET", "/models"))))
