"""The HTTP side of scripts/container-test.sh: a client on the host, talking to the container.

    python scripts/container_probe.py wait-ready URL [--timeout S]
    python scripts/container_probe.py predict URL [--model NAME] [--version N] [--images K]
    python scripts/container_probe.py wait-version URL NAME VERSION [--timeout S]
    python scripts/container_probe.py stop-during-request URL CONTAINER [--images K]

Each prints one line of what it saw and exits 0, or says what went wrong and exits 1. The
pictures are real JPEGs drawn with Pillow here, on the host, as a client would send them.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from PIL import Image, ImageDraw


class ProbeFailed(Exception):
    """What the container did differently from what the test expects."""


def jpeg(seed: int, size: int = 224) -> bytes:
    """A small scene (sky, road, a box with two wheels), JPEG-encoded."""
    img = Image.new("RGB", (size, size), (120 + seed % 100, 170, 230))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, size * 0.7, size, size), fill=(90, 90, 90))
    left = size * (0.1 + (seed % 5) * 0.05)
    draw.rectangle((left, size * 0.45, left + size * 0.5, size * 0.68), fill=(200, 30, 30))
    for x in (left + size * 0.1, left + size * 0.4):
        draw.ellipse((x - 12, size * 0.62, x + 12, size * 0.74), fill=(20, 20, 20))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def _files(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"scene-{i}.jpg", jpeg(i), "image/jpeg")) for i in range(count)]


def predict(url: str, model: str | None, images: int, timeout_s: float = 120) -> dict[str, Any]:
    params = {"model": model} if model else {}
    response = httpx.post(f"{url}/predict", files=_files(images), params=params, timeout=timeout_s)
    if response.status_code != 200:
        raise ProbeFailed(f"POST /predict: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    predictions = body["predictions"]
    if len(predictions) != images or not all(p["classes"] for p in predictions):
        raise ProbeFailed(f"POST /predict: {images} images sent, answer {body}")
    return body


def wait_ready(url: str, timeout_s: float) -> str:
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/readyz", timeout=5)
            if response.status_code == 200:
                return "ready"
            last = f"{response.status_code} {response.json().get('reasons')}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    raise ProbeFailed(f"/readyz not ready after {timeout_s:.0f} s: {last}")


def wait_version(url: str, name: str, version: int, timeout_s: float) -> float:
    """Seconds until GET /models lists `name` serving `version`."""
    start = time.monotonic()
    serving: dict[str, int] = {}
    while time.monotonic() - start < timeout_s:
        models = httpx.get(f"{url}/models", timeout=5).json()["models"]
        serving = {m["name"]: m["version"] for m in models}
        if serving.get(name) == version:
            return time.monotonic() - start
        time.sleep(0.5)
    raise ProbeFailed(f"{name} version {version} not served after {timeout_s:.0f} s: {serving}")


def stop_during_request(url: str, container: str, images: int) -> str:
    """`docker stop` while a request is being answered: it must finish (200), exit code 0."""
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["body"] = predict(url, None, images)
        except Exception as exc:  # reported below, in the main thread
            outcome["error"] = exc
        outcome["done"] = time.monotonic()

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(0.5)  # the request is sent and in the model's queue by now
    if "done" in outcome:
        raise ProbeFailed("the request finished before `docker stop`: send more images")
    stop_at = time.monotonic()
    # No -t: the container's own --stop-timeout applies, as it would for a deployer.
    stop = subprocess.run(["docker", "stop", container], capture_output=True, text=True)
    stopped = time.monotonic() - stop_at
    thread.join(120)
    if stop.returncode != 0:
        raise ProbeFailed(f"docker stop: {stop.stderr.strip()}")
    if "error" in outcome:
        raise ProbeFailed(f"the request in flight during the stop failed: {outcome['error']}")
    code = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.ExitCode}}", container],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if code != "0":
        raise ProbeFailed(f"the container exited with {code} after docker stop, not 0")
    answered = outcome["done"] - stop_at
    return (
        f"in-flight request of {images} images answered 200 {answered:.1f} s after "
        f"`docker stop` began; container stopped in {stopped:.1f} s with exit code 0"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wait-ready")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("predict")
    p.add_argument("url")
    p.add_argument("--model")
    p.add_argument("--version", type=int, help="the version that must answer")
    p.add_argument("--images", type=int, default=1)
    p = sub.add_parser("wait-version")
    p.add_argument("url")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.add_argument("--timeout", type=float, default=120)
    p = sub.add_parser("stop-during-request")
    p.add_argument("url")
    p.add_argument("container")
    p.add_argument("--images", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        if args.command == "wait-ready":
            print(wait_ready(args.url, args.timeout))
        elif args.command == "predict":
            body = predict(args.url, args.model, args.images)
            if args.version is not None and body["version"] != args.version:
                raise ProbeFailed(f"answered by version {body['version']}, not {args.version}")
            best = body["predictions"][0]["classes"][0]
            print(f"{body['model']} v{body['version']}: {best['label']} {best['score']:.3f}")
        elif args.command == "wait-version":
            seconds = wait_version(args.url, args.name, args.version, args.timeout)
            print(f"{args.name} v{args.version} served {seconds:.1f} s after publishing")
        else:
            print(stop_during_request(args.url, args.container, args.images))
    except (ProbeFailed, httpx.HTTPError) as exc:
        print(f"error: {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
