"""`python -m training <command>`: demo-data, fit, evaluate, predict, export-imagenet.

Every command has `--help`. Exit codes: 0 ok, 1 unexpected failure, 2 bad
arguments or data, 3 quality gate refused the model (nothing published),
4 base weights unavailable, 5 the Ray engine is unavailable (the `ray` extra
is not installed, or the cluster cannot be reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_GATE = 3
EXIT_WEIGHTS = 4
EXIT_ENGINE = 5


PRECISION_HELP = (
    "numeric precision the frozen VGG16 runs in: auto (bf16 on CPUs with AMX or "
    "AVX512-BF16, fp16 on Tensor Core GPUs, else fp32) | fp32 | bf16 | fp16 (default: auto)"
)


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help=PRECISION_HELP
    )


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, type=Path, help="models/NAME (latest) or models/NAME/N"
    )
    _precision_arg(p)


def _engine_args(p: argparse.ArgumentParser) -> None:
    """Where the batch work runs: this process, or a Ray cluster (training.ray_engine)."""
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help='local (this process) or ray (Ray Data; needs pip install -e ".[ray]")',
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster: host:6379 or ray://host:10001 "
        "(default $RAY_ADDRESS, else a local Ray started in-process)",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        help="actors holding the model (default: one per GPU, else one per node)",
    )


def _fit_args(p: argparse.ArgumentParser) -> None:
    from training.config import FitConfig  # defaults in one place, without TensorFlow

    d = FitConfig()
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="DIR/train/<class>/ + DIR/valid/<class>/, or DIR/<class>/ with --valid-split",
    )
    p.add_argument("--name", required=True, help="model name: models/NAME/<version>/")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="default: models")
    p.add_argument(
        "--valid-split",
        type=float,
        default=None,
        help="fraction of each class held out (stratified, seeded) when DIR has no valid/",
    )
    p.add_argument(
        "--base-weights",
        default=d.base_weights,
        help="auto (imagenet if obtainable, else hed) | imagenet | hed | none (tests) "
        "| PATH to a weights file (default: auto)",
    )
    p.add_argument(
        "--base-layer",
        default=d.base_layer,
        help="cut the frozen VGG16 at this layer, e.g. block3_pool or block4_pool "
        f"(default {d.base_layer}: the whole convolutional base)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help=f"input size, a multiple of 32 >= 32 (default {d.image_size})",
    )
    p.add_argument(
        "--head",
        choices=["flatten", "gap"],
        default=d.head,
        help="flatten or global-average-pooling before the dense layer",
    )
    p.add_argument("--width", type=int, default=d.width, help="hidden dense units, 0 for none")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="early stopping on validation loss; the best epoch's weights are kept",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="makes CPU runs reproducible")
    p.add_argument(
        "--flip-augment",
        action="store_true",
        help="also train on (cached) features of horizontally mirrored images",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default $TRAINING_CACHE_DIR or ~/.cache/vgg-transfer/features)",
    )
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="gate: publish only if validation accuracy >= this",
    )
    p.add_argument(
        "--promote-if-better",
        action="store_true",
        help="gate: publish only if it beats the latest version on the same valid data",
    )
    _precision_arg(p)
    p.add_argument(
        "--feature-batch-size",
        type=int,
        default=d.feature_batch_size,
        help=f"pictures per base call, for either engine (default {d.feature_batch_size})",
    )
    _engine_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a head on a frozen VGG16 base and publish versioned SavedModels.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo-data",
        help="generate a synthetic car-vs-truck data set",
        description="Draw cars and trucks with Pillow into OUT/{train,valid}/{car,truck}/.",
    )
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument(
        "--train", type=int, default=300, help="images per class in train/ (default 300)"
    )
    p.add_argument(
        "--valid", type=int, default=100, help="images per class in valid/ (default 100)"
    )
    p.add_argument("--size", type=int, default=128, help="picture size in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser(
        "fit",
        help="train a model and publish its next version",
        description="Train a new head on cached frozen-VGG16 features and export "
        "models/NAME/<next version>/ (SavedModel, metadata.json, plots).",
    )
    _fit_args(p)

    p = sub.add_parser(
        "evaluate",
        help="accuracy, precision/recall, confusion matrix as JSON",
        description="Score a published model on a labelled folder; JSON on stdout.",
    )
    _model_arg(p)
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="folder of class sub-folders (a data set root uses its valid/)",
    )
    p.add_argument("--plot", type=Path, default=None, help="also write the confusion matrix PNG")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser(
        "predict",
        help="batch scoring: one JSON line per image on stdout",
        description="Score files and folders; unreadable files give an error line. "
        "With --engine ray: also storage prefixes (s3://...), into sharded JSONL under --output.",
    )
    _model_arg(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or URIs (ray)")
    p.add_argument("--batch-size", type=int, default=32)
    _engine_args(p)
    p.add_argument(
        "--output", default=None, help="--engine ray: folder or URI for part-NNNNN.jsonl shards"
    )
    p.add_argument("--shard-size", type=int, default=10_000, help="lines per shard (ray)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser(
        "model-card",
        help="(re)write MODEL_CARD.md of a published version from its metadata",
        description="Write MODEL_CARD.md beside metadata.json (fit writes it too).",
    )
    p.add_argument("model", type=Path, help="models/NAME (latest) or models/NAME/N")
    p.add_argument(
        "--plots", action="store_true", help="also redraw the learning-curve and confusion PNGs"
    )

    p = sub.add_parser(
        "export-imagenet",
        help="export the full 1000-class VGG16 as vgg16_imagenet",
        description="Export VGG16 with its ImageNet top (224 px) and class index.",
    )
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--weights", default="imagenet", help="imagenet | none (tests) | PATH")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo-data":
        from training.demo_data import generate

        counts = generate(args.out, args.train, args.valid, args.size, args.seed)
        print(json.dumps({"out": str(args.out), "counts": counts}))
        return 0
    if args.command == "fit":
        from training.fit import FitConfig, fit

        fields = FitConfig.__dataclass_fields__
        cfg = FitConfig(**{k: v for k, v in vars(args).items() if k in fields})
        result = fit(args.data, args.name, args.models_dir, cfg, progress=not args.quiet)
        m = result.metrics
        print(
            f"published {args.name} version {result.version} at {result.path}: validation "
            f"accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} ({m['count']} images)"
        )
        return 0
    if args.command == "evaluate":
        from training.evaluate import evaluate

        report = evaluate(
            args.model,
            args.data,
            args.batch_size,
            progress=not args.quiet,
            precision=args.precision,
        )
        if args.plot:
            from training.plots import plot_confusion_matrix

            title = f"{report['model']} version {report['version']}"
            plot_confusion_matrix(report["confusion_matrix"], report["labels"], args.plot, title)
        print(json.dumps(report, indent=2))
        return 0
    if args.command == "predict" and args.engine == "ray":
        if args.output is None:
            raise ValueError("--engine ray writes sharded JSONL files: give --output FOLDER")
        from training.ray_predict import score_with_ray

        summary = score_with_ray(
            args.model,
            args.paths,
            args.output,
            args.batch_size,
            args.ray_actors,
            args.shard_size,
            args.ray_address,
            progress=not args.quiet,
            precision=args.precision,
        )
        print(
            f"scored {summary['scored']} file(s), {summary['failed']} unreadable, into "
            f"{len(summary['shards'])} shard(s) under {args.output} "
            f"({summary['engine']['nodes']} Ray node(s))",
            file=sys.stderr,
        )
        return 0
    if args.command == "predict":
        from training.batch_predict import predict_to_stream

        if args.output is not None:
            raise ValueError("--output is for --engine ray; the local engine writes to stdout")
        paths = [Path(p) for p in args.paths]
        scored, failed = predict_to_stream(
            args.model,
            paths,
            sys.stdout,
            args.batch_size,
            progress=not args.quiet,
            precision=args.precision,
        )
        print(f"scored {scored} file(s), {failed} unreadable", file=sys.stderr)
        return 0
    if args.command == "model-card":
        from training.model_card import regenerate

        print(f"wrote {regenerate(args.model, plots=args.plots)}")
        return 0
    if args.command == "export-imagenet":
        from training.imagenet import export_imagenet

        version, path = export_imagenet(args.models_dir, args.weights)
        print(f"published vgg16_imagenet version {version} at {path}")
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn known failures into a one-line message and an exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from modelstore.metadata import InvalidModelError
    from modelstore.runtime import PrecisionUnavailableError
    from training.data import DataError
    from training.gate import GateFailedError
    from training.model import WeightsUnavailableError
    from training.ray_cluster import EngineUnavailableError

    try:
        return _run(args)
    except GateFailedError as exc:
        print(f"error: quality gate: {exc}", file=sys.stderr)
        return EXIT_GATE
    except WeightsUnavailableError as exc:
        print(f"error: base weights: {exc}", file=sys.stderr)
        return EXIT_WEIGHTS
    except PrecisionUnavailableError as exc:
        print(f"error: --precision: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EngineUnavailableError as exc:
        print(f"error: engine: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    except (DataError, InvalidModelError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
