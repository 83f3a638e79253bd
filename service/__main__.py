"""Run the inference service.

    python -m service --models-dir models --host 127.0.0.1 --port 8000

Every flag overrides its `VGGSVC_*` environment variable (see the README's
configuration table). SIGTERM/SIGINT: /readyz turns 503 at once, requests in
flight and queued batches finish (up to --graceful-timeout-s), then the
process exits with status 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import uvicorn
from pydantic import ValidationError

from service.settings import Settings

FLAGS = {
    "models_dir": str,
    "host": str,
    "port": int,
    "default_model": str,
    "pinned_versions": str,
    "poll_interval_s": float,
    "max_batch_size": int,
    "max_batch_delay_ms": float,
    "batch_sizes": str,
    "max_queue": int,
    "max_decode_queue": int,
    "request_timeout_s": float,
    "max_request_bytes": int,
    "max_image_pixels": int,
    "max_images_per_request": int,
    "decode_threads": int,
    "tf_intra_op_threads": int,
    "tf_inter_op_threads": int,
    "gpu_memory_limit_mb": int,
    "graceful_timeout_s": int,
    "log_level": str,
}


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m service", description=(__doc__ or "").split("\n")[0]
    )
    for name, kind in FLAGS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            help=f"overrides VGGSVC_{name.upper()}",
        )
    parser.add_argument(
        "--load-in-background",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="overrides VGGSVC_LOAD_IN_BACKGROUND",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        parser.error(f"invalid settings:\n{exc}")
        raise  # unreachable: parser.error exits


class Server(uvicorn.Server):
    """uvicorn's server, telling the app about a shutdown signal the moment it arrives."""

    def __init__(self, config: uvicorn.Config, on_exit: threading.Event) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit.set()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            # uvicorn re-raises captured signals after shutting down, which would end the
            # process with -15. SIGTERM is an orchestrator's ordinary stop request: once the
            # graceful shutdown has completed, exit 0.
            self._captured_signals.remove(sig)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from service.main import create_app  # imports TensorFlow: after the flags are checked

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=1,  # one model copy per process; see Settings
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
    Server(config, app.state.service.shutting_down).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
