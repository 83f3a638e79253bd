"""The service's one settings object, read from `VGGSVC_*` environment variables.

Every field is documented in the README's configuration table; `python -m
service` flags override the environment. Validation happens at start-up, so a
bad value stops the process with a message instead of failing a request later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VGGSVC_", extra="ignore")

    # Where models live and which one answers when a request names none.
    models_dir: Path = Path("models")
    default_model: str = "car_truck"
    # "name:version,name:version": versions kept loaded beside the latest one.
    pinned_versions: str = ""
    poll_interval_s: Annotated[float, Field(ge=0.0)] = 5.0  # 0 turns the directory poller off
    # Load in the background: the port opens at once, /healthz answers and /readyz says 503
    # until every model is loaded and warmed up. False: the port opens only after loading.
    load_in_background: bool = True

    # Network. One process on purpose: each process holds its own copy of every model
    # (GPU memory included) and its own batcher, so more processes mean smaller batches.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    graceful_timeout_s: Annotated[int, Field(ge=0)] = 20
    log_level: str = "info"

    # Admin endpoints are disabled (403) unless a key is set.
    admin_key: str | None = None

    # Dynamic batching.
    max_batch_size: Annotated[int, Field(ge=1)] = 16
    max_batch_delay_ms: Annotated[float, Field(ge=0.0)] = 5.0
    # Padding buckets, also the warm-up sizes. Empty (the default): no padding, every batch
    # size 1..max_batch_size is its own shape. On a CPU padding is pure waste (a batch of 9
    # padded to 16 costs 16 images: -30 % throughput at concurrency 16 in bench.serving);
    # the SavedModel's batch dimension is dynamic, so no size ever retraces. On a GPU, powers
    # of two ("1,2,4,8,16,32,64") keep the number of shapes cuDNN autotunes small.
    batch_sizes: str = ""
    max_queue: Annotated[int, Field(ge=1)] = 256  # images waiting per model version before 503
    max_decode_queue: Annotated[int, Field(ge=1)] = 256  # images waiting to be decoded, all models
    request_timeout_s: Annotated[float, Field(gt=0.0)] = 30.0

    # Input limits.
    max_request_bytes: Annotated[int, Field(ge=1)] = 20 * 1024 * 1024
    max_image_pixels: Annotated[int, Field(ge=1)] = 40_000_000
    max_images_per_request: Annotated[int, Field(ge=1)] = 64
    decode_threads: Annotated[int, Field(ge=1)] = 2

    # TensorFlow threading and GPU memory (0 threads = TensorFlow's default).
    tf_intra_op_threads: Annotated[int, Field(ge=0)] = 0
    # One inter-op thread: VGG16 is a chain of ops with nothing to run side by side, and a
    # second pool only competes with the intra-op threads (bench.serving: +5 % throughput at
    # concurrency 16 on 2 cores, and 20 MB less memory).
    tf_inter_op_threads: Annotated[int, Field(ge=0)] = 1
    gpu_memory_limit_mb: Annotated[int | None, Field(ge=1)] = None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("log_level must be critical, error, warning, info or debug")
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _bucket_list(cls, value: str) -> str:
        try:
            sizes = [int(part) for part in value.split(",") if part.strip()]
        except ValueError as exc:
            raise ValueError(
                f"batch_sizes must be comma-separated integers, got {value!r}"
            ) from exc
        if sizes and min(sizes) < 1:
            raise ValueError("batch_sizes must be positive integers")
        return ",".join(str(size) for size in sorted(set(sizes)))

    @field_validator("pinned_versions")
    @classmethod
    def _pins(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, version = item.rpartition(":")
            if (
                not sep
                or not name
                or not (version.isascii() and version.isdigit())
                or int(version) < 1
            ):
                raise ValueError(f"pinned_versions entries look like car_truck:2, got {item!r}")
        return value

    @property
    def buckets(self) -> list[int]:
        """Padding sizes up to max_batch_size, ascending; always ends at max_batch_size."""
        if not self.batch_sizes:
            return list(range(1, self.max_batch_size + 1))
        sizes = [int(part) for part in self.batch_sizes.split(",")]
        # The largest bucket is always a full batch, so no batch size is ever left untraced.
        return sorted({s for s in sizes if s < self.max_batch_size} | {self.max_batch_size})

    @property
    def pins(self) -> dict[str, set[int]]:
        pins: dict[str, set[int]] = {}
        for item in filter(None, (part.strip() for part in self.pinned_versions.split(","))):
            name, _, version = item.rpartition(":")
            pins.setdefault(name, set()).add(int(version))
        return pins
