"""The report pictures: asserted on the matplotlib objects, never on pixels."""

from __future__ import annotations

import struct
from pathlib import Path

from matplotlib.lines import Line2D

from training.reports.plots import (
    DPI,
    confusion_matrix_figure,
    learning_curves_figure,
    plot_confusion_matrix,
)

HISTORY = {
    "loss": [1.2, 0.5, 0.3, 0.2],
    "val_loss": [0.9, 0.6, 0.7, 0.8],
    "accuracy": [0.5, 0.8, 0.9, 1.0],
    "val_accuracy": [0.6, 0.75, 0.7, 0.7],
}


def test_learning_curves_title_names_model_and_version() -> None:
    fig = learning_curves_figure(HISTORY, "car_truck version 3", best_epoch=2)
    assert fig.get_suptitle() == "car_truck version 3: learning curves"


def test_learning_curves_epoch_ticks_are_whole_numbers() -> None:
    fig = learning_curves_figure(HISTORY, "m version 1", best_epoch=2)
    fig.canvas.draw()  # ticks are placed at draw time
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_learning_curves_best_epoch_marked_on_valid_curve() -> None:
    fig = learning_curves_figure(HISTORY, "m version 1", best_epoch=2)
    for ax, metric in zip(fig.axes, ("val_loss", "val_accuracy"), strict=True):
        marks = [
            line
            for line in ax.get_lines()
            if isinstance(line, Line2D) and "best epoch 2" in str(line.get_label())
        ]
        assert len(marks) == 1
        assert list(marks[0].get_xdata()) == [2]
        assert list(marks[0].get_ydata()) == [HISTORY[metric][1]]
        assert marks[0].get_marker() == "*"


def test_confusion_matrix_cells_show_count_and_row_percentage() -> None:
    fig = confusion_matrix_figure([[3, 1], [2, 6]], ["car", "truck"], "m version 1")
    ax = fig.axes[0]
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    # Row "car" has 4 pictures, row "truck" 8: the percentages are per row.
    assert cells == {(0, 0): "3\n75%", (0, 1): "1\n25%", (1, 0): "2\n25%", (1, 1): "6\n75%"}


def test_confusion_matrix_has_colorbar_and_accuracy_title() -> None:
    fig = confusion_matrix_figure([[3, 1], [2, 6]], ["car", "truck"], "m version 1")
    ax = fig.axes[0]
    assert ax.images[0].colorbar is not None
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert ax.get_title() == "m version 1\naccuracy 75.0% (9/12)"


def test_confusion_matrix_empty_row_has_no_percentage() -> None:
    fig = confusion_matrix_figure([[2, 0], [0, 0]], ["car", "truck"])
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0\n-", "0\n-", "0\n0%", "2\n100%"]


def test_plots_written_at_twice_default_resolution(tmp_path: Path) -> None:
    fig = confusion_matrix_figure([[1, 0], [0, 1]], ["a", "b"])
    assert fig.dpi == DPI == 200
    path = tmp_path / "cm.png"
    plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], path)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the PNG IHDR chunk
    inches = fig.get_size_inches()
    assert (width, height) == (round(inches[0] * DPI), round(inches[1] * DPI))
