"""The slow variant of the reliability suite: every hostile class against a real
`python -m service` process at once, then a normal request and the memory it kept.

Run: bash scripts/test.sh -m slow tests/service/test_service_hostile_slow.py
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.support.decode_bombs import gif_frame_bomb, jpeg_scan_bomb, webp_canvas_bomb
from bench.support.harness import export_tiny, rss_mb, running_service

pytestmark = pytest.mark.slow


def test_service_survives_every_hostile_class_at_once(tmp_path: Path, png: bytes) -> None:
    models = tmp_path / "models"
    export_tiny(models, "car_truck", size=32)
    flags = (
        "--header-timeout-s", "1", "--body-timeout-s", "2", "--max-connections", "60",
        "--max-request-bytes", "4000000", "--precision", "fp32", "--poll-interval-s", "0",
    )  # fmt: skip
    with running_service(models, *flags, log=tmp_path / "log") as (url, process):
        host, port = url.removeprefix("http://").split(":")
        for _ in range(5):
            assert httpx.post(f"{url}/predict", content=png, timeout=30).status_code == 200
        idle_rss = rss_mb(process.pid)
        idle = [socket.create_connection((host, int(port))) for _ in range(40)]
        stalled = []
        for _ in range(4):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n"
                + b"\0" * 2_900_000
            )
            stalled.append(sock)
        statuses: list[int] = []

        def bombs() -> None:
            for body in (jpeg_scan_bomb(6000, 5000), webp_canvas_bomb(6000), gif_frame_bomb()):
                for _ in range(3):
                    statuses.append(
                        httpx.post(f"{url}/predict", content=body, timeout=30).status_code
                    )

        bomber = threading.Thread(target=bombs)
        bomber.start()
        began = time.monotonic()
        normal = httpx.post(f"{url}/predict", content=png, timeout=30)
        assert normal.status_code == 200 and time.monotonic() - began < 10
        bomber.join(60)
        assert statuses and set(statuses) == {413}
        peak_rss = rss_mb(process.pid)
        for sock in stalled:
            sock.settimeout(10)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        time.sleep(1.5)  # the idle sockets have passed the header timeout
        for sock in idle:
            sock.settimeout(5)
            assert sock.recv(1) == b""  # closed by the server
            sock.close()
        assert httpx.post(f"{url}/predict", content=png, timeout=30).status_code == 200
        assert peak_rss < idle_rss * 1.3 + 50
        assert rss_mb(process.pid) < idle_rss + 50
        for sock in stalled:
            sock.close()
    assert b"Traceback" not in (tmp_path / "log").read_bytes()
