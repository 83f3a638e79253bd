"""The demo page at GET /, driven in a real headless Chromium against the real service.

Starts `python -m service` on a free port with a tiny car_truck model (random 32 px base,
made here), uploads a generated PNG through the page's file input and checks that the
classes appear as labelled bars with scores. Needs Debian's chromium (`apt-get install -y
chromium`); skipped, with that reason, only when it is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import encode
from tests.packaging.deploy_files import REPO

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
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True
    )
if importlib.util.find_spec("service.__main__") is None:
    pytest.skip("the service package is not in this checkout yet", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_tiny_model(models_dir: Path) -> None:
    from training.export import export_version
    from training.model import build_base, build_classifier, build_head

    base, weights = build_base("none", 32)
    head = build_head(base.output_shape[1:], len(LABELS), width=8)
    export_version(
        build_classifier(base, head, 32), models_dir, "car_truck", LABELS, 32, weights.to_dict()
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the service was not ready within 180 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("demo-page")
    models_dir = root / "models"
    _make_tiny_model(models_dir)
    port = _free_port()
    log = root / "service.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable, "-m", "service", "--models-dir", str(models_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
