"""The report pictures written beside each model version (matplotlib, no display needed).

`learning_curves_figure` and `confusion_matrix_figure` build the figures (tests look at
them); `plot_learning_curves` and `plot_confusion_matrix` write them as PNG files.
Figures are made with `matplotlib.figure.Figure`, not pyplot: no global state, so
nothing leaks between calls or threads, and no window is ever opened.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Twice matplotlib's 100 dpi: axis labels and cell numbers stay readable when the PNG
# is zoomed, printed or shown on a high-density screen.
DPI = 200
LEARNING_CURVES_FILE = "learning_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"


def learning_curves_figure(
    history: dict[str, list[float]], title: str = "", best_epoch: int | None = None
) -> Figure:
    """Loss and accuracy per epoch, train vs valid; `best_epoch` (1-based) is marked."""
    fig = Figure(figsize=(10, 4), dpi=DPI)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, name in ((metric, "train"), (f"val_{metric}", "valid")):
            values = history.get(key, [])
            ax.plot(range(1, len(values) + 1), values, marker=".", label=name)
        valid = history.get(f"val_{metric}", [])
        if best_epoch is not None and 1 <= best_epoch <= len(valid):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
            ax.plot(
                [best_epoch],
                [valid[best_epoch - 1]],
                linestyle="none",
                marker="*",
                markersize=14,
                color="crimson",
                label=f"best epoch {best_epoch} (weights restored)",
            )
        # Epochs are whole numbers; the default locator would tick 1.25, 1.5, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: learning curves" if title else "learning curves")
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix: list[list[int]], labels: list[str], title: str = "") -> Figure:
    """True (rows) vs predicted (columns): each cell its count and its share of the row.

    Colours follow the row shares (the recall of each class), so a small class
    that is always wrong looks as bad as a large one; the colour bar gives the scale.
    """
    counts = [[int(c) for c in row] for row in matrix]
    shares = [[c / sum(row) if sum(row) else 0.0 for c in row] for row in counts]
    total = sum(sum(row) for row in counts)
    correct = sum(counts[i][i] for i in range(len(counts)))
    size = max(5.0, 0.7 * len(labels) + 3)
    fig = Figure(figsize=(size + 1, size), dpi=DPI)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the true class (row)")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            text = f"{count}\n{100 * shares[i][j]:.0f}%" if sum(row) else f"{count}\n-"
            color = "white" if shares[i][j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color)
    accuracy = f"accuracy {correct / total:.1%} ({correct}/{total})" if total else "no images"
    ax.set_title(f"{title}\n{accuracy}" if title else accuracy)
    fig.tight_layout()
    return fig


def plot_learning_curves(
    history: dict[str, list[float]], path: Path, title: str = "", best_epoch: int | None = None
) -> None:
    """Write `learning_curves_figure(...)` as a PNG."""
    learning_curves_figure(history, title, best_epoch).savefig(path, dpi=DPI)


def plot_confusion_matrix(
    matrix: list[list[int]], labels: list[str], path: Path, title: str = ""
) -> None:
    """Write `confusion_matrix_figure(...)` as a PNG."""
    confusion_matrix_figure(matrix, labels, title).savefig(path, dpi=DPI)
