"""The feature store both engines share: atomic entries, key parts, pyarrow filesystems."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from training.features.store import FeatureStore

PARTS = {"weights": "none-abc", "decoding": "decode1-pil12", "size": "32px", "layer": "block5_pool"}
SHA = "ab" + "0" * 62


def test_feature_store_roundtrip_uses_the_cache_layout(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, PARTS, (1, 1, 4))
    store.put(SHA, False, np.arange(4, dtype=np.float32).reshape(1, 1, 4))
    folder = tmp_path / "none-abc-decode1-pil12-32px-block5_pool" / "ab"
    assert [p.name for p in folder.iterdir()] == [f"{SHA}.npy"]  # no temporary file left
    assert np.array_equal(store.get(SHA), np.arange(4).reshape(1, 1, 4))
    assert store.get(SHA, True) is None
    assert not store.has_all(SHA, flip=True) and store.has_all(SHA, flip=False)


def test_feature_store_wrong_shape_or_truncated_entry_is_a_miss(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, PARTS, (1, 1, 4))
    store.put(SHA, False, np.ones((1, 1, 4), np.float32))
    entry = Path(store.location(SHA))
    entry.write_bytes(entry.read_bytes()[:-3])
    assert store.get(SHA) is None
    with pytest.raises(ValueError, match="shape"):
        store.put(SHA, False, np.ones((2, 2), np.float32))


def test_feature_store_extra_key_part_is_a_separate_namespace(tmp_path: Path) -> None:
    fp32 = FeatureStore(tmp_path, PARTS, (4,))
    bf16 = FeatureStore(tmp_path, {**PARTS, "precision": "bf16"}, (4,))
    fp32.put(SHA, False, np.zeros(4, np.float32))
    assert bf16.get(SHA) is None
    assert bf16.namespace == fp32.namespace + "-bf16"


def test_feature_store_concurrent_writers_never_expose_a_partial_entry(tmp_path: Path) -> None:
    shape = (64, 64, 16)  # 256 KiB: large enough for a non-atomic write to be seen half-done
    store = FeatureStore(tmp_path, PARTS, shape)
    store.put(SHA, False, np.zeros(shape, np.float32))
    stop, seen_bad = threading.Event(), []

    def write(value: float) -> None:
        for _ in range(40):
            store.put(SHA, False, np.full(shape, value, np.float32))

    def read() -> None:
        while not stop.is_set():
            got = store.get(SHA)
            if got is None or np.unique(got).size != 1:
                seen_bad.append(got)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(float(k),)) for k in range(1, 4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert not seen_bad
    assert float(store.get(SHA)[0, 0, 0]) in (1.0, 2.0, 3.0)  # type: ignore[index]
    assert len(list(tmp_path.rglob("*"))) == 3  # namespace folder, ab/, one entry


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow comes with [ray]")
def test_feature_store_on_a_pyarrow_filesystem_uri(tmp_path: Path) -> None:
    uri_store = FeatureStore(f"file://{tmp_path}", PARTS, (4,))
    uri_store.put(SHA, True, np.full(4, 7.0, np.float32))
    uri_store.write_key_file()
    path_store = FeatureStore(tmp_path, PARTS, (4,))  # the same bytes, read as a local path
    assert np.array_equal(path_store.get(SHA, True), np.full(4, 7.0))
    assert (tmp_path / uri_store.namespace / "key.json").is_file()
    assert not list(tmp_path.rglob("*.tmp"))
