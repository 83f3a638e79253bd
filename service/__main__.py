"""Run the inference service.

    python -m service --models-dir models --host 127.0.0.1 --port 8000
    vggsvc --models-dir models        # the same, installed by `pip install -e .`

Every flag overrides its `VGGSVC_*` environment variable (see
docs/configuration.md). SIGTERM/SIGINT start a drain: /readyz answers 503 at
once and keeps answering, new requests get 503 + Retry-After, requests in flight
and queued batches finish (up to --graceful-timeout-s, after at least
--drain-delay-s), and only then does the server stop listening and exit with
status 0. A second signal stops at once. While the models are still loading, a
signal stops the process within a second instead (service.startup), and the port
is bound before anything loads: one in use exits 3 at once.

Exit codes: 0 stopped by SIGTERM; 1 unexpected failure; 2 invalid settings; 3 cannot
listen on --host:--port (in use, privileged, no such address); 130 stopped by SIGINT
during start-up.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import ValidationError

from modelstore.tf_quiet import import_tensorflow
from service.connections import raise_open_file_limit, uvicorn_options
from service.drain import Drain
from service.logs import configure_logging
from service.settings import ENV_PREFIX, NOT_FLAGS, OTHER_PROGRAMS_VARIABLES, Settings
from service.startup import StartupStop, listen

log = logging.getLogger("service")


def build_parser() -> argparse.ArgumentParser:
    """One flag per Settings field (but NOT_FLAGS), with its description and default."""
    parser = argparse.ArgumentParser(
        # The command the user typed: the installed `vggsvc`, or python -m service.
        prog="vggsvc" if Path(sys.argv[0]).name == "vggsvc" else "python -m service",
        description=(__doc__ or "").split("\n")[0],
        epilog="Every flag overrides its VGGSVC_* environment variable. Installed as "
        "`vggsvc` too (pip install -e .).",
    )
    for name, info in Settings.model_fields.items():
        if name in NOT_FLAGS:
            continue
        env = ENV_PREFIX + name.upper()
        default = info.get_default(call_default_factory=True)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = f"{info.description} (default: {shown}; env {env})"
        flag = "--" + name.replace("_", "-")
        if info.annotation is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            # Passed on as text: Settings parses and validates flags and variables alike.
            parser.add_argument(flag, default=None, metavar=name.upper(), help=help_text)
    return parser


def _setting_names(name: str) -> str:
    """How a user sets `name`: its environment variable and, for most, its flag."""
    env = ENV_PREFIX + name.upper()
    return env if name in NOT_FLAGS else f"{env} / --{name.replace('_', '-')}"


def warn_unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A typo in a VGGSVC_* name would be ignored silently: say so, with a suggestion."""
    known = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    known += sorted(OTHER_PROGRAMS_VARIABLES)  # read by training, the scripts, compose
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"warning: {name} is not a setting and is ignored{hint}", file=sys.stderr)
    return unknown


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Flags over VGGSVC_* variables; a bad value exits 2 naming the variable and the flag."""
    args = build_parser().parse_args(argv)
    warn_unknown_variables(os.environ)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "settings"
            where = _setting_names(field) if field in Settings.model_fields else field
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
        print("error: invalid settings:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from exc
    # uvicorn would only import them once the models are loaded, and then stop with a
    # traceback: an implementation asked for by name must be there before anything starts.
    missing = missing_implementations(settings.http, settings.loop)
    if missing:
        lines = [
            f"  {_setting_names(field)}: {module} is not installed: pip install {module}, "
            f"or use auto or {fallback} (got {module!r})"
            for field, module, fallback in missing
        ]
        print("error: invalid settings:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2)
    return settings


class Server(uvicorn.Server):
    """uvicorn's server with a drain before uvicorn's own shutdown.

    uvicorn closes its listening socket as soon as it is told to exit, so a
    balancer or kubelet polling /readyz would see "connection refused" while
    requests still finish. Here the signal only starts the drain; uvicorn is told
    to exit once nothing is in flight (or the graceful timeout is spent).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        delay_s: float,
        timeout_s: float,
        startup: StartupStop | None = None,
    ):
        super().__init__(config)
        self._drain = drain
        self._delay_s = delay_s
        self._timeout_s = timeout_s
        self._startup = startup

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._startup is not None and self._startup.pending():  # models still loading
            self._startup.stop(sig)
            return
        if self._drain.started.is_set():  # a second signal: stop now
            self._stop(sig, frame)
            return
        self._drain.started.set()
        log.info("signal %d: draining (%d request(s) in flight)", sig, self._drain.in_flight)
        threading.Thread(
            target=self._drain_then_stop, args=(sig, frame), name="drain", daemon=True
        ).start()

    def _drain_then_stop(self, sig: int, frame: FrameType | None) -> None:
        began = time.monotonic()
        deadline = began + max(self._timeout_s, self._delay_s)
        while time.monotonic() < deadline and (
            self._drain.in_flight > 0 or time.monotonic() - began < self._delay_s
        ):
            time.sleep(0.05)
        log.info(
            "drained in %.2f s; %d request(s) left", time.monotonic() - began, self._drain.in_flight
        )
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            # uvicorn re-raises captured signals after shutting down, which would end the
            # process with -15. SIGTERM is an orchestrator's ordinary stop request: once the
            # graceful shutdown has completed, exit 0.
            self._captured_signals.remove(sig)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def server_implementations(http: str, loop: str) -> tuple[str, str]:
    """What uvicorn will use for `auto`: the C implementations when they are installed."""
    if http == "auto":
        http = "httptools" if _installed("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if _installed("uvloop") else "asyncio"
    return http, loop


def missing_implementations(http: str, loop: str) -> list[tuple[str, str, str]]:
    """`(setting, module, fallback)` for each C implementation asked for but not installed."""
    asked = (("http", http, "httptools", "h11"), ("loop", loop, "uvloop", "asyncio"))
    return [
        (field, module, fallback)
        for field, value, module, fallback in asked
        if value == module and not _installed(module)
    ]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    configure_logging(settings.log_level, settings.log_format, settings.log_probes)
    raise_open_file_limit()  # before the connection cap is sized from it
    # The port before anything slow: a busy one fails now, not after the models load.
    sock = listen(settings.host, settings.port)
    startup = StartupStop()
    startup.install()  # a signal from here on stops at once, TensorFlow's import included
    # TensorFlow only after the flags are checked, and without its start-up lines unless
    # --verbose: this first import is the one that can be quietened.
    import_tensorflow(settings.verbose)
    from modelstore.runtime import PrecisionUnavailableError
    from service.app import create_app

    try:
        app = create_app(settings)
    except PrecisionUnavailableError as exc:
        print(f"error: --precision / VGGSVC_PRECISION: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **uvicorn_options(
            settings.http,
            settings.header_timeout_s,
            settings.keep_alive_timeout_s,
            settings.max_connections,
        ),
        loop=settings.loop,
        log_config=None,  # keep configure_logging's handlers (uvicorn would replace them)
        workers=1,  # one model copy per process; see Settings
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
    log.info("http: %s, event loop: %s", *server_implementations(settings.http, settings.loop))
    state = app.state.service
    startup.watch(
        lambda: state.repository is None or not state.repository.scanned,
        state.drain,
        settings.graceful_timeout_s,
    )
    server = Server(
        config, state.drain, settings.drain_delay_s, settings.graceful_timeout_s, startup
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
