"""The demo page at GET /, driven in a real headless Chromium against the real service.

Starts `python -m service` on a free port with a tiny car_truck model (random 32 px base,
made here), uploads a generated PNG through the page's file input and checks that the
classes appear as labelled bars with scores. Needs Debian's chromium (`apt-get install -y
chromium`, which the test command does when run as root). Skipped, with that reason, when it
is missing on a developer's machine; under CI=true a missing Chromium fails the run.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.support.harness import export_tiny, free_port, running_service, wait_until
from tests.conftest import encode

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LABELS = ["car", "truck"]
SCORE_TEXT = re.compile(r"^[01]\.\d{3} \(\d{1,3}\.\d%\)$")

if not Path(CHROMIUM).is_file():
    reason = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("demo-page")
    export_tiny(root / "models", "car_truck", LABELS, width=8, head="flatten")
    with running_service(root / "models", log=root / "service.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, service_url: str) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.requested = []  # every URL the page asks for: it must use no outside assets
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(service_url + "/")
    # The model picker is filled from GET /models.
    page.wait_for_function("!document.getElementById('model-select').disabled")
    yield page
    context.close()


def test_demo_page_upload_shows_labelled_scores(page: Any, service_url: str) -> None:
    assert page.input_value("[data-testid=model-select]") == "car_truck"
    picture = encode(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    page.get_by_test_id("file-input").set_input_files(
        {"name": "vehicle.png", "mimeType": "image/png", "buffer": picture}
    )
    # Either the bars or an error in words: fail with the page's own message, not a timeout.
    page.wait_for_selector("#prediction-bars [data-testid=class-bar], #error:not([hidden])")
    assert page.get_by_test_id("error").is_hidden(), page.get_by_test_id("error").inner_text()
    bars = page.locator("#prediction-bars [data-testid=class-bar]")
    assert bars.count() == len(LABELS)
    labels = page.locator("#prediction-bars [data-testid=class-label]").all_inner_texts()
    assert sorted(labels) == LABELS
    scores = page.locator("#prediction-bars [data-testid=class-score]").all_inner_texts()
    assert all(SCORE_TEXT.match(text) for text in scores), scores
    values = [float(bars.nth(i).get_attribute("data-score")) for i in range(bars.count())]
    assert values == sorted(values, reverse=True)  # best first
    assert sum(values) == pytest.approx(1.0, abs=1e-3)
    assert "car_truck v1" in page.get_by_test_id("results-model").inner_text()
    # Only the service itself (and the preview's local blob: URL) is ever asked for anything.
    own = (service_url + "/", f"blob:{service_url}/", "data:")
    assert all(url.startswith(own) for url in page.requested), page.requested


def test_demo_page_dropped_image_is_classified(page: Any) -> None:
    picture = encode(np.full((32, 32, 3), 200, dtype=np.uint8))
    # What a browser hands the page when a file is dropped on it: a DataTransfer with the file.
    dropped = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"});
            transfer.items.add(file);
            return transfer;
        }""",
        list(picture),
    )
    page.dispatch_event("[data-testid=drop-zone]", "drop", {"dataTransfer": dropped})
    page.wait_for_selector("#prediction-bars [data-testid=class-bar], #error:not([hidden])")
    assert page.get_by_test_id("error").is_hidden(), page.get_by_test_id("error").inner_text()
    labels = page.locator("#prediction-bars [data-testid=class-label]").all_inner_texts()
    assert sorted(labels) == LABELS
    assert page.get_by_test_id("preview").evaluate("img => img.naturalWidth") == 32


def test_demo_page_non_image_shows_error_in_words(page: Any) -> None:
    page.get_by_test_id("file-input").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture at all"}
    )
    error = page.get_by_test_id("error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert text.startswith("Prediction failed: 415"), text
    assert len(text) > len("Prediction failed: 415 Unsupported Media Type: ")
    assert page.get_by_test_id("results").is_hidden()


def test_demo_page_dropped_non_image_shows_api_error_not_broken_image(page: Any) -> None:
    dropped = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["not a picture at all"], "notes.txt", {type: "text/plain"}));
            return transfer;
        }"""
    )
    page.dispatch_event("[data-testid=drop-zone]", "drop", {"dataTransfer": dropped})
    error = page.get_by_test_id("error")
    error.wait_for(state="visible")
    # The API's own JSON message, word for word, after the status.
    answer = page.evaluate(
        """async () => {
            const data = new FormData();
            data.append("file", new File(["not a picture at all"], "notes.txt"));
            return (await (await fetch("predict?model=car_truck", {method: "POST", body: data})).json()).error;
        }"""
    )
    assert (
        answer and error.inner_text() == f"Prediction failed: 415 Unsupported Media Type: {answer}"
    )
    assert page.get_by_test_id("preview").is_hidden(), "a non-image must not show a broken image"
    assert page.get_by_test_id("results").is_hidden()


@pytest.fixture
def loading_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, threading.Event]]:
    """(url, release): the app served by uvicorn in a thread, its warm-up at batch 4 held
    until `release` is set, so the page sees a model that is still warming up."""
    import uvicorn

    from modelstore.loader import PublishedModel
    from modelstore.split_loader import PublishedHead
    from service.app import create_app
    from service.settings import Settings

    export_tiny(tmp_path / "models", "car_truck", LABELS, width=8, head="flatten")
    release = threading.Event()
    original = PublishedModel.predict
    original_head = PublishedHead.predict_packed

    def gated(self: PublishedModel, pictures: np.ndarray) -> np.ndarray:
        if len(pictures) == 4:
            release.wait(60)
        return original(self, pictures)

    def gated_head(self: PublishedHead, features: np.ndarray, mirrored: Any) -> np.ndarray:
        if len(features) == 4:
            release.wait(60)
        return original_head(self, features, mirrored)

    # The export has a head/, so by default it warms up as a head on the shared base;
    # gate both warm-ups so the page sees batch 4 held whichever way it is served.
    monkeypatch.setattr(PublishedModel, "predict", gated)
    monkeypatch.setattr(PublishedHead, "predict_packed", gated_head)
    settings = Settings(
        models_dir=tmp_path / "models", batch_sizes=[1, 4], max_batch_size=4, poll_interval_s=0
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout_s=60), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", release
    finally:
        release.set()
        server.should_exit = True
        thread.join(60)


def test_demo_page_waits_and_polls_while_model_warms_up(
    browser: Any, loading_service: tuple[str, threading.Event]
) -> None:
    url, release = loading_service
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    try:
        page.goto(url + "/")
        status = page.get_by_test_id("status")
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('warm-up batch 4')"
        )
        assert status.inner_text().startswith("Loading car_truck v1 (warm-up batch 4, 2 of 2)")
        assert page.get_by_test_id("error").is_hidden()
        assert "Train one" not in page.locator("main").inner_text()
        assert page.get_by_test_id("model-select").is_disabled()
        # Still polling: more GET /models while the warm-up is held.
        polls = sum(u == f"{url}/models" for u in asked)
        page.wait_for_function(f"performance.getEntriesByName('{url}/models').length > {polls}")
        release.set()
        page.wait_for_function("!document.getElementById('model-select').disabled")
        assert page.input_value("[data-testid=model-select]") == "car_truck"
        assert status.inner_text() == "Choose or drop an image."
        assert page.get_by_test_id("error").is_hidden()
    finally:
        context.close()


def test_docs_predict_sends_a_picked_file_without_resolver_error(
    browser: Any, service_url: str
) -> None:
    """/docs: /predict opens without "Resolver error", offers a file picker, and sends it."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(service_url + "/docs")
        operation = page.locator("#operations-predict-predict_predict_post")
        operation.locator(".opblock-summary").click()
        operation.get_by_text("Try it out").click()
        picture = encode(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
        operation.locator("input[type=file]").first.set_input_files(
            {"name": "vehicle.png", "mimeType": "image/png", "buffer": picture}
        )
        operation.get_by_text("Execute").click()
        status = operation.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip().startswith("200"), operation.inner_text()
        assert "car_truck" in operation.locator(".live-responses-table").inner_text()
        assert "Resolver error" not in page.content()
    finally:
        context.close()
