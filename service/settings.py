"""The service's one settings object, read from `VGGSVC_*` environment variables.

Every field's description is its documentation: `python -m service --help`
prints it with the default, and the docs' configuration table is rendered from it.
`python -m service` flags are generated from these fields and override the
environment. Validation happens at start-up, so a bad value stops the process
with a message instead of failing a request later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelstore.layout import parse_version

ENV_PREFIX = "VGGSVC_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# Settings that never become command-line flags: a secret in argv is visible to every
# user of the machine (ps, /proc/<pid>/cmdline).
NOT_FLAGS = frozenset({"admin_key"})
# The rest of the VGGSVC_* family: variables that other programs of the product read
# (training, the scripts, the image build, compose). Not settings of the service, but
# not typos either: the service's unknown-variable warning leaves them alone. A test
# checks that every VGGSVC_* name used in the repository is a setting or listed here.
OTHER_PROGRAMS_VARIABLES = frozenset(
    {
        "VGGSVC_FEATURE_CACHE_DIR",  # training: the feature store (was TRAINING_CACHE_DIR)
        "VGGSVC_BUILTIN_MODELS_DIR",  # scripts/container-entrypoint.sh: models baked in
        "VGGSVC_TF_FLAVOUR",  # scripts/venv.sh, Dockerfile, compose: cpu | gpu (TF_FLAVOUR)
        "VGGSVC_BASE_WEIGHTS",  # Dockerfile: imagenet | hed | none, the weights baked in
        "VGGSVC_IMAGE_TAG",  # compose: the image's tag (IMAGE_TAG)
        "VGGSVC_TRAINING_DATA",  # compose: the trainer's data folder (TRAINING_DATA)
        "VGGSVC_LB_PORT",  # compose: HAProxy's host port (LB_PORT)
        "VGGSVC_LB_STATS_PORT",  # compose: HAProxy's statistics page (LB_STATS_PORT)
        "VGGSVC_PROMETHEUS_PORT",  # compose (PROMETHEUS_PORT)
        "VGGSVC_GRAFANA_PORT",  # compose (GRAFANA_PORT)
        # scripts/demo.sh (DEMO_*)
        "VGGSVC_DEMO_IMAGE_SIZE",
        "VGGSVC_DEMO_BASE_WEIGHTS",
        "VGGSVC_DEMO_DATA_DIR",
        "VGGSVC_DEMO_MODELS_DIR",
        "VGGSVC_DEMO_HOST",
        "VGGSVC_DEMO_PORT",
    }
)


def _comma_items(value: Any) -> Any:
    """`"a, b,,c"` -> `["a", "b", "c"]`; lists and other values unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # ---- models ---------------------------------------------------------------------
    models_dir: Path = Field(Path("models"), description="the model repository to serve")
    default_model: str | None = Field(
        None,
        description="the model that answers requests naming none; unset: the only model "
        "served (with several, requests must name one and /readyz says so)",
    )
    pinned_versions: Annotated[dict[str, list[int]], NoDecode] = Field(
        default_factory=dict,
        description="versions kept loaded beside the latest, e.g. car_truck:1,car_truck:3",
    )
    poll_interval_s: float = Field(
        5.0, ge=0.0, description="seconds between model directory scans; 0 turns polling off"
    )
    share_base: bool = Field(
        True,
        description="run versions whose frozen base is identical (same weights, cut layer, "
        "input size) on one loaded base: one base pass per batch for all of them, each "
        "version loads only its head; off: every version loads and runs whole",
    )
    load_in_background: bool = Field(
        True,
        description="open the port at once and load models behind it (/readyz says 503 "
        "until they are warm); off: the port opens only after loading",
    )

    # ---- network. One process on purpose: each process holds its own copy of every
    # model (GPU memory included) and its own batcher, so more processes mean smaller
    # batches; scale out with replicas behind a balancer instead (deploy/).
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    graceful_timeout_s: int = Field(
        20, ge=0, description="seconds in-flight requests get to finish after SIGTERM"
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0.0,
        description="after SIGTERM, keep answering /readyz 503 at least this long before "
        "closing the port, so a balancer polling readiness stops sending first",
    )
    http: Literal["auto", "httptools", "h11"] = Field(
        "auto",
        description="uvicorn's HTTP/1.1 parser: httptools (C; not a dependency: pip install "
        "httptools) or h11 (pure Python); auto = httptools when installed",
    )
    loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="the event loop: uvloop (not a dependency: pip install uvloop) or the "
        "standard asyncio loop; auto = uvloop when installed",
    )
    # Connection hygiene (docs/reliability.md): what nginx's client_header_timeout,
    # keepalive_timeout, client_body_timeout and limit_conn do in front of a service.
    header_timeout_s: float = Field(
        10.0,
        gt=0.0,
        description="a connection that has not sent complete request headers this many "
        "seconds after opening (or after its last response) is closed",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0.0, description="an idle keep-alive connection is closed after this many seconds"
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0.0,
        description="a request body must arrive in full within this many seconds of its "
        "headers, or the request gets 408 and its memory is freed",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open client connections at most; more get 503 + Retry-After (lowered "
        "to fit the open files limit, which start-up raises to its hard limit)",
    )
    log_level: str = Field("info", description=" | ".join(LOG_LEVELS))
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line (access log included)"
    )
    log_probes: bool = Field(
        False, description="also log /healthz, /readyz, /metrics requests in the access log"
    )
    verbose: bool = Field(
        False, description="show TensorFlow's start-up and C++ log lines (hidden by default)"
    )
    admin_key: str | None = Field(
        None,
        description="Bearer key of /admin/*; unset disables them (403). Environment only",
    )

    # ---- dynamic batching -------------------------------------------------------------
    max_batch_size: int = Field(16, ge=1, description="images per model call at most")
    max_batch_delay_ms: float = Field(
        5.0, ge=0.0, description="how long the first queued image waits for more"
    )
    # Empty (the default): no padding, every batch size 1..max_batch_size is its own
    # shape. On a CPU padding is pure waste (a batch of 9 padded to 16 costs 16 images:
    # -30 % throughput at concurrency 16 in bench.serving); the SavedModel's batch
    # dimension is dynamic, so no size ever retraces. On a GPU, powers of two keep the
    # number of shapes cuDNN autotunes small.
    batch_sizes: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="padding buckets (and warm-up sizes), e.g. 1,2,4,8,16; empty: no padding",
    )
    max_queue: int = Field(256, ge=1, description="images waiting per model version before 503")
    max_decode_queue: int = Field(
        256, ge=1, description="images waiting to be decoded, all models, before 503"
    )
    request_timeout_s: float = Field(
        30.0, gt=0.0, description="decode + queue + inference budget of a request (504)"
    )

    # ---- input limits -----------------------------------------------------------------
    max_request_bytes: int = Field(20 * 1024 * 1024, ge=1, description="body size cap (413)")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="width x height cap, checked before decoding (413)"
    )
    max_images_per_request: int = Field(64, ge=1, description="images per request (413)")
    max_models_per_request: int = Field(
        16, ge=1, description="models named in one /predict?models=a,b,c request (413)"
    )
    decode_threads: int = Field(2, ge=1, description="threads decoding images")

    # ---- TensorFlow threading and GPU memory ------------------------------------------
    tf_intra_op_threads: int = Field(
        0, ge=0, description="TensorFlow intra-op threads; 0: TensorFlow's default"
    )
    # One inter-op thread: VGG16 is a chain of ops with nothing to run side by side, and
    # a second pool only competes with the intra-op threads (bench.serving: +5 %
    # throughput at concurrency 16 on 2 cores, and 20 MB less memory).
    tf_inter_op_threads: int = Field(
        1, ge=0, description="TensorFlow inter-op threads; 0: TensorFlow's default"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="numeric precision models run in: auto picks int8 for versions with an "
        "int8 artifact on CPUs with VNNI or AMX, else bf16 on CPUs with AMX or AVX512-BF16, "
        "fp16 on Tensor Core GPUs, else fp32 (the export stays fp32); int8 refuses a CPU or "
        "a version that cannot run it",
    )
    gpu_memory_limit_mb: int | None = Field(
        None, ge=1, description="cap on GPU memory per GPU; unset: grow as needed"
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _bucket_list(cls, value: Any) -> Any:
        items = _comma_items(value)
        if isinstance(items, list):
            try:
                sizes = [int(item) for item in items]
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"batch_sizes must be comma-separated integers, got {value!r}"
                ) from exc
            if sizes and min(sizes) < 1:
                raise ValueError("batch_sizes must be positive integers")
            return sorted(set(sizes))
        return value

    @field_validator("pinned_versions", mode="before")
    @classmethod
    def _pins(cls, value: Any) -> Any:
        items = _comma_items(value)
        if not isinstance(items, list):
            return value
        pins: dict[str, list[int]] = {}
        for item in items:
            name, sep, version = str(item).rpartition(":")
            number = parse_version(version)
            if not sep or not name or number is None:
                raise ValueError(
                    f"pinned_versions entries look like car_truck:2 (a positive integer "
                    f"version, no leading zero), got {item!r}"
                )
            pins.setdefault(name, []).append(number)
        return {name: sorted(set(versions)) for name, versions in pins.items()}

    @property
    def buckets(self) -> list[int]:
        """Padding sizes up to max_batch_size, ascending; always ends at max_batch_size."""
        if not self.batch_sizes:
            return list(range(1, self.max_batch_size + 1))
        # The largest bucket is always a full batch, so no batch size is ever left untraced.
        return sorted(
            {s for s in self.batch_sizes if s < self.max_batch_size} | {self.max_batch_size}
        )

    @property
    def pins(self) -> dict[str, set[int]]:
        return {name: set(versions) for name, versions in self.pinned_versions.items()}
