"""Start-up: a busy port fails before anything loads; a signal while models load stops now.

The process tests run `python -m service` for real: what is checked is the exit
code, the log, and that the next model version never started loading.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from service.__main__ import Server
from service.drain import Drain
from service.startup import EXIT_CANNOT_LISTEN, StartupStop
from tests.service.conftest import publish_copy

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from service.__main__ import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def test_startup_busy_port_exits_3_before_tensorflow(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "--models-dir", str(tmp_path), "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == EXIT_CANNOT_LISTEN == 3, done.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "tensorflow imported: False" in done.stderr


class Exits:
    """Stands in for os._exit: records the code instead of ending the test process."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.done.set()


@pytest.fixture
def exits() -> Exits:
    return Exits()


def test_startup_signal_waits_for_requests_in_flight_then_exits_0(exits: Exits) -> None:
    drain = Drain()
    drain.in_flight = 1
    stop = StartupStop(exits)
    stop.watch(lambda: True, drain, graceful_timeout_s=30)
    stop.stop(signal.SIGTERM)
    assert drain.started.is_set()  # /readyz: shutting down; new requests: 503
    assert not exits.done.wait(0.3)  # the request in flight is answered first
    drain.in_flight = 0
    assert exits.done.wait(5) and exits.codes == [0]


def test_startup_second_signal_exits_at_once(exits: Exits) -> None:
    drain = Drain()
    drain.in_flight = 1  # would hold the first signal's exit
    stop = StartupStop(exits)
    stop.watch(lambda: True, drain, graceful_timeout_s=30)
    stop.stop(signal.SIGINT)
    stop.stop(signal.SIGINT)
    assert exits.codes == [130]


def test_startup_server_signal_goes_to_start_up_only_while_models_load(exits: Exits) -> None:
    drain, loading = Drain(), [True]
    stop = StartupStop(exits)
    stop.watch(lambda: loading[0], drain, graceful_timeout_s=30)
    server = Server(uvicorn.Config(app=None), drain, 0.0, 30.0, stop)
    loading[0] = False
    server.handle_exit(signal.SIGTERM, None)  # loaded: the ordinary drain
    assert drain.started.is_set() and not exits.codes
    loading[0] = True
    server.handle_exit(signal.SIGTERM, None)  # while loading: stop now
    assert exits.done.wait(5) and exits.codes == [0]


def test_startup_sigint_while_models_load_stops_without_loading_the_next(
    model_store: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "car_truck").mkdir(parents=True)
    for version in (1, 2, 3):  # three versions to load: the signal comes during the first
        publish_copy(model_store, models, "car_truck", 1, version)
    log = tmp_path / "service.log"
    flags = ["--models-dir", str(models), "--port", "0", "--poll-interval-s", "0"]
    flags += ["--pinned-versions", "car_truck:1,car_truck:2"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", *flags],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while "reading the SavedModel" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text(errors="replace")
    assert code == 130, text
    after = text.split("during start-up: stopping", 1)[1]
    assert "exiting" in after and "reading the SavedModel" not in after, text
    assert "serving" not in text  # the first load never completed
