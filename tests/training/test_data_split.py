from __future__ import annotations

from pathlib import Path

import pytest

from training.data import DataError, load_dataset


def _make(root: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            (root / name / f"{i}.png").write_bytes(b"x")


def test_data_split_stratified_and_seeded(tmp_path: Path) -> None:
    _make(tmp_path, {"a": 20, "b": 10})
    first = load_dataset(tmp_path, valid_split=0.2, seed=3)
    again = load_dataset(tmp_path, valid_split=0.2, seed=3)
    assert first.valid.counts(first.classes) == {"a": 4, "b": 2}
    assert first.valid.paths == again.valid.paths
    assert not set(first.valid.paths) & set(first.train.paths)


def test_data_split_one_class_is_error(tmp_path: Path) -> None:
    _make(tmp_path, {"only": 5})
    with pytest.raises(DataError, match=str(tmp_path)):
        load_dataset(tmp_path, valid_split=0.2)


def test_data_split_missing_valid_split_is_error(tmp_path: Path) -> None:
    _make(tmp_path, {"a": 5, "b": 5})
    with pytest.raises(DataError, match="--valid-split"):
        load_dataset(tmp_path)


def test_data_without_drops_files_and_refuses_an_emptied_class(tmp_path: Path) -> None:
    _make(tmp_path, {"a": 5, "b": 5})
    data = load_dataset(tmp_path, valid_split=0.2, seed=0)
    one_a = next(p for p, y in zip(data.train.paths, data.train.labels, strict=True) if y == 0)
    smaller = data.without({one_a})
    assert one_a not in smaller.train.paths and len(smaller.train) == len(data.train) - 1
    assert data.train.paths.count(one_a) == 1  # the original is left as it was
    every_b = {p for p, y in zip(data.valid.paths, data.valid.labels, strict=True) if y == 1}
    with pytest.raises(DataError, match=r"class 'b' has no readable valid image in .*b"):
        data.without(every_b)
