"""What `fit` tells the person at the terminal: the settings it decided, why it stopped,
and what the published numbers mean. Plain text on stderr (the summary on stdout).

The epoch lines show Keras' training loss, which is label-smoothed when
`label_smoothing` > 0; the version's metadata publishes the plain log loss on the
validation pictures. Different numbers, so they carry different names:
`loss (smoothed)` in the epoch lines, `log_loss` in the summary. No TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _shown(value: Any) -> str:
    return (
        {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)
    )


def auto_settings_block(weights_kind: str, why: dict[str, dict[str, Any]]) -> str:
    """`auto settings (hed weights): base_layer block4_pool, ...` and one line per reason."""
    if not why:
        return "auto settings: none (every setting was given)"
    by_reason: dict[str, list[str]] = {}
    for name, choice in why.items():
        by_reason.setdefault(choice["reason"], []).append(f"{name} {_shown(choice['value'])}")
    lines = [f"auto settings ({weights_kind} weights):"]
    lines += [f"  {', '.join(values)}\n    why: {reason}" for reason, values in by_reason.items()]
    return "\n".join(lines)


def stopping_line(history: dict[str, list[float]], max_epochs: int, patience: int) -> str:
    """Why training stopped and which epoch's weights the head kept."""
    val_loss = history.get("val_loss", [])
    run = len(history.get("loss", []))
    if not val_loss:
        return f"training ran {run} epoch(s); no validation loss, the last epoch is kept"
    best = min(range(len(val_loss)), key=val_loss.__getitem__) + 1
    if run < max_epochs:
        why = (
            f"stopped after epoch {run} of {max_epochs}: validation loss did not improve "
            f"for {patience} epoch(s) (--patience)"
        )
    else:
        why = f"ran all {max_epochs} epoch(s) (--epochs)"
    return f"{why}; kept the weights of epoch {best} (lowest val_loss {val_loss[best - 1]:.4f})"


def smoothing_note(smoothing: float) -> str | None:
    if not smoothing:
        return None
    return (
        f"label smoothing {smoothing:g}: the epoch lines show the smoothed training loss; "
        "the published log_loss is the plain cross-entropy on the validation pictures"
    )


def summary_line(name: str, version: int, path: Path, metrics: dict[str, Any]) -> str:
    return (
        f"published {name} version {version} at {path}: validation accuracy "
        f"{metrics['accuracy']:.4f}, log_loss {metrics['loss']:.4f} ({metrics['count']} images)"
    )
