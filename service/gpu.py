"""Device set-up: GPU memory growth (and an optional cap), thread pools, device reporting.

Runs the same on a CPU-only machine: every GPU step is skipped when TensorFlow
sees no GPU, and the model then runs on `/CPU:0`.
"""

from __future__ import annotations

import logging

import tensorflow as tf

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
