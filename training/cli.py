"""`python -m training <command>` (installed as `vggsvc-train`): train, score and list models.

Commands: demo-data, fit, evaluate, predict, model-card, export-imagenet,
list-models, prune; each has `--help` and is one function of training.commands.
`fit`'s flags are generated from FitConfig (training.fit_flags). Flags, paths
and the data layout are checked before TensorFlow is imported (training.preflight:
a bad value exits 2 within a second, naming the flag), and TensorFlow is imported
only by the commands that use it, without its start-up lines unless `--verbose`
(or VGGSVC_VERBOSE=1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modelstore.tf_quiet import import_tensorflow
from training import commands, preflight
from training.arguments import (
    EXIT_BAD_INPUT,
    EXIT_DISK_FULL,
    EXIT_ENGINE,
    EXIT_GATE,
    EXIT_WEIGHTS,
    build_parser,
    fit_config,
)
from training.cluster.connection import EngineUnavailableError, import_ray
from training.disk_space import disk_full_message, is_disk_full
from training.prune import PINNED_ENV, parse_pins

# What tests and callers import from here: the exit codes and the parser.
__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DISK_FULL",
    "EXIT_ENGINE",
    "EXIT_GATE",
    "EXIT_WEIGHTS",
    "build_parser",
    "fit_config",
    "main",
    "parse_args",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate every flag; `fit` gets `args.config`. Bad input exits 2 here."""
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        args.config = fit_config(args, args.parser)
    return args


def _check_before_tensorflow(args: argparse.Namespace) -> None:
    """What can be known without TensorFlow fails here, in a fraction of a second."""
    if args.command == "fit":
        cfg = args.config
        if cfg.engine == "ray":
            import_ray()  # not installed: exit 5 now, not after the data is read
        preflight.check_fit(args.data, args.name, args.models_dir, cfg.valid_split, cfg.seed)
        if args.keep_versions:
            parse_pins(os.environ.get(PINNED_ENV, ""))  # a malformed list fails now
    elif args.command == "evaluate":
        preflight.check_model_path(args.model)
    elif args.command == "predict":
        for model in args.model:  # --model may be repeated
            preflight.check_model_path(model)
        commands.check_predict_output(args.engine, args.output, len(args.model))
    elif args.command == "prune":
        parse_pins(args.pinned)
    elif args.command == "export-imagenet":
        preflight.check_models_dir(args.models_dir)


# (exception types, message prefix, exit code), most specific first.
Known = list[tuple[type[BaseException] | tuple[type[BaseException], ...], str, int]]


def _report(exc: Exception, known: Known, args: argparse.Namespace) -> int:
    """A known failure as one line on stderr and its exit code; anything else re-raised.

    A full disk is known too, whatever raised it (Python's ENOSPC, TensorFlow's
    writers): the path and its free space, exit 6, no traceback.
    """
    for kinds, prefix, code in known:
        if isinstance(exc, kinds):
            print(f"error: {prefix}{exc}", file=sys.stderr)
            return code
    if is_disk_full(exc):
        where = getattr(args, "models_dir", None) or getattr(args, "output", None) or "."
        print(f"error: {disk_full_message(exc, where)}", file=sys.stderr)
        return EXIT_DISK_FULL
    raise exc


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn known failures into a one-line message and an exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from modelstore.metadata import InvalidModelError
    from training.data import DataError

    known: Known = [
        (EngineUnavailableError, "engine: ", EXIT_ENGINE),
        ((DataError, InvalidModelError, FileNotFoundError, ValueError), "", EXIT_BAD_INPUT),
    ]
    try:
        _check_before_tensorflow(args)
        if not args.tensorflow:
            return int(args.run(args))
    except Exception as exc:
        return _report(exc, known, args)

    import_tensorflow(args.verbose)  # before anything else imports it: quiet unless --verbose
    import keras

    # Keras prints "Downloading data from ..." and its download bar through this switch. It
    # is process-wide: set it both ways, or an earlier `main(... --quiet)` in the same
    # process (a caller, a test) would silence the download notice of every later command.
    if getattr(args, "quiet", False):
        keras.config.disable_interactive_logging()
    else:
        keras.config.enable_interactive_logging()
    from modelstore.runtime import PrecisionUnavailableError
    from training.features.stream import MissingFeaturesError
    from training.gate import GateFailedError
    from training.model import WeightsUnavailableError

    known[:0] = [
        (GateFailedError, "quality gate: ", EXIT_GATE),
        (WeightsUnavailableError, "base weights: ", EXIT_WEIGHTS),
        (PrecisionUnavailableError, "--precision: ", EXIT_BAD_INPUT),
        (MissingFeaturesError, "", EXIT_BAD_INPUT),
    ]
    try:
        return int(args.run(args))
    except Exception as exc:
        return _report(exc, known, args)
