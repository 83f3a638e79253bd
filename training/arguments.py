"""The parser of `python -m training`: every command's flags, help texts and exit codes.

`fit`'s settings come from FitConfig (training.fit_flags); the other flags are
described here. Each command's parser carries the function that runs it
(training.commands) and whether it needs TensorFlow. No TensorFlow here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from modelstore.tf_quiet import VERBOSE_ENV, verbose_from_env
from training import commands
from training.config import FitConfig
from training.fit_flags import add_settings, flag_name
from training.prune import PINNED_ENV

Command = Callable[[argparse.Namespace], int]

EXIT_BAD_INPUT = 2
EXIT_GATE = 3
EXIT_WEIGHTS = 4
EXIT_ENGINE = 5
EXIT_DISK_FULL = 6

EXIT_CODES = """exit codes:
  0  ok: the new version is published
  1  unexpected failure (a bug: the traceback says where)
  2  bad arguments or data (checked before any work where possible)
  3  the quality gate refused the model (--min-accuracy, --promote-if-better): nothing published
  4  base weights unavailable (--base-weights)
  5  the Ray engine is unavailable (the `ray` extra is not installed, or the cluster
     cannot be reached)
  6  no space left on device (or quota exceeded): the message names the path and the
     free space there; nothing is published"""

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

PRUNE_EXIT_CODES = """exit codes:
  0  ok: the old versions are deleted (or, with --dry-run, listed)
  1  unexpected failure (a bug: the traceback says where)
  2  bad arguments: no such model, --keep below 1, a malformed --pinned"""


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


def _verbose_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose",
        action="store_true",
        default=verbose_from_env(),
        help=f"show TensorFlow's start-up and C++ log lines (default: off; {VERBOSE_ENV}=1 "
        "turns it on)",
    )


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or download messages")


def _models_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository")


def _model_arg(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:  # a list, in the order given
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
    # Not fit's setting: a published model can also run its int8 artifact.
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        default="auto",
        help="numeric precision the model runs in: auto (int8 for a version with an int8 "
        "artifact on CPUs with VNNI or AMX, else bf16 on CPUs with AMX or AVX512-BF16, fp16 "
        "on Tensor Core GPUs, else fp32) | fp32 | bf16 | fp16 | int8 (an error where the "
        "CPU or the version cannot run it)",
    )


def fit_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> FitConfig:
    """The validated FitConfig of `fit`'s flags; a bad value is a usage error naming its flag."""
    try:
        return FitConfig(**{k: v for k, v in vars(args).items() if k in FitConfig.model_fields})
    except ValidationError as exc:
        problems = [f"{_flag(err['loc'])} {err['input']!r}: {err['msg']}" for err in exc.errors()]
        parser.error("; ".join(problems))


def _flag(loc: tuple[int | str, ...]) -> str:
    return flag_name(str(loc[0])) if loc else "fit"


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

    def command(
        name: str, run: Command, tensorflow: bool, **kwargs: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, formatter_class=_Formatter, **kwargs)
        # `parser`: checks after parsing report errors the same way; `run`: the command.
        p.set_defaults(parser=p, run=run, tensorflow=tensorflow)
        return p

    p = command(
        "demo-data",
        commands.demo_data,
        False,
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
        commands.fit,
        True,
        help="train a model and publish its next version",
        description="Train a new head on cached frozen-VGG16 features and export "
        "models/NAME/<next version>/ (SavedModel, metadata.json, plots). Every flag but "
        "--data, --name, --models-dir, --quiet and --verbose is a setting recorded in the "
        "version's metadata.",
        epilog=f"{FIT_EXAMPLES}\n\n{EXIT_CODES}",
    )
    p.add_argument(
        "--data",
        required=True,
        type=_existing_dir,
        help="DIR/train/<class>/ + DIR/valid/<class>/, or DIR/<class>/ with --valid-split",
    )
    p.add_argument("--name", required=True, help="model name: models/NAME/<version>/")
    _models_dir_arg(p)
    p.add_argument(
        "--keep-versions",
        type=_positive_int,
        default=None,
        help="after publishing, prune NAME to its newest K versions, as `prune --keep K` "
        f"does (the served and ${PINNED_ENV} versions stay) (default: keep all)",
    )
    add_settings(p)  # one flag per FitConfig field, described by the field
    _quiet_arg(p)
    _verbose_arg(p)

    p = command(
        "evaluate",
        commands.evaluate,
        True,
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
    p.add_argument(
        "--ood",
        type=_existing_dir,
        default=None,
        help="folder of pictures of none of the model's classes: also report the unknown "
        "score's AUROC and flagged shares against --data (default: no)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pictures per model call")
    _quiet_arg(p)
    _verbose_arg(p)

    p = command(
        "predict",
        commands.predict,
        True,
        help="batch scoring: one JSON line per image on stdout",
        description="Score files and folders; unreadable files give an error line. "
        "With --engine ray: also storage prefixes (s3://...), into sharded JSONL under --output.",
    )
    _model_arg(p, several=True)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or URIs (ray)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pictures per model call")
    add_settings(p, ["engine", "ray_address", "ray_actors"])
    p.add_argument(
        "--output",
        default=None,
        help="--engine ray: folder or URI for part-NNNNN.jsonl shards (default: none, "
        "the local engine writes to stdout)",
    )
    p.add_argument("--shard-size", type=_positive_int, default=10_000, help="lines per shard (ray)")
    _quiet_arg(p)
    _verbose_arg(p)

    p = command(
        "model-card",
        commands.model_card,
        False,
        help="(re)write MODEL_CARD.md of a published version from its metadata",
        description="Write MODEL_CARD.md beside metadata.json (fit writes it too).",
    )
    p.add_argument("model", type=Path, help="models/NAME (latest) or models/NAME/N")
    p.add_argument(
        "--plots", action="store_true", help="also redraw the learning-curve and confusion PNGs"
    )

    p = command(
        "export-imagenet",
        commands.export_imagenet,
        True,
        help="export the full 1000-class VGG16 as vgg16_imagenet",
        description="Export VGG16 with its ImageNet top (224 px) and class index.",
    )
    _models_dir_arg(p)
    p.add_argument("--weights", default="imagenet", help="imagenet | none (tests) | PATH")
    _quiet_arg(p)
    _verbose_arg(p)

    p = command(
        "list-models",
        commands.list_models,
        False,
        help="published models and versions: accuracy, size, base weights, age",
        description="List every version under --models-dir from its metadata.json (no "
        "TensorFlow). `*` marks each model's newest readable version, the one the service "
        "loads; a version that cannot be read is listed as broken, with the reason.",
    )
    _models_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON array instead of a table")

    p = command(
        "prune",
        commands.prune,
        False,
        help="delete old versions of a model, keeping the newest and the pinned ones",
        description="Delete all but the newest --keep versions of models/NAME. Never deleted: "
        "the newest version, the newest readable one (what the service serves), and the "
        "versions pinned with --pinned or $VGGSVC_PINNED_VERSIONS. Version numbers are "
        "never reused after a prune (.last-published remembers the highest given).",
        epilog=PRUNE_EXIT_CODES,
    )
    p.add_argument("--name", required=True, help="the model whose versions to prune")
    _models_dir_arg(p)
    p.add_argument(
        "--keep", type=_positive_int, required=True, help="how many of the newest versions stay"
    )
    p.add_argument(
        "--pinned",
        default=os.environ.get(PINNED_ENV, ""),
        help=f"versions that stay whatever their age, as the service's {PINNED_ENV}: "
        "car_truck:1,car_truck:3 (default: $" + PINNED_ENV + ", else none)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted; delete nothing"
    )
    return parser
