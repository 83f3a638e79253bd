"""What runs on the Ray cluster for feature extraction: decode tasks and the base actors.

Kept apart from the driver (`training.cluster.engine`) and free of TensorFlow at
import time: decode workers import this module and never load TensorFlow; an
actor imports it on its first batch that needs the base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.cluster.connection import node_id
from training.features.inputs import prepare_file
from training.features.store import FeatureStore


def decode_batch(
    batch: dict[str, np.ndarray], store: FeatureStore, image_size: int
) -> dict[str, np.ndarray]:
    """Decode task: one row per file, with the picture's bytes only when the base must run.

    Input rows: `path`, `flip` (also compute the mirrored picture's features).
    """
    here = node_id()
    rows: dict[str, list[Any]] = {k: [] for k in ("path", "sha", "error", "picture", "todo")}
    for path, flip in zip(batch["path"], batch["flip"], strict=True):
        item = prepare_file(str(path), store, image_size, bool(flip))
        rows["path"].append(str(path))
        rows["sha"].append(item.sha or "")
        rows["error"].append(item.error or "")
        # Raw bytes, empty for hits and errors: a hit moves no pixels through the cluster.
        rows["picture"].append(item.picture.tobytes() if item.picture is not None else b"")
        rows["todo"].append(item.picture is not None)
    out = {k: np.asarray(v, dtype=object) for k, v in rows.items()}
    out["todo"] = np.asarray(rows["todo"], dtype=bool)
    out["flip"] = np.asarray(batch["flip"], dtype=bool)
    out["decode_node"] = np.asarray([here] * len(rows["path"]), dtype=object)
    return out


def probe_hardware() -> dict[str, Any]:
    """Ray task: what a base actor would see here: its GPU's compute capability, CPU flags, node.

    Scheduled with the base actors' resources (`RayFeatureEngine.feature_precision`),
    so it lands on the same kind of node and sees the same GPU. It imports TensorFlow
    (the GPU's capability is TensorFlow's view, as `configure_runtime` in the actors
    sees it); the driver decides the precision from the answer.
    """
    from modelstore.runtime import cpu_flags, gpu_compute_capability

    return {"gpu": gpu_compute_capability(), "flags": cpu_flags(), "node": node_id()}


class BaseActor:
    """Holds the frozen base; runs it on the misses of each batch and stores the features.

    TensorFlow is imported and the base built on the first batch with work, so a
    run whose files are all in the store never pays for it.
    """

    def __init__(
        self, weights: Any, image_size: int, layer: str, store: FeatureStore, precision: str
    ) -> None:
        self.weights, self.image_size, self.layer = weights, image_size, layer
        self.store, self.precision = store, precision
        self.model: Any = None
        self.node = node_id()

    def _build(self) -> Any:
        import keras
        import ray

        from modelstore.runtime import configure_runtime
        from training.model import feature_model, truncate_base

        # The effective precision resolved on a worker like this one (`probe_hardware`),
        # asked for explicitly: the store key says it, so the features must be computed in
        # it. A worker whose hardware differs from the probed one's and cannot run it fails
        # the job with PrecisionUnavailableError's message.
        configure_runtime(self.precision)
        weights = ray.get(self.weights) if isinstance(self.weights, ray.ObjectRef) else self.weights
        size = self.image_size
        full = keras.applications.VGG16(
            weights=None, include_top=False, input_shape=(size, size, 3)
        )
        base = truncate_base(full, self.layer)
        base.set_weights(weights)  # the driver's exact weights: same store key, same features
        base.trainable = False
        return feature_model(base, size)

    def _run(self, pictures: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(pictures), dtype=np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        todo = np.flatnonzero(batch["todo"])
        computed = np.zeros(len(batch["path"]), dtype=np.int64)
        if len(todo):
            if self.model is None:
                self.model = self._build()
            s = self.image_size
            pictures = np.stack(
                [np.frombuffer(batch["picture"][i], np.uint8).reshape(s, s, 3) for i in todo]
            )
            out = self._run(pictures)
            flips = [j for j, i in enumerate(todo) if batch["flip"][i]]
            out_flip = self._run(pictures[flips][:, :, ::-1, :]) if flips else out[:0]
            for j, i in enumerate(todo):
                self.store.put(str(batch["sha"][i]), False, out[j])
                computed[i] = 1
            for k, j in enumerate(flips):
                self.store.put(str(batch["sha"][todo[j]]), True, out_flip[k])
                computed[todo[j]] = 2
        return {
            "path": batch["path"],
            "sha": batch["sha"],
            "error": batch["error"],
            "computed": computed,
            "decode_node": batch["decode_node"],
            "base_node": np.asarray([self.node] * len(batch["path"]), dtype=object),
        }


def decode_for_scoring(batch: dict[str, np.ndarray], image_size: int) -> dict[str, np.ndarray]:
    """Decode task of batch scoring: a picture's bytes, or the error the local engine reports."""
    from imaging import ImageError, load_image
    from training.features.storage import read_location

    pictures, errors = [], []
    for location in batch["path"]:
        try:
            picture = load_image(read_location(str(location)), image_size)
            pictures.append(picture.tobytes())
            errors.append("")
        except (ImageError, OSError) as exc:  # the local engine catches exactly these
            pictures.append(b"")
            errors.append(str(exc))
    return {
        "path": np.asarray([str(p) for p in batch["path"]], dtype=object),
        "picture": np.asarray(pictures, dtype=object),
        "error": np.asarray(errors, dtype=object),
    }


class ScoringActor:
    """Holds one published model; turns each batch into the local engine's JSON lines."""

    def __init__(self, model_path: str, precision: str = "auto") -> None:
        from modelstore.loader import load_published
        from modelstore.runtime import configure_runtime

        # Ray hands each GPU actor its own GPU (CUDA_VISIBLE_DEVICES): the runtime finds it.
        self.model = load_published(Path(model_path), configure_runtime(precision))
        self.node = node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import json

        from training.predict import error_record, score_pictures, score_record

        s = self.model.image_size
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        lines = [""] * len(batch["path"])
        if ok:
            pictures = np.stack(
                [np.frombuffer(batch["picture"][i], np.uint8).reshape(s, s, 3) for i in ok]
            )
            probs, scores = score_pictures(self.model, pictures)
            for j, i in enumerate(ok):
                score = None if scores is None else float(scores[j])
                lines[i] = json.dumps(score_record(batch["path"][i], probs[j], self.model, score))
        for i, error in enumerate(batch["error"]):
            if error:
                lines[i] = json.dumps(error_record(batch["path"][i], str(error)))
        return {
            "line": np.asarray(lines, dtype=object),
            "ok": np.asarray([not e for e in batch["error"]], dtype=bool),
            "node": np.asarray([self.node] * len(lines), dtype=object),
        }
