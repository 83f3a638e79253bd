"""The int8 artifact of a version: OpenVINO IR files beside the fp32 SavedModel.

    models/<name>/<version>/int8/model.xml   the quantized graph (uint8 images -> probabilities)
    models/<name>/<version>/int8/model.bin   its weights (int8 convolutions, fp32 head)

Written at export by `training.quantize` (NNCF post-training quantization),
recorded in metadata.json's `int8` (`modelstore.metadata.Int8Record`), read here.
The SavedModel stays the portable fp32 export; this is an extra for CPUs with int8
dot-product units. `artifact_problem` says why a version's artifact cannot be used
(none, omitted, files changed, another runtime version); `load_int8` compiles it.

OpenVINO is imported only when an artifact is compiled: the layout and schema stay
cheap to import, and a machine without the runtime still serves the fp32 export.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from modelstore.contract import INPUT_NAME, OUTPUT_NAME
from modelstore.metadata import ModelMetadata

INT8_DIR = "int8"
INT8_XML = f"{INT8_DIR}/model.xml"
INT8_BIN = f"{INT8_DIR}/model.bin"
INT8_RUNTIME = "openvino"

# One stream on all cores: a batch of one (the c=1 latency) gets both cores, where with
# two streams it runs on one. Two streams, each given half a batch, measured 0.64x
# (batch 1) and 1.23x (batch 16) of one stream on 2 cores (bench/int8.py,
# bench/results/int8_quiet.json; docs/int8.md): better for full batches, worse for a
# lone request. Kept at one; `load_published(..., int8_streams=2)` is there to switch.
DEFAULT_STREAMS = 1


def runtime_version() -> str | None:
    """The installed OpenVINO's version ("2026.4.1"), or None where it is not installed."""
    try:
        return importlib_metadata.version(INT8_RUNTIME)
    except importlib_metadata.PackageNotFoundError:
        return None


def release_of(version: str) -> str:
    """ "2026.4.1" -> "2026.4": IR files are matched to the runtime release that wrote them."""
    return ".".join(version.split(".")[:2])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_problem(version_dir: Path, meta: ModelMetadata) -> str | None:
    """Why this version's int8 artifact cannot run here (None: it can).

    Refuses a record that does not match what is on disk or installed: a file
    missing or changed since export (sha256), or a runtime release other than the
    one that wrote it (IR files are checked against the release they were made and
    scored with, not trusted across releases).
    """
    record = meta.int8
    if record is None:
        return "the version has no int8 artifact (exported without one)"
    if record.status != "ready":
        return f"the version was published without int8: {record.reason}"
    if record.runtime != INT8_RUNTIME:
        return f"its int8 artifact is for runtime {record.runtime!r}, not {INT8_RUNTIME}"
    installed = runtime_version()
    if installed is None:
        return f"{INT8_RUNTIME} is not installed (pip install {INT8_RUNTIME})"
    if release_of(installed) != release_of(record.runtime_version or ""):
        return (
            f"its int8 artifact was made with {INT8_RUNTIME} {record.runtime_version}; "
            f"{installed} is installed (re-export the version, or install that release)"
        )
    for name in (INT8_XML, INT8_BIN):
        path = Path(version_dir) / name
        if name not in record.files:
            return f"metadata.json records no hash for {name}"
        if not path.is_file():
            return f"{name} is missing"
        if file_sha256(path) != record.files[name]:
            return f"{name} does not match the sha256 metadata.json records (changed since export)"
    return None


def compile_config(streams: int, threads: int = 0) -> dict[str, str]:
    """OpenVINO CPU settings: `streams` inference streams sharing `threads` (0: all cores).

    The layers left unquantized (the head, softmax, the mirror average) run in f32:
    OpenVINO would otherwise pick bf16 for them on CPUs with AMX.
    """
    config = {"NUM_STREAMS": str(streams), "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    return config


class Int8Model:
    """A compiled int8 artifact behind the SavedModel's call: uint8 `[n, s, s, 3]` ->
    float32 probabilities `[n, classes]`.

    With `streams` > 1 a batch is split into that many parts run at the same time,
    one per stream; a single synchronous request would use one stream only.
    Calls are serialised (the service's batcher has one worker thread; the lock keeps
    any other caller from sharing the requests).
    """

    def __init__(self, xml: Path, streams: int = DEFAULT_STREAMS, threads: int = 0) -> None:
        import openvino as ov

        core = ov.Core()
        self.streams = streams
        self._compiled: Any = core.compile_model(str(xml), "CPU", compile_config(streams, threads))
        self._requests = [self._compiled.create_infer_request() for _ in range(streams)]
        self._lock = threading.Lock()

    def __call__(self, pictures: np.ndarray) -> np.ndarray:
        with self._lock:
            parts = [p for p in np.array_split(pictures, self.streams) if len(p)]
            requests = self._requests[: len(parts)]
            for request, part in zip(requests, parts, strict=True):
                request.start_async({INPUT_NAME: part})
            for request in requests:
                request.wait()
            out = [np.array(r.get_tensor(OUTPUT_NAME).data, dtype=np.float32) for r in requests]
        return np.concatenate(out) if len(out) > 1 else out[0]


def load_int8(version_dir: Path, streams: int = DEFAULT_STREAMS, threads: int = 0) -> Int8Model:
    """Compile a version's int8 artifact; check it first with `artifact_problem`."""
    return Int8Model(Path(version_dir) / INT8_XML, streams, threads)
