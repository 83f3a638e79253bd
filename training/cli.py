"""`python -m training <command>` (installed as `vggsvc-train`): train, score and list models.

Commands: demo-data, fit, evaluate, predict, export-imagenet, list-models; each
has `--help`. Flags are checked before any work (a bad value exits 2 at once,
naming the flag), and TensorFlow is imported only by the commands that use it,
without its start-up lines unless `--verbose` (or VGGSVC_VERBOSE=1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from modelstore.tf_quiet import VERBOSE_ENV, import_tensorflow, verbose_from_env

if TYPE_CHECKING:
    from training.config import FitConfig

EXIT_BAD_INPUT = 2
EXIT_GATE = 3
EXIT_WEIGHTS = 4
EXIT_ENGINE = 5

EXIT_CODES = """exit codes:
  0  ok: the new version is published
  1  unexpected failure (a bug: the traceback says where)
  2  bad arguments or data (checked before any work where possible)
  3  the quality gate refused the model (--min-accuracy, --promote-if-better): nothing published
  4  base weights unavailable (--base-weights)
  5  the Ray engine is unavailable (the `ray` extra is not installed, or the cluster
     cannot be reached)"""

FIT_EXAMPLES = """examples:
  # the synthetic demo data set, then a model trained on it
  python -m training demo-data data/demo
  python -m training fit --data data/demo --name car_truck
  # your own photos: one folder per class, 20 % of each held out for validation
  python -m training fit --data ~/photos --valid-split 0.2 --name pets
  # retraining job: publish only if >= 90 % accurate and better than the latest version
  python -m training fit --data /data --name car_truck --min-accuracy 0.9 --promote-if-better
  # what is published
  python -m training list-models"""

# Commands that never need TensorFlow: they must not pay its import (seconds) or its logs.
WITHOUT_TENSORFLOW = frozenset({"demo-data", "list-models", "model-card"})


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is two lines, not the whole usage block first."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see: {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default (unless the text already gives it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text:
            return text
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        shown = "off" if action.default is False else "%(default)s"
        return f"{text} (default: {shown})".lstrip()


def _existing_dir(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {value}")
    return path


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


PRECISION_HELP = (
    "numeric precision the frozen VGG16 runs in: auto (bf16 on CPUs with AMX or "
    "AVX512-BF16, fp16 on Tensor Core GPUs, else fp32) | fp32 | bf16 | fp16"
)


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help=PRECISION_HELP
    )


def _verbose_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose",
        action="store_true",
        default=verbose_from_env(),
        help=f"show TensorFlow's start-up and C++ log lines (default: off; {VERBOSE_ENV}=1 "
        "turns it on)",
    )


def _model_arg(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument(
            "--model",
            required=True,
            type=Path,
            action="append",
            help="models/NAME (latest) or models/NAME/N; repeat it to score with several "
            "models (models on one frozen base run it once per batch)",
        )
    else:
        p.add_argument(
            "--model", required=True, type=Path, help="models/NAME (latest) or models/NAME/N"
        )
    _precision_arg(p)


def _engine_args(p: argparse.ArgumentParser) -> None:
    """Where the batch work runs: this process, or a Ray cluster (training.cluster.engine)."""
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
        type=_positive_int,
        default=None,
        help="actors holding the model (default: one per GPU, else one per node)",
    )


def _int_or_auto(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _float_or_auto(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _on_off_auto(text: str) -> bool | str:
    choices: dict[str, bool | str] = {
        "auto": "auto",
        "on": True,
        "off": False,
        "true": True,
        "false": False,
    }
    if text.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected auto, on or off, got {text!r}")
    return choices[text.lower()]


def _switch(p: argparse.ArgumentParser, flag: str, default: bool | str, text: str) -> None:
    """`--flag [auto|on|off]`; the flag alone means on."""
    p.add_argument(
        flag,
        type=_on_off_auto,
        nargs="?",
        const=True,
        default=default,
        metavar="{auto,on,off}",
        help=f"{text}; the flag alone: on",
    )


def _fit_args(p: argparse.ArgumentParser) -> None:
    """One flag per FitConfig field (`--dropout` for `dropout`); defaults from FitConfig."""
    from training.config import FitConfig  # defaults and limits in one place, no TensorFlow

    d = FitConfig()
    p.add_argument(
        "--data",
        required=True,
        type=_existing_dir,
        help="DIR/train/<class>/ + DIR/valid/<class>/, or DIR/<class>/ with --valid-split",
    )
    p.add_argument("--name", required=True, help="model name: models/NAME/<version>/")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository")
    p.add_argument(
        "--valid-split",
        type=float,
        default=d.valid_split,
        help="fraction of each class held out (stratified, seeded) when DIR has no valid/ "
        "(default: none, DIR must have train/ and valid/)",
    )
    p.add_argument(
        "--base-weights",
        default=d.base_weights,
        help="auto (imagenet if obtainable, else hed) | imagenet | hed | none (tests) "
        "| PATH to a weights file",
    )
    p.add_argument(
        "--base-layer",
        default=d.base_layer,
        help="cut the frozen VGG16 at this layer, e.g. block3_pool or block4_pool "
        "(block5_pool: the whole convolutional base; auto: follows the weights, "
        "block4_pool for hed, block5_pool for imagenet)",
    )
    p.add_argument(
        "--image-size",
        type=_int_or_auto,
        default=d.image_size,
        help="input size, a multiple of 32 >= 32 (auto: 96 for hed, 128 for imagenet)",
    )
    p.add_argument(
        "--head",
        choices=["flatten", "gap"],
        default=d.head,
        help="flatten or global-average-pooling before the dense layer",
    )
    p.add_argument(
        "--width",
        type=_int_or_auto,
        default=d.width,
        help="hidden dense units, 0 for a linear head (auto: 256)",
    )
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout rate, in [0, 1)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="at most this many epochs, >= 1")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="head training batch")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam's, > 0")
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="early stopping on validation loss; the best epoch's weights are kept",
    )
    p.add_argument(
        "--label-smoothing",
        type=_float_or_auto,
        default=d.label_smoothing,
        help="train towards (1 - X) on the true class instead of one-hot targets, X in [0, 1) "
        "(auto: 0.2 for hed, 0 otherwise)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="makes CPU runs reproducible")
    _switch(
        p,
        "--flip-augment",
        d.flip_augment,
        "also train on (cached) features of horizontally mirrored images "
        "(auto: on for hed and imagenet)",
    )
    _switch(
        p,
        "--flip-tta",
        d.flip_tta,
        "the exported model averages each picture's and its mirror image's "
        "probabilities; the base does twice the work (auto: on for hed)",
    )
    _switch(
        p,
        "--warm-start",
        d.warm_start,
        "start the head from the latest version's when labels, base weights and "
        "head-shaping settings match; at most 3 epochs, batches of >= 128 (auto: off; "
        "faster retraining, slightly lower accuracy in our benchmark)",
    )
    p.add_argument(
        "--cache-dir",
        default=d.cache_dir,
        help="feature cache (default: $VGGSVC_FEATURE_CACHE_DIR, else "
        "~/.cache/vgg-transfer/features)",
    )
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=d.min_accuracy,
        help="gate: publish only if validation accuracy >= this fraction, e.g. 0.9 "
        "(default: no minimum)",
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
        help="pictures per base call, for either engine",
    )
    _engine_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _verbose_arg(p)


def fit_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> FitConfig:
    """The validated FitConfig of `fit`'s flags; a bad value is a usage error naming its flag."""
    from training.config import FitConfig

    try:
        return FitConfig(**{k: v for k, v in vars(args).items() if k in FitConfig.model_fields})
    except ValidationError as exc:
        problems = [f"{_flag(err['loc'])} {err['input']!r}: {err['msg']}" for err in exc.errors()]
        parser.error("; ".join(problems))


def _flag(loc: tuple[int | str, ...]) -> str:
    return "--" + str(loc[0]).replace("_", "-") if loc else "fit"


def build_parser() -> argparse.ArgumentParser:
    # Usage lines name the command the user typed: the installed one, or python -m.
    installed = Path(sys.argv[0]).name == "vggsvc-train"
    parser = _Parser(
        prog="vggsvc-train" if installed else "python -m training",
        description="Train a head on a frozen VGG16 base and publish versioned SavedModels.",
        epilog="`python -m training` and the installed `vggsvc-train` are the same program. "
        "COMMAND --help lists a command's flags.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, formatter_class=_Formatter, **kwargs)
        p.set_defaults(parser=p)  # checks after parsing report errors the same way
        return p

    p = command(
        "demo-data",
        help="generate a synthetic car-vs-truck data set",
        description="Draw cars and trucks with Pillow into OUT/{train,valid}/{car,truck}/.",
    )
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("--train", type=_positive_int, default=300, help="images per class in train/")
    p.add_argument("--valid", type=_positive_int, default=100, help="images per class in valid/")
    p.add_argument("--size", type=_positive_int, default=128, help="picture size in pixels")
    p.add_argument("--seed", type=int, default=0, help="the same seed draws the same pictures")

    p = command(
        "fit",
        help="train a model and publish its next version",
        description="Train a new head on cached frozen-VGG16 features and export "
        "models/NAME/<next version>/ (SavedModel, metadata.json, plots).",
        epilog=f"{FIT_EXAMPLES}\n\n{EXIT_CODES}",
    )
    _fit_args(p)

    p = command(
        "evaluate",
        help="accuracy, precision/recall, confusion matrix as JSON",
        description="Score a published model on a labelled folder; JSON on stdout.",
    )
    _model_arg(p)
    p.add_argument(
        "--data",
        required=True,
        type=_existing_dir,
        help="folder of class sub-folders (a data set root uses its valid/)",
    )
    p.add_argument(
        "--plot", type=Path, default=None, help="also write the confusion matrix PNG (default: no)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pictures per model call")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _verbose_arg(p)

    p = command(
        "predict",
        help="batch scoring: one JSON line per image on stdout",
        description="Score files and folders; unreadable files give an error line. "
        "With --engine ray: also storage prefixes (s3://...), into sharded JSONL under --output.",
    )
    _model_arg(p, several=True)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or URIs (ray)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pictures per model call")
    _engine_args(p)
    p.add_argument(
        "--output",
        default=None,
        help="--engine ray: folder or URI for part-NNNNN.jsonl shards (default: none, "
        "the local engine writes to stdout)",
    )
    p.add_argument("--shard-size", type=_positive_int, default=10_000, help="lines per shard (ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _verbose_arg(p)

    p = command(
        "model-card",
        help="(re)write MODEL_CARD.md of a published version from its metadata",
        description="Write MODEL_CARD.md beside metadata.json (fit writes it too).",
    )
    p.add_argument("model", type=Path, help="models/NAME (latest) or models/NAME/N")
    p.add_argument(
        "--plots", action="store_true", help="also redraw the learning-curve and confusion PNGs"
    )

    p = command(
        "export-imagenet",
        help="export the full 1000-class VGG16 as vgg16_imagenet",
        description="Export VGG16 with its ImageNet top (224 px) and class index.",
    )
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository")
    p.add_argument("--weights", default="imagenet", help="imagenet | none (tests) | PATH")
    _verbose_arg(p)

    p = command(
        "list-models",
        help="published models and versions: accuracy, size, base weights, age",
        description="List every version under --models-dir from its metadata.json (no "
        "TensorFlow). `*` marks each model's newest readable version, the one the service "
        "loads; a version that cannot be read is listed as broken, with the reason.",
    )
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository")
    p.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate every flag; `fit` gets `args.config`. Bad input exits 2 here."""
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        args.config = fit_config(args, args.parser)
    return args


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo-data":
        from training.demo_data import generate

        counts = generate(args.out, args.train, args.valid, args.size, args.seed)
        print(json.dumps({"out": str(args.out), "counts": counts}))
        return 0
    if args.command == "list-models":
        from training.reports.listing import render_listing

        print(render_listing(args.models_dir, as_json=args.json))
        return 0
    if args.command == "fit":
        from training.fit import fit

        result = fit(args.data, args.name, args.models_dir, args.config, progress=not args.quiet)
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
            from training.reports.plots import plot_confusion_matrix

            title = f"{report['model']} version {report['version']}"
            plot_confusion_matrix(report["confusion_matrix"], report["labels"], args.plot, title)
        print(json.dumps(report, indent=2))
        return 0
    if args.command == "predict" and args.engine == "ray":
        if args.output is None:
            raise ValueError("--engine ray writes sharded JSONL files: give --output FOLDER")
        if len(args.model) > 1:
            raise ValueError("--engine ray scores with one --model at a time")
        from training.cluster.scoring import score_with_ray

        summary = score_with_ray(
            args.model[0],
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
        from training.predict import predict_to_stream

        if args.output is not None:
            raise ValueError("--output is for --engine ray; the local engine writes to stdout")
        paths = [Path(p) for p in args.paths]
        if len(args.model) > 1:
            from training.predict_many import predict_many_to_stream

            scored, failed = predict_many_to_stream(
                args.model,
                paths,
                sys.stdout,
                args.batch_size,
                progress=not args.quiet,
                precision=args.precision,
            )
            print(
                f"scored {scored} file(s) with {len(args.model)} models, {failed} unreadable",
                file=sys.stderr,
            )
            return 0
        scored, failed = predict_to_stream(
            args.model[0],
            paths,
            sys.stdout,
            args.batch_size,
            progress=not args.quiet,
            precision=args.precision,
        )
        print(f"scored {scored} file(s), {failed} unreadable", file=sys.stderr)
        return 0
    if args.command == "model-card":
        from training.reports.model_card import regenerate

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
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from modelstore.metadata import InvalidModelError
    from training.data import DataError

    if args.command in WITHOUT_TENSORFLOW:
        try:
            return _run(args)
        except (DataError, InvalidModelError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT

    import_tensorflow(args.verbose)  # before anything else imports it: quiet unless --verbose
    from modelstore.runtime import PrecisionUnavailableError
    from training.cluster.connection import EngineUnavailableError
    from training.gate import GateFailedError
    from training.model import WeightsUnavailableError

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
