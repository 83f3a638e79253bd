"""Connection hygiene against idle, slow and too many clients (service.connections and the
body deadline of service.middleware), on a real uvicorn server with a tiny app.

No TensorFlow here: the server runs `BodyLimitMiddleware` over an echo app with
`service.connections`' options and limits of a fraction of a second, so each
class of hostile client is seen to be cut off in about a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

import service.middleware
from service.connections import (
    connection_cap,
    quiet_accept_errors,
    raise_open_file_limit,
    uvicorn_options,
)
from service.middleware import BodyLimitMiddleware

HEADER_TIMEOUT_S = 0.5
KEEP_ALIVE_S = 0.4
BODY_TIMEOUT_S = 0.5
MAX_CONNECTIONS = 3


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers 200 with the number of body bytes it got."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"bytes": size}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    app = BodyLimitMiddleware(echo_app, max_bytes=1 << 20, body_timeout_s=BODY_TIMEOUT_S)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        **uvicorn_options("h11", HEADER_TIMEOUT_S, KEEP_ALIVE_S, MAX_CONNECTIONS),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    began = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - began


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length bytes of body), however it is split."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def request(body: bytes = b"", length: int | None = None) -> bytes:
    declared = len(body) if length is None else length
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + body
    )


def status_and_json(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def test_connection_that_never_sends_a_request_is_closed_at_the_header_timeout(
    server: tuple[str, int],
) -> None:
    with connect(server) as idle:
        data, waited = read_until_closed(idle)
    assert data == b"" and waited < HEADER_TIMEOUT_S + 2.0


def test_headers_trickled_slower_than_the_timeout_are_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as slow:
        slow.sendall(b"GET /echo HTTP/1.1\r\n")
        began = time.monotonic()
        closed = False
        while time.monotonic() - began < HEADER_TIMEOUT_S + 2.0:
            try:
                slow.sendall(b"X-Slow: 1\r\n")  # one header line every 0.1 s, never the end
            except OSError:
                closed = True
                break
            slow.settimeout(0.1)
            try:
                if slow.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
    assert closed


def test_idle_keep_alive_connection_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as client:
        client.sendall(request(b"abc"))
        assert status_and_json(read_response(client))[2] == {"bytes": 3}
        rest, waited = read_until_closed(client)
    assert rest == b"" and waited < KEEP_ALIVE_S + 2.0


def test_stalled_body_gets_408_json_and_the_connection_closes(server: tuple[str, int]) -> None:
    with connect(server) as stalled:
        stalled.sendall(request(b"x" * 100, length=1000))  # 900 bytes never come
        response, waited = read_until_closed(stalled)
    status, headers, body = status_and_json(response)
    assert status == 408 and body["status"] == 408 and "did not arrive" in body["error"]
    assert headers["connection"] == "close"
    assert BODY_TIMEOUT_S <= waited < BODY_TIMEOUT_S + 2.0


def test_connections_over_the_cap_get_503_json_with_retry_after(server: tuple[str, int]) -> None:
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # the server has accepted them
        with connect(server) as extra:
            extra.sendall(request(b"abc"))
            response, _ = read_until_closed(extra)
        status, headers, body = status_and_json(response)
        assert status == 503 and body["status"] == 503 and "connections" in body["error"]
        assert headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    # The idle ones are gone (closed here, or by the header timeout): service resumes.
    time.sleep(0.2)
    with connect(server) as client:
        client.sendall(request(b"abcd"))
        assert status_and_json(read_response(client))[2] == {"bytes": 4}


def test_idle_sockets_filling_the_cap_expire_so_new_requests_are_served(
    server: tuple[str, int],
) -> None:
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(HEADER_TIMEOUT_S + 0.5)  # left open by the client, closed by the server
        with connect(server) as client:
            client.sendall(request(b"ab"))
            assert status_and_json(read_response(client))[2] == {"bytes": 2}
    finally:
        for sock in idle:
            sock.close()


def test_abandoned_large_body_returns_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(service.middleware, "release_free_memory", lambda: trims.append(1))
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": b"x" * (2 << 20), "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = BodyLimitMiddleware(echo_app, max_bytes=10 << 20, body_timeout_s=5)
    scope = {"type": "http", "method": "POST", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert trims == [1] and sent == []  # the client left: nothing to answer, memory trimmed


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip("needs a finite hard limit of at least 512")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        before, after = raise_open_file_limit()
        assert (before, after) == (256, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, hard), hard))


def test_connection_cap_fits_under_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    assert connection_cap(1000, 20_000) == 1000
    with caplog.at_level(logging.WARNING):
        assert connection_cap(1000, 1024) == 1024 - 128
    assert "lowered to 896" in caplog.text


def test_accept_errors_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet_accept_errors(loop)
        handler = loop.get_exception_handler()
        assert handler is not None
        with caplog.at_level(logging.WARNING):
            for _ in range(500):
                handler(
                    loop,
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    },
                )
    finally:
        loop.close()
    assert len(caplog.records) == 1  # not one traceback per failed accept
    assert "cannot accept" in caplog.records[0].getMessage() and not caplog.records[0].exc_info
