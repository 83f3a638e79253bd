"""int8 at export: quantize the SavedModel with NNCF, check it against fp32, keep it or say why not.

    record = export_int8(draft.path, train_paths, valid_paths, valid_labels, image_size)
    # record.status == "ready": draft.path/int8/model.{xml,bin} written, hashes recorded
    # record.status == "omitted": nothing written, record.reason says why

Steps: OpenVINO converts the fp32 SavedModel (same graph, same preprocessing);
NNCF's post-training quantization calibrates on a bounded, seeded sample of the
model's own training photos; the convolutional base becomes int8, the head, the
softmax and the mirror average stay fp32 (so probabilities still sum to 1, and
the few head weights keep full precision). Then the accuracy guard: int8 and the
unquantized fp32 graph score the validation photos; the artifact is kept only if
they agree on the top-1 class for >= MIN_AGREEMENT of them and int8 loses at most
MAX_ACCURACY_DROP accuracy. The format and its reader are `modelstore.int8_artifact`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imaging import load_image
from modelstore.int8_artifact import (
    INT8_BIN,
    INT8_DIR,
    INT8_RUNTIME,
    INT8_XML,
    compile_config,
    file_sha256,
    runtime_version,
)
from modelstore.metadata import Int8Record

log = logging.getLogger(__name__)

# Calibration needs the range of each activation, not many photos: NNCF's own default
# subset is 300; more costs export time linearly.
MAX_CALIBRATION_PHOTOS = 300
# The guard (the same bar the bf16 runtime is held to: docs/int8.md).
MIN_AGREEMENT = 0.99
MAX_ACCURACY_DROP = 0.005
# Left in fp32: everything after the base (head, softmax, averaging the mirror's
# probabilities). Quantizing the average's inputs clips probabilities (their rows then
# no longer sum to 1), and the head is a small share of the work.
FP32_SCOPE = [".*head.*", ".*mean_of_mirrors.*"]
QUANTIZED = "convolutional base int8 (NNCF post-training); head, softmax and mirror average fp32"
SCORING_BATCH = 16


def unavailable_reason() -> str | None:
    """Why int8 cannot be made here (None: OpenVINO and NNCF are installed)."""
    if runtime_version() is None:
        return f"{INT8_RUNTIME} is not installed"
    try:
        import nncf  # noqa: F401
    except ImportError:
        return "nncf is not installed"
    return None


def omitted(reason: str, **fields: Any) -> Int8Record:
    log.warning("published without int8: %s", reason)
    return Int8Record(status="omitted", reason=reason, **fields)


def calibration_sample(paths: Sequence[Path], seed: int) -> list[Path]:
    """Up to MAX_CALIBRATION_PHOTOS of `paths`, chosen with `seed` (the same run, the same set)."""
    if len(paths) <= MAX_CALIBRATION_PHOTOS:
        return list(paths)
    chosen = np.random.default_rng(seed).choice(len(paths), MAX_CALIBRATION_PHOTOS, replace=False)
    return [paths[i] for i in sorted(chosen)]


def _images(paths: Sequence[Path], size: int) -> np.ndarray:
    return np.stack([load_image(p, size) for p in paths]) if paths else np.zeros((0, size, size, 3))


def _scores(compiled: Any, images: np.ndarray) -> np.ndarray:
    parts = [
        np.asarray(compiled(images[i : i + SCORING_BATCH])[0], dtype=np.float32)
        for i in range(0, len(images), SCORING_BATCH)
    ]
    return np.concatenate(parts)


def accuracy_check(
    fp32: np.ndarray,
    int8: np.ndarray,
    labels: Sequence[int],
    min_agreement: float | None = None,
    max_accuracy_drop: float | None = None,
) -> dict[str, float | int | bool]:
    """Top-1 agreement and accuracies of int8 against fp32 on the same photos; `passed`
    (thresholds: MIN_AGREEMENT and MAX_ACCURACY_DROP unless given)."""
    min_agreement = MIN_AGREEMENT if min_agreement is None else min_agreement
    max_drop = MAX_ACCURACY_DROP if max_accuracy_drop is None else max_accuracy_drop
    truth = np.asarray(labels)
    top_fp32, top_int8 = fp32.argmax(axis=1), int8.argmax(axis=1)
    agreement = float(np.mean(top_fp32 == top_int8))
    acc_fp32, acc_int8 = float(np.mean(top_fp32 == truth)), float(np.mean(top_int8 == truth))
    return {
        "photos": len(truth),
        "top1_agreement": round(agreement, 4),
        "accuracy_fp32": round(acc_fp32, 4),
        "accuracy_int8": round(acc_int8, 4),
        "max_abs_probability_diff": round(float(np.max(np.abs(fp32 - int8))), 4),
        "min_agreement": min_agreement,
        "max_accuracy_drop": max_drop,
        # 1e-9: 0.5 points lost on 200 photos is exactly one photo; float rounding must not
        # turn an allowed drop into a refusal.
        "passed": agreement >= min_agreement and acc_fp32 - acc_int8 <= max_drop + 1e-9,
    }


def export_int8(
    version_dir: Path,
    train_paths: Sequence[Path],
    valid_paths: Sequence[Path],
    valid_labels: Sequence[int],
    image_size: int,
    seed: int = 0,
    min_agreement: float | None = None,
    max_accuracy_drop: float | None = None,
) -> Int8Record:
    """Quantize `version_dir`'s SavedModel into `version_dir/int8/` if it passes the guard
    (thresholds: MIN_AGREEMENT and MAX_ACCURACY_DROP unless given).

    Returns the record for metadata.json either way; never raises for a guard failure.
    """
    began = time.monotonic()
    missing = unavailable_reason()
    if missing is not None:
        return omitted(f"{missing} (pip install openvino nncf)")
    import nncf
    import openvino as ov

    model = ov.convert_model(str(version_dir))
    sample = calibration_sample(train_paths, seed)
    calibration = _images(sample, image_size)
    # NNCF logs every ignored node and draws progress bars on stdout, which is where the
    # CLI's answer goes: warnings only, and anything it still draws goes to stderr.
    nncf.set_log_level(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(
            model,
            nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(patterns=FP32_SCOPE, validate=False),
        )
    core = ov.Core()
    # Both scored with one stream on all cores, fp32 without any reduced-precision hint.
    config = compile_config(streams=1)
    valid = _images(valid_paths, image_size)
    check = accuracy_check(
        _scores(core.compile_model(model, "CPU", config), valid),
        _scores(core.compile_model(quantized, "CPU", config), valid),
        valid_labels,
        min_agreement,
        max_accuracy_drop,
    )
    fields: dict[str, Any] = {
        "runtime": INT8_RUNTIME,
        "runtime_version": runtime_version(),
        "calibration": {
            "photos": len(sample),
            "source": "training split",
            "chosen": f"all, or {MAX_CALIBRATION_PHOTOS} drawn with seed {seed}",
            "nncf_version": nncf.__version__,
        },
        "accuracy_check": check,
        "quantized": QUANTIZED,
    }
    if not check["passed"]:
        fields["seconds"] = round(time.monotonic() - began, 2)
        return omitted(
            f"the accuracy check failed on {check['photos']} validation photos: top-1 "
            f"agreement {check['top1_agreement']:.2%} (needs >= {MIN_AGREEMENT:.0%}), accuracy "
            f"{check['accuracy_int8']:.4f} int8 vs {check['accuracy_fp32']:.4f} fp32 (may drop "
            f"<= {MAX_ACCURACY_DROP * 100:.1f} points)",
            **fields,
        )
    (Path(version_dir) / INT8_DIR).mkdir(exist_ok=True)
    # compress_to_fp16=False: the fp32 head's weights stay fp32 on disk.
    ov.save_model(quantized, str(Path(version_dir) / INT8_XML), compress_to_fp16=False)
    fields["files"] = {name: file_sha256(Path(version_dir) / name) for name in (INT8_XML, INT8_BIN)}
    fields["seconds"] = round(time.monotonic() - began, 2)
    return Int8Record(status="ready", **fields)


def not_made(reason: str) -> Int8Record:
    """The record of a version exported without trying (`--int8 off`)."""
    return Int8Record(status="omitted", reason=reason)
