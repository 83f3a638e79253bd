"""Batch scoring on Ray Data: many files or storage prefixes in, sharded JSONL out.

    python -m training predict --model models/car_truck/3 --engine ray \
        --output scores/ photos/ s3://bucket/new-photos/

    locations (folders walked, prefixes listed) -> decode tasks (`imaging.load_image`
    at the model's size) -> actor pool holding the SavedModel (one GPU per actor when
    the cluster has GPUs) -> the driver writes `part-00000.jsonl`, `part-00001.jsonl`,
    ... (`--shard-size` lines each, each written whole then renamed) and `summary.json` last.

Every line is the record the local engine prints (`training.predict`): a
scored image, or `{"path": ..., "error": ...}` for a file that cannot be read or
decoded. Lines come in the order the cluster finishes them, not input order.
The model folder and the inputs must be readable from every node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelstore.layout import resolve_model_path
from modelstore.metadata import read_metadata
from training.cluster.connection import actor_resources, block_count, connect
from training.cluster.workers import ScoringActor, decode_for_scoring
from training.features.storage import Storage, is_uri
from training.predict import iter_files
from training.progress import ProgressBar

SUMMARY_FILE = "summary.json"


def iter_locations(inputs: list[str]) -> Iterator[str]:
    """Local files and folders (walked) and storage URIs (listed), as strings."""
    for item in inputs:
        if is_uri(item):
            yield from Storage(item).list_uris()
        else:
            yield from (str(p) for p in iter_files([Path(item)]))


class ShardWriter:
    """Lines into `part-NNNNN.jsonl` files of `shard_size` lines, each written atomically."""

    def __init__(self, out: str, shard_size: int) -> None:
        if shard_size < 1:
            raise ValueError(f"--shard-size must be at least 1, got {shard_size}")
        self.storage = Storage(out)
        if self.storage.exists(self.storage.path("part-00000.jsonl")):
            raise ValueError(f"{out} already holds scores (part-00000.jsonl); choose a new folder")
        self.shard_size = shard_size
        self.lines: list[str] = []
        self.shards: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            where = self.storage.path(f"part-{len(self.shards):05d}.jsonl")
            self.storage.write_atomic(where, "".join(f"{line}\n" for line in self.lines).encode())
            self.shards.append(where)
            self.lines = []


def score_with_ray(
    model_path: Path,
    inputs: list[str],
    out: str,
    batch_size: int = 32,
    actors: int | None = None,
    shard_size: int = 10_000,
    address: str | None = None,
    progress: bool = True,
    precision: str = "auto",
) -> dict[str, Any]:
    """Score every input on the cluster into sharded JSONL under `out`; returns the summary."""
    ray = connect(address)
    model_dir = resolve_model_path(Path(model_path)).resolve()
    image_size = read_metadata(model_dir).image_size
    writer = ShardWriter(out, shard_size)
    locations = list(iter_locations(inputs))
    pool, resources = actor_resources(ray, actors)
    bar = ProgressBar(len(locations), "predict", enabled=progress)
    scored = failed = 0
    nodes: set[str] = set()
    if locations:
        blocks = block_count(len(locations), batch_size, pool)
        ds = (
            ray.data.from_items([{"path": p} for p in locations], override_num_blocks=blocks)
            .map_batches(
                decode_for_scoring,
                fn_kwargs={"image_size": image_size},
                batch_size=batch_size,
                num_cpus=1,
            )
            .map_batches(
                ScoringActor,
                # Each worker resolves `precision` on its own hardware, as a local run would.
                fn_constructor_kwargs={"model_path": str(model_dir), "precision": precision},
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=pool),
                **resources,
            )
        )
        for batch in ds.iter_batches(batch_size=None):
            for line in batch["line"]:
                writer.write(str(line))
            ok = int(batch["ok"].sum())
            scored, failed = scored + ok, failed + len(batch["ok"]) - ok
            nodes.update(str(n) for n in batch["node"])
            bar.update(len(batch["ok"]))
    writer.flush()
    bar.close()
    summary = {
        "model": str(model_dir),
        "precision": precision,
        "scored": scored,
        "failed": failed,
        "shards": [Path(s).name for s in writer.shards],
        "engine": {"name": "ray", "nodes": len(nodes), "node_ids": sorted(nodes), "actors": pool},
    }
    storage = writer.storage
    storage.write_atomic(storage.path(SUMMARY_FILE), json.dumps(summary, indent=2).encode())
    return summary
