"""Start-up of the service process: the port first, and a prompt stop while models load.

- `listen(host, port)` binds the listening socket before TensorFlow is imported or
  any model loads: a port in use (or an address this machine does not have) fails
  in a fraction of a second with exit code EXIT_CANNOT_LISTEN and one line saying
  what to do, instead of after the whole warm-up. uvicorn then serves on that socket.
- `StartupStop`: until the first scan of the model directory has loaded every
  model, SIGINT/SIGTERM stop the process within a second (after any request in
  flight, at most the graceful timeout); a second signal stops it at once. A
  SavedModel load cannot be interrupted from Python, so the process leaves with
  `os._exit` rather than waiting for it (and then loading the next version).
  Once the models are loaded, signals start the usual drain (service.__main__).

Exit codes: 0 after SIGTERM (an orchestrator's ordinary stop), 130 after SIGINT.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from service.drain import Drain

log = logging.getLogger("service")

EXIT_CANNOT_LISTEN = 3
HANDLED = (signal.SIGINT, signal.SIGTERM)


def exit_code(sig: int) -> int:
    return 0 if sig == signal.SIGTERM else 128 + int(sig)


def listen(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn (it calls listen); exits EXIT_CANNOT_LISTEN if it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restarted server may bind while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = {
            errno.EADDRINUSE: "another process listens there: stop it, or choose another "
            "--port / VGGSVC_PORT",
            errno.EACCES: "ports below 1024 need privileges: choose a port >= 1024",
            errno.EADDRNOTAVAIL: "this machine has no such address: check --host / VGGSVC_HOST",
        }.get(exc.errno or 0, "check --host and --port")
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}; {hint}", file=sys.stderr)
        raise SystemExit(EXIT_CANNOT_LISTEN) from exc
    return sock


class StartupStop:
    """Signals before the models are loaded: stop promptly instead of finishing the load."""

    def __init__(self, exit_process: Callable[[int], object] = os._exit) -> None:
        self._exit = exit_process  # os._exit: a SavedModel load cannot be interrupted
        self._pending: Callable[[], bool] = lambda: True
        self._drain: Drain | None = None
        self._timeout_s = 0.0
        self._stopping = False

    def install(self) -> None:
        """From now until uvicorn takes the signals over (TensorFlow's import, the app)."""
        for sig in HANDLED:
            signal.signal(sig, self._on_signal)

    def watch(self, pending: Callable[[], bool], drain: Drain, graceful_timeout_s: float) -> None:
        """`pending()`: True while models are still loading; requests in `drain` finish first."""
        self._pending, self._drain, self._timeout_s = pending, drain, graceful_timeout_s

    def pending(self) -> bool:
        return self._stopping or self._pending()

    def stop(self, sig: int) -> None:
        """Called by the server's signal handler while `pending()`."""
        self._on_signal(sig, None)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._stopping:  # a second signal: at once
            self._leave(sig, "second signal")
            return
        self._stopping = True
        if self._drain is not None:
            self._drain.started.set()  # /readyz: shutting down; new requests: 503
        log.info("signal %d during start-up: stopping (models were still loading)", sig)
        threading.Thread(target=self._after_requests, args=(sig,), daemon=True).start()

    def _after_requests(self, sig: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        while self._drain is not None and self._drain.in_flight > 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self._leave(sig, "stopped during start-up")

    def _leave(self, sig: int, why: str) -> None:
        log.info("%s (signal %d): exiting", why, sig)
        logging.shutdown()  # flush the log handlers: os._exit skips everything else
        sys.stderr.flush()
        self._exit(exit_code(sig))
