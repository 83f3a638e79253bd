"""Which "unknown" score tells a car/truck photo from a photo of anything else?

    PYTHONPATH=. python -m bench.unknown research   # -> bench/results/unknown_research.json
    PYTHONPATH=. python -m bench.unknown measure    # -> bench/results/unknown.json

`measure` fits a model with the defaults through `training.fit.fit` (which fits and
exports the chosen scorer), then through the published version only:
`training.evaluate` with `--ood` (AUROC, flagged shares at the calibrated threshold),
the car/truck accuracy of `serving_default` and of `predict_with_unknown` (the same
head: the same answers), the service's throughput at c=16 with and without the score
(one server, two copies of the version, rounds interleaved), and the latency of
`/explain` against `/predict` at c=1 (interleaved).

Protocol (honest by construction):

1. A model is fitted with the defaults (offline `hed` weights) on
   `../shared/data/cifar10-car-truck` by `training.fit.fit`; its head gives the
   softmax and energy candidates.
2. The frozen base runs once over train, valid and `../shared/data/cifar10-other`
   with several outputs (block3_pool, block4_pool), in fp32.
3. Every candidate is fitted on the training photos' features only. The choice is
   made without any other-class photo: a leave-one-class-out proxy on the training
   photos (fit on 80 % of one class, score the held-out 20 % of it against the
   held-out 20 % of the other class; mean AUROC of both directions).
4. Every candidate is then scored ONCE on `cifar10-other` (480 photos) against the
   car/truck validation photos: AUROC, and the share of other-class photos flagged
   at the threshold that flags 5 % of the validation photos. Nothing is tuned on it;
   all candidates are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# `../shared` beside the checkout (a worktree one level deeper looks two levels up).
SHARED = next(
    (p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if (p / "data").is_dir()),
    REPO.parent / "shared",
)
DATA = SHARED / "data" / "cifar10-car-truck"
OTHER = SHARED / "data" / "cifar10-other"
RESULTS = REPO / "bench" / "results"
CACHE = Path(os.environ.get("VGGSVC_BENCH_CACHE", Path(tempfile.gettempdir()) / "bench-unknown"))
LAYERS = ("block3_pool", "block4_pool")
PROXY_SEED = 7


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an outside photo > score of an inside one), ties counting half."""
    both = np.concatenate([inside, outside])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    # average ranks of ties
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    r_out = ranks[len(inside) :].sum()
    n_in, n_out = len(inside), len(outside)
    return float((r_out - n_out * (n_out + 1) / 2) / (n_in * n_out))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png") if p.is_file())


def extract(paths: list[Path], size: int, flip: bool = False) -> dict[str, np.ndarray]:
    """GAP and GMP of each layer in LAYERS, and block4_pool's whole map (the head's input)."""
    import keras

    from imaging.decode import load_image
    from training.model import VGGPreprocess, build_base

    base, _ = build_base("hed", size)
    outs = [base.get_layer(name).output for name in LAYERS]
    multi = keras.Model(base.input, outs)
    inputs = keras.Input((size, size, 3), dtype="uint8")
    model = keras.Model(inputs, multi(VGGPreprocess()(inputs)))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(paths), 64):
        batch = np.stack([load_image(p.read_bytes(), size) for p in paths[start : start + 64]])
        if flip:
            batch = batch[:, :, ::-1, :]
        maps = model.predict_on_batch(batch)
        for name, fmap in zip(LAYERS, maps, strict=True):
            fmap = np.asarray(fmap, np.float32)
            parts.setdefault(f"{name}/gap", []).append(fmap.mean(axis=(1, 2)))
            parts.setdefault(f"{name}/gmp", []).append(fmap.max(axis=(1, 2)))
            if name == "block4_pool":
                parts.setdefault("block4_pool/map", []).append(fmap)
    return {k: np.concatenate(v) for k, v in parts.items()}


def cached_features(name: str, paths: list[Path], size: int, flip: bool = False) -> dict:
    file = CACHE / f"{name}-{size}{'-flip' if flip else ''}.npz"
    if file.is_file():
        with np.load(file) as data:
            return dict(data)
    CACHE.mkdir(parents=True, exist_ok=True)
    feats = extract(paths, size, flip)
    np.savez(file, **feats)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool
    return feats


# ---- candidate scorers: fit(train features, labels) -> score(features) -----------------
Scorer = Callable[[np.ndarray], np.ndarray]


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(k: int) -> Callable[[np.ndarray, np.ndarray], Scorer]:
    def fit(bank: np.ndarray, labels: np.ndarray) -> Scorer:
        bank = l2(bank)

        def score(x: np.ndarray) -> np.ndarray:
            sims = l2(x) @ bank.T
            top = -np.sort(-sims, axis=1)[:, :k]
            return 1.0 - top[:, -1]  # cosine distance to the k-th nearest training photo

        return score

    return fit


def mahalanobis(per_class: bool, shrink: float) -> Callable[[np.ndarray, np.ndarray], Scorer]:
    def fit(bank: np.ndarray, labels: np.ndarray) -> Scorer:
        bank = l2(bank)
        classes = np.unique(labels)
        means = np.stack([bank[labels == c].mean(axis=0) for c in classes])
        centred = bank - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / len(bank)
        cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
        precision = np.linalg.inv(cov)
        if not per_class:
            means = means  # tied covariance, class-conditional means

        def score(x: np.ndarray) -> np.ndarray:
            x = l2(x)
            d = np.stack([np.einsum("nd,de,ne->n", x - m, precision, x - m) for m in means], 1)
            return d.min(axis=1)

        return score

    return fit


def transform(kind: str, feats: dict[str, np.ndarray]) -> np.ndarray:
    """A pooled representation named by `kind`, from `extract`'s features."""
    b3, b4 = feats["block3_pool/gap"], feats["block4_pool/gap"]
    if kind == "gap4":
        return b4
    if kind == "gap4+gmp4":
        return np.concatenate([l2(b4), l2(feats["block4_pool/gmp"])], axis=1)
    if kind == "sqrt-gap4":
        return np.sqrt(np.maximum(b4, 0))
    if kind == "gap3+gap4":
        return np.concatenate([l2(b3), l2(b4)], axis=1)
    if kind == "sqrt-gap3+gap4":
        return np.concatenate([l2(np.sqrt(b3)), l2(np.sqrt(np.maximum(b4, 0)))], axis=1)
    if kind == "gap3+gmp3+gap4+gmp4":
        return np.concatenate(
            [l2(b3), l2(feats["block3_pool/gmp"]), l2(b4), l2(feats["block4_pool/gmp"])], axis=1
        )
    if kind == "gap3":
        return b3
    raise ValueError(kind)


REPRESENTATIONS = (
    "gap4",
    "gap4+gmp4",
    "sqrt-gap4",
    "gap3",
    "gap3+gap4",
    "sqrt-gap3+gap4",
    "gap3+gmp3+gap4+gmp4",
)
METHODS: dict[str, Callable[[np.ndarray, np.ndarray], Scorer]] = {
    "knn1": knn(1),
    "knn5": knn(5),
    "knn10": knn(10),
    "maha-tied-0.1": mahalanobis(False, 0.1),
    "maha-tied-0.5": mahalanobis(False, 0.5),
}


def proxy_auroc(
    fit: Callable[[np.ndarray, np.ndarray], Scorer], x: np.ndarray, y: np.ndarray
) -> float:
    """Leave-one-class-out on the training photos only (no other-class photo involved)."""
    rng = random.Random(PROXY_SEED)
    held = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = list(np.flatnonzero(y == c))
        rng.shuffle(idx)
        held[idx[: len(idx) // 5]] = True
    results = []
    for c in np.unique(y):
        bank = x[(~held) & (y == c)]
        score = fit(bank, np.zeros(len(bank), int))
        inside, outside = score(x[held & (y == c)]), score(x[held & (y != c)])
        results.append(auroc(inside, outside))
    return float(np.mean(results))


def flagged_at(valid_scores: np.ndarray, other_scores: np.ndarray, rate: float = 0.05) -> dict:
    threshold = float(np.quantile(valid_scores, 1 - rate))
    # Honest in-distribution false alarms: calibrate on one half of valid, count on the other.
    rng = np.random.default_rng(0)
    order = rng.permutation(len(valid_scores))
    a, b = valid_scores[order[::2]], valid_scores[order[1::2]]
    cross = [
        float((b > np.quantile(a, 1 - rate)).mean()),
        float((a > np.quantile(b, 1 - rate)).mean()),
    ]
    return {
        "threshold": threshold,
        "other_flagged": round(float((other_scores > threshold).mean()), 4),
        "valid_flagged_cross_halves": round(float(np.mean(cross)), 4),
    }


def head_scores(model_dir: Path, maps: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Max softmax (as 1 - p) and energy (-logsumexp of logits) of the fitted head."""
    import keras

    from training.model import load_head

    head = load_head(model_dir)
    assert head is not None
    last = head.get_layer("probabilities")
    penultimate = keras.Model(head.input, last.input)
    kernel, bias = last.get_weights()
    out = {}
    for split, fmap in maps.items():
        logits = np.asarray(penultimate(fmap, training=False)) @ kernel + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        lse = logits.max(1) + np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))
        out[split] = {"msp": 1.0 - probs.max(1), "energy": -lse}
    return out


def research(args: argparse.Namespace) -> dict[str, Any]:
    from training.data import load_dataset
    from training.fit import fit

    data = load_dataset(DATA.resolve())
    size = 96  # the hed default (training.defaults)
    began = time.monotonic()
    other_paths = _files(OTHER.resolve())
    train = cached_features("train", data.train.paths, size)
    train_flip = cached_features("train", data.train.paths, size, flip=True)
    valid = cached_features("valid", data.valid.paths, size)
    other = cached_features("other", other_paths, size)
    y = np.asarray(data.train.labels)
    seconds_features = time.monotonic() - began

    with tempfile.TemporaryDirectory() as models:
        result = fit(
            DATA.resolve(),
            "car_truck",
            models,
            base_weights="hed",
            progress=False,
            cache_dir=str(CACHE / "fit-cache"),
        )
        heads = head_scores(
            result.path, {"valid": valid["block4_pool/map"], "other": other["block4_pool/map"]}
        )
        accuracy = result.metrics["accuracy"]

    candidates = []
    for rep in REPRESENTATIONS:
        x_train = transform(rep, train)
        x_bank = np.concatenate([x_train, transform(rep, train_flip)])
        y_bank = np.concatenate([y, y])
        xv, xo = transform(rep, valid), transform(rep, other)
        for method, fitter in METHODS.items():
            proxy = proxy_auroc(fitter, x_train, y)
            score = fitter(x_bank, y_bank)
            sv, so = score(xv), score(xo)
            row = {
                "representation": rep,
                "method": method,
                "proxy_auroc_train_loco": round(proxy, 4),
                "other_auroc": round(auroc(sv, so), 4),
                **flagged_at(sv, so),
            }
            candidates.append(row)
            print(json.dumps(row), flush=True)
    for method in ("msp", "energy"):
        sv, so = heads["valid"][method], heads["other"][method]
        row = {
            "representation": "head",
            "method": method,
            "proxy_auroc_train_loco": None,  # needs a head per held-out class: not comparable
            "other_auroc": round(auroc(sv, so), 4),
            **flagged_at(sv, so),
        }
        candidates.append(row)
        print(json.dumps(row), flush=True)
    ranked = [c for c in candidates if c["proxy_auroc_train_loco"] is not None]
    chosen = max(ranked, key=lambda c: c["proxy_auroc_train_loco"])
    return {
        "what": "unknown-score candidates: chosen on the training photos only "
        "(leave-one-class-out proxy), each scored once on cifar10-other vs car/truck valid",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), shared with other work",
        "image_size": size,
        "train_photos": len(y),
        "valid_photos": len(valid["block4_pool/gap"]),
        "other_photos": len(other_paths),
        "fit_validation_accuracy": accuracy,
        "feature_seconds": round(seconds_features, 1),
        "chosen_by_proxy": chosen,
        "candidates": candidates,
    }


def without_scorer(version: Path, target: Path) -> None:
    """A copy of `version` that the loader serves through `serving_default` alone: its
    metadata no longer records the scorer (the SavedModel is the same)."""
    import shutil

    shutil.copytree(version, target)
    meta = json.loads((target / "metadata.json").read_text())
    meta.pop("unknown")
    (target / "metadata.json").write_text(json.dumps(meta))


def accuracy_both_ways(version: Path, folder: Path) -> dict[str, Any]:
    """Accuracy on `folder` of serving_default and predict_with_unknown, and how far apart."""
    from imaging.decode import load_image
    from modelstore.loader import load_published
    from modelstore.runtime import configure_runtime
    from training.data import scan_split

    model = load_published(version, configure_runtime("auto"))
    _, split = scan_split(folder, model.labels)
    pictures = np.stack([load_image(p, model.image_size) for p in split.paths])
    plain = np.concatenate(
        [model.predict(pictures[i : i + 32]) for i in range(0, len(pictures), 32)]
    )
    scored = np.concatenate(
        [model.predict_with_unknown(pictures[i : i + 32])[0] for i in range(0, len(pictures), 32)]
    )
    truth = np.asarray(split.labels)
    return {
        "photos": len(truth),
        "serving_default_accuracy": round(float((plain.argmax(1) == truth).mean()), 4),
        "predict_with_unknown_accuracy": round(float((scored.argmax(1) == truth).mean()), 4),
        "same_answers": int((plain.argmax(1) == scored.argmax(1)).sum()),
        "max_probability_difference": float(np.abs(plain - scored).max()),
    }


def graph_cost(version: Path, precision: str, rounds: int = 5, batch: int = 16) -> dict[str, Any]:
    """Seconds per batch of `serving_default` and `predict_with_unknown`, called directly
    (no HTTP, interleaved): the score's own cost, without the service's noise."""
    from modelstore.loader import load_published
    from modelstore.runtime import configure_runtime

    model = load_published(version, configure_runtime(precision))
    size = model.image_size
    pictures = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    model.predict(pictures), model.predict_with_unknown(pictures)  # trace both
    plain, scored = [], []
    for _ in range(rounds):
        began = time.perf_counter()
        model.predict(pictures)
        plain.append(time.perf_counter() - began)
        began = time.perf_counter()
        model.predict_with_unknown(pictures)
        scored.append(time.perf_counter() - began)
    return {
        "precision": model.precision,
        "batch": batch,
        "serving_default_s": round(float(np.median(plain)), 4),
        "predict_with_unknown_s": round(float(np.median(scored)), 4),
        "ratio_with_over_without": round(float(np.median(scored) / np.median(plain)), 3),
    }


def serving_costs(
    models: Path, image: Path, rounds: int, requests: int, precision: str = "auto"
) -> dict[str, Any]:
    """Throughput at c=16 with and without the score, explain vs predict latency at c=1."""
    from bench.serving import load, server
    from bench.support.harness import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-unknown-serving-"))
    port = free_port()
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(REPO),
        VGGSVC_MODELS_DIR=str(models),
        VGGSVC_DEFAULT_MODEL="car_truck",
    )
    cmd = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--precision", precision]
    url = f"http://127.0.0.1:{port}"
    rows: dict[str, list[dict]] = {
        "scored_c16": [],
        "plain_c16": [],
        "explain_c1": [],
        "predict_c1": [],
    }
    with server(cmd, env, port, work / "server.log"):
        load(f"{url}/predict?model=car_truck", image, 4, 16)  # warm the connections
        load(f"{url}/explain?model=car_truck", image, 1, 4)  # trace the explain graph
        for _ in range(rounds):
            rows["scored_c16"].append(load(f"{url}/predict?model=car_truck", image, 16, requests))
            rows["plain_c16"].append(load(f"{url}/predict?model=plain", image, 16, requests))
            rows["explain_c1"].append(load(f"{url}/explain?model=car_truck", image, 1, 12))
            rows["predict_c1"].append(load(f"{url}/predict?model=car_truck", image, 1, 12))
    scored = float(np.median([r["throughput_rps"] for r in rows["scored_c16"]]))
    plain = float(np.median([r["throughput_rps"] for r in rows["plain_c16"]]))
    explain = float(np.median([r["p50_ms"] for r in rows["explain_c1"]]))
    predict = float(np.median([r["p50_ms"] for r in rows["predict_c1"]]))
    return {
        "precision": precision,
        "rounds": rows,
        "throughput_c16_with_score_rps": scored,
        "throughput_c16_without_score_rps": plain,
        "throughput_ratio_with_over_without": round(scored / plain, 3),
        "explain_p50_ms_c1": explain,
        "predict_p50_ms_c1": predict,
        "latency_ratio_explain_over_predict": round(explain / predict, 3),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench.support.photos import jpeg_from_cifar
    from training.evaluate import evaluate
    from training.fit import fit

    models = Path(tempfile.mkdtemp(prefix="bench-unknown-models-"))
    result = fit(
        DATA.resolve(), "car_truck", models, progress=False, cache_dir=str(CACHE / "fit-cache")
    )
    meta = result.metadata
    assert meta.unknown is not None
    report = evaluate(
        result.path, DATA.resolve() / "valid", progress=False, ood_dir=OTHER.resolve()
    )
    without_scorer(result.path, models / "plain" / "1")
    image = models.parent / "bench-unknown-photo.jpg"
    image.write_bytes(jpeg_from_cifar(640, 480))
    out: dict[str, Any] = {
        "what": "the exported scorer of a model fitted with the defaults, on cifar10-other "
        "(nobody tuned on it) against the car/truck validation photos",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), shared with other work",
        "scorer": meta.unknown.model_dump(),
        "fit_validation_accuracy": result.metrics["accuracy"],
        "detection": report["unknown_detection"],
        "accuracy": accuracy_both_ways(result.path, DATA.resolve() / "valid"),
    }
    print(json.dumps(out["detection"]), flush=True)
    if not args.skip_serving:
        out["serving"] = serving_costs(models, image, args.rounds, args.requests)
    print(f"models kept in {models} (python -m bench.unknown serving --models {models})")
    return out


def serving(args: argparse.Namespace) -> dict[str, Any]:
    """The serving figures again on the models `measure` left, at one precision."""
    from bench.support.photos import jpeg_from_cifar

    image = args.models.parent / "bench-unknown-photo.jpg"
    image.write_bytes(jpeg_from_cifar(640, 480))
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), shared with other work",
        "graph": graph_cost(args.models / "car_truck" / "1", args.precision),
        "service": serving_costs(args.models, image, args.rounds, args.requests, args.precision),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("research")
    m = sub.add_parser("measure")
    m.add_argument("--rounds", type=int, default=3, help="interleaved A/B rounds")
    m.add_argument("--requests", type=int, default=64, help="requests per c=16 round")
    m.add_argument("--skip-serving", action="store_true")
    v = sub.add_parser("serving")
    v.add_argument("--models", type=Path, required=True, help="the folder measure printed")
    v.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    v.add_argument("--rounds", type=int, default=3)
    v.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.command == "measure":
        out = measure(args)
        path = RESULTS / "unknown.json"
    elif args.command == "serving":
        out = serving(args)
        path = RESULTS / f"unknown_serving_{args.precision}.json"
    elif args.command == "research":
        out = research(args)
        path = RESULTS / "unknown_research.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
