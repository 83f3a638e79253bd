"""Where and how models run: devices (GPU memory growth, thread pools) and numeric precision.

Used by every program that runs a model (the service, and training's feature
extraction, evaluation and batch scoring), before the first model is loaded.
Runs the same on a CPU-only machine: every GPU step is skipped when TensorFlow
sees no GPU, and the model then runs on `/CPU:0`.

Precision. The exported SavedModel is fp32 and portable (TensorFlow Serving
serves it unchanged); the *runtime* chooses reduced precision where the
hardware has fast units for it, through TensorFlow's graph rewriter
(grappler's auto mixed precision), which rewrites the loaded graph's
convolutions and matmuls and keeps numerically sensitive ops (softmax) in fp32:
- `bf16`: oneDNN bf16 on CPUs with AMX or AVX512-BF16 (bench/serving.py, 128 px
  VGG16: 1.95x the fp32 images/s on an AVX512-BF16 CPU without AMX; about 8x was
  measured on an AMX CPU);
- `fp16`: Tensor Core fp16 on NVIDIA GPUs of compute capability >= 7.0;
- `fp32`: everything else, and whenever asked.
- `int8`: a version's int8 artifact (OpenVINO IR quantized at export,
  `modelstore.int8_artifact`) on CPUs with int8 dot-product units (VNNI or AMX;
  bench/int8.py: about 2x bf16 on an AVX512-VNNI CPU without AMX). It is per
  version: `auto` runs int8 for versions that carry a checked artifact and falls
  back to bf16/fp32 for the others; an explicit `int8` refuses a version without one.
`auto` picks the first that the hardware supports. TensorFlow's rewriter offers
bf16 on CPUs only, so GPUs get fp16 (Ampere and newer run both at the same rate).
The setting is process-wide: call `use_precision` before loading models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from modelstore.int8_artifact import runtime_version

log = logging.getLogger(__name__)
_configured = False


def configure_devices(
    memory_limit_mb: int | None = None, intra_op_threads: int = 0, inter_op_threads: int = 0
) -> str:
    """Configure TensorFlow once per process and return the device models run on.

    Memory growth stops TensorFlow from grabbing all GPU memory at start-up, so a
    second model version can load beside the first during a hot reload. These
    calls must come before TensorFlow initialises its devices; later calls in the
    same process (tests build several apps) only report the device.
    """
    global _configured
    gpus = tf.config.list_physical_devices("GPU")
    if not _configured:
        _configured = True
        try:
            if intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
            if inter_op_threads:
                tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
            for gpu in gpus:
                if memory_limit_mb:
                    # A hard cap and memory growth cannot be combined on one device.
                    tf.config.set_logical_device_configuration(
                        gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)]
                    )
                else:
                    tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # TensorFlow was already initialised in this process
            log.warning("device settings not applied (TensorFlow already initialised): %s", exc)
    device = "/GPU:0" if gpus else "/CPU:0"
    log.info(
        "devices: %s; models run on %s",
        ", ".join(d.name for d in tf.config.list_physical_devices()) or "none",
        device,
    )
    return device


def gpu_memory_in_use() -> dict[str, int]:
    """Bytes of memory TensorFlow holds on each GPU (empty without a GPU)."""
    usage = {}
    for index, _ in enumerate(tf.config.list_physical_devices("GPU")):
        name = f"GPU:{index}"
        try:
            usage[name] = int(tf.config.experimental.get_memory_info(name)["current"])
        except (ValueError, RuntimeError):  # device not initialised yet
            continue
    return usage


# What TensorFlow's rewriter runs (feature extraction, and SavedModels).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# What a published model can run in: those, and its int8 artifact.
MODEL_PRECISIONS = (*PRECISIONS, "int8")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# int8 dot-product units: VNNI (AVX-512 or AVX) and AMX's int8 tiles.
CPU_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


class PrecisionUnavailableError(RuntimeError):
    """The precision asked for cannot run on this hardware; the message says what can."""


@dataclass(frozen=True)
class Precision:
    requested: str  # auto | fp32 | bf16 | fp16 | int8
    effective: str  # fp32 | bf16 | fp16 | int8 (for int8 under auto: the fallback's)
    reason: str  # why, in words (logged, reported, recorded)
    # Versions with a checked int8 artifact run it (auto on an int8 CPU with the runtime
    # installed, or int8 asked for); `effective` is what the other versions run in.
    int8: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "effective": self.effective, "reason": self.reason}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo does not exist."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def gpu_compute_capability() -> tuple[int, int] | None:
    """(major, minor) of the first GPU TensorFlow sees; None without a GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return (int(capability[0]), int(capability[1])) if capability else (0, 0)


def resolve_precision(
    requested: str,
    gpu: tuple[int, int] | None,
    flags: set[str],
    int8_runtime: str | None = None,
) -> Precision:
    """Pick the effective precision for this hardware; raise if an explicit one cannot run.

    `int8_runtime`: the installed int8 runtime's version (None: not installed).
    """
    if requested not in MODEL_PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(MODEL_PRECISIONS)}, got {requested!r}"
        )
    int8_flags = sorted(set(CPU_INT8_FLAGS) & flags)
    if requested == "int8":
        if gpu is not None:
            raise PrecisionUnavailableError(
                "int8 runs on CPUs only (a GPU was found); use --precision fp16 or auto"
            )
        if not int8_flags:
            raise PrecisionUnavailableError(
                "int8 needs a CPU with int8 dot-product units (flags avx512_vnni / avx_vnni / "
                "amx_int8), which this one lacks; use --precision auto (bf16 or fp32)"
            )
        if int8_runtime is None:
            raise PrecisionUnavailableError(
                "int8 runs on OpenVINO, which is not installed (pip install openvino); "
                "use --precision auto"
            )
        return Precision(requested, "int8", f"CPU with {' and '.join(int8_flags)}", int8=True)
    fallback = _resolve_tensorflow(requested, gpu, flags)
    if requested == "auto" and gpu is None and int8_flags and int8_runtime is not None:
        return Precision(
            requested,
            fallback.effective,
            f"int8 for versions with an int8 artifact (CPU with {' and '.join(int8_flags)}); "
            f"{fallback.effective} for the others ({fallback.reason})",
            int8=True,
        )
    return fallback


def _resolve_tensorflow(requested: str, gpu: tuple[int, int] | None, flags: set[str]) -> Precision:
    """The precision TensorFlow's rewriter runs SavedModels in."""
    bf16_flags = sorted(set(CPU_BF16_FLAGS) & flags)
    if gpu is not None:
        tensor_cores = gpu >= (7, 0)
        if requested == "bf16":
            raise PrecisionUnavailableError(
                "bf16 is not available on GPUs through TensorFlow's graph rewriter; "
                "use --precision fp16 (same Tensor Core rate) or fp32"
            )
        if requested == "fp16" and not tensor_cores:
            raise PrecisionUnavailableError(
                f"fp16 needs a GPU with Tensor Cores (compute capability >= 7.0); this one is "
                f"{gpu[0]}.{gpu[1]}: use --precision fp32"
            )
        if requested in ("fp16", "auto") and tensor_cores:
            return Precision(requested, "fp16", f"GPU of compute capability {gpu[0]}.{gpu[1]}")
        why = "asked for" if requested == "fp32" else f"GPU {gpu[0]}.{gpu[1]} has no Tensor Cores"
        return Precision(requested, "fp32", why)
    if requested == "fp16":
        raise PrecisionUnavailableError(
            "fp16 runs on GPUs only (no GPU found); on this CPU use --precision bf16 or fp32"
        )
    if requested == "bf16" and not bf16_flags:
        raise PrecisionUnavailableError(
            "bf16 needs a CPU with AMX or AVX512-BF16 (flags amx_bf16 / avx512_bf16), which "
            "this one lacks; use --precision fp32 (or auto, which falls back to it)"
        )
    if requested in ("bf16", "auto") and bf16_flags:
        return Precision(requested, "bf16", f"CPU with {' and '.join(bf16_flags)}")
    why = "asked for" if requested == "fp32" else "CPU without bf16 units (no amx_bf16/avx512_bf16)"
    return Precision(requested, "fp32", why)


def use_precision(requested: str = "auto") -> Precision:
    """Resolve `requested` on this machine and set it for every model loaded from now on."""
    chosen = resolve_precision(requested, gpu_compute_capability(), cpu_flags(), runtime_version())
    tf.config.optimizer.set_experimental_options(
        {
            "auto_mixed_precision_onednn_bfloat16": chosen.effective == "bf16",
            "auto_mixed_precision": chosen.effective == "fp16",
        }
    )
    log.info("precision %s (asked %s): %s", chosen.effective, chosen.requested, chosen.reason)
    return chosen


@dataclass(frozen=True)
class Runtime:
    """What a process runs models on: the device and the effective precision."""

    device: str
    precision: Precision


def configure_runtime(
    precision: str = "auto",
    memory_limit_mb: int | None = None,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
) -> Runtime:
    """Devices first (they must be set before TensorFlow starts), then the precision."""
    global _current
    device = configure_devices(memory_limit_mb, intra_op_threads, inter_op_threads)
    _current = Runtime(device, use_precision(precision))
    return _current


_current: Runtime | None = None


def current_runtime() -> Runtime | None:
    """The runtime the last `configure_runtime` call set in this process (None: never called)."""
    return _current
