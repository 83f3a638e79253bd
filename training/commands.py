"""The commands of `python -m training`, one function each: parsed flags in, exit code out.

training.cli parses and checks the flags, imports TensorFlow for the commands
that need it and maps known failures to exit codes; each function here only
calls the module that does the work and says what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.prune import PrunePlan


def demo_data(args: argparse.Namespace) -> int:
    from training.demo_data import generate

    counts = generate(args.out, args.train, args.valid, args.size, args.seed)
    print(json.dumps({"out": str(args.out), "counts": counts}))
    return 0


def list_models(args: argparse.Namespace) -> int:
    from training.reports.listing import render_listing

    print(render_listing(args.models_dir, as_json=args.json))
    return 0


def fit(args: argparse.Namespace) -> int:
    from training.fit import fit as fit_model
    from training.fit_story import summary_line

    result = fit_model(args.data, args.name, args.models_dir, args.config, progress=not args.quiet)
    print(summary_line(args.name, result.version, result.path, result.metrics))
    if args.keep_versions:
        from training.prune import PINNED_ENV, parse_pins, prune_versions

        pins = parse_pins(os.environ.get(PINNED_ENV, ""))
        plan = prune_versions(args.models_dir, args.name, args.keep_versions, pins)
        _say_pruned(args.name, plan, dry_run=False)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate as evaluate_model

    report = evaluate_model(
        args.model,
        args.data,
        args.batch_size,
        progress=not args.quiet,
        precision=args.precision,
        ood_dir=args.ood,
    )
    if args.plot:
        from training.reports.plots import plot_confusion_matrix

        title = f"{report['model']} version {report['version']}"
        plot_confusion_matrix(report["confusion_matrix"], report["labels"], args.plot, title)
    print(json.dumps(report, indent=2))
    return 0


def check_predict_output(engine: str, output: str | None, models: int = 1) -> None:
    """--output goes with --engine ray, and only there; ray scores with one model
    (checked before any work)."""
    if engine == "ray" and output is None:
        raise ValueError("--engine ray writes sharded JSONL files: give --output FOLDER")
    if engine == "ray" and models > 1:
        raise ValueError("--engine ray scores with one --model at a time")
    if engine == "local" and output is not None:
        raise ValueError("--output is for --engine ray; the local engine writes to stdout")


def predict(args: argparse.Namespace) -> int:
    check_predict_output(args.engine, args.output, len(args.model))
    if args.engine == "ray":
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
    if len(args.model) > 1:
        from training.predict_many import predict_many_to_stream

        scored, failed = predict_many_to_stream(
            args.model,
            [Path(p) for p in args.paths],
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
    from training.predict import predict_to_stream

    scored, failed = predict_to_stream(
        args.model[0],
        [Path(p) for p in args.paths],
        sys.stdout,
        args.batch_size,
        progress=not args.quiet,
        precision=args.precision,
    )
    print(f"scored {scored} file(s), {failed} unreadable", file=sys.stderr)
    return 0


def model_card(args: argparse.Namespace) -> int:
    from training.reports.model_card import regenerate

    print(f"wrote {regenerate(args.model, plots=args.plots)}")
    return 0


def export_imagenet(args: argparse.Namespace) -> int:
    from training.imagenet import export_imagenet as export

    version, path = export(args.models_dir, args.weights)
    print(f"published vgg16_imagenet version {version} at {path}")
    return 0


def prune(args: argparse.Namespace) -> int:
    from training.prune import parse_pins, prune_versions

    plan = prune_versions(
        args.models_dir, args.name, args.keep, parse_pins(args.pinned), dry_run=args.dry_run
    )
    _say_pruned(args.name, plan, dry_run=args.dry_run)
    return 0


def _say_pruned(name: str, plan: PrunePlan, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    kept = ", ".join(f"{v} ({why})" for v, why in plan.kept.items()) or "none"
    print(f"{name}: kept {kept}")
    print(f"{name}: {verb} {', '.join(map(str, plan.deleted)) or 'nothing'}")
