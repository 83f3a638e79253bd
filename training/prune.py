"""`python -m training prune`: delete old versions of a model, never one that is served.

Kept, whatever --keep says: the newest version; the newest *readable* version
(the service serves the newest version whose metadata reads, so when the newest
is broken the one before it is what answers requests); and the pinned versions
(the service's VGGSVC_PINNED_VERSIONS). Deleting never frees a version number:
`.last-published` remembers the highest number given (modelstore.layout).

A version is first renamed to a hidden draft name (the service ignores hidden
folders, and a crash leaves a stale draft the next publisher removes), then
deleted, all under the model's publish lock, so a concurrent `fit` never picks
its number while a prune runs. No TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from modelstore.layout import (
    DRAFT_PREFIX,
    LAST_PUBLISHED_FILE,
    check_model_name,
    list_versions,
    publish_lock,
)
from modelstore.metadata import InvalidModelError, read_metadata

# The service's setting: prune keeps what the service is told to keep loaded.
PINNED_ENV = "VGGSVC_PINNED_VERSIONS"


@dataclass
class PrunePlan:
    kept: dict[int, str] = field(default_factory=dict)  # version -> why it stays
    deleted: list[int] = field(default_factory=list)


def parse_pins(text: str) -> dict[str, set[int]]:
    """`"car_truck:1, car_truck:3,other:2"` -> `{"car_truck": {1, 3}, "other": {2}}`."""
    pins: dict[str, set[int]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, version = item.rpartition(":")
        if not sep or not name or not (version.isascii() and version.isdigit()):
            raise ValueError(f"--pinned entries look like car_truck:2, got {item!r}")
        pins.setdefault(name, set()).add(int(version))
    return pins


def _newest_readable(model_dir: Path, versions: list[int]) -> int | None:
    for version in reversed(versions):
        try:
            read_metadata(model_dir / str(version))
        except InvalidModelError:
            continue
        return version
    return None


def plan_prune(model_dir: Path, keep: int, pinned: set[int]) -> PrunePlan:
    """Which versions stay (and why) and which go; changes nothing."""
    versions = list_versions(model_dir)
    plan = PrunePlan()
    served = _newest_readable(model_dir, versions)
    for version in reversed(versions):
        reasons = []
        if version in versions[-keep:]:
            reasons.append("newest" if version == versions[-1] else f"among the newest {keep}")
        if version == served:
            reasons.append("served")
        if version in pinned:
            reasons.append("pinned")
        if reasons:
            plan.kept[version] = ", ".join(reasons)
        else:
            plan.deleted.append(version)
    plan.deleted.sort()
    return plan


def prune_versions(
    models_dir: Path, name: str, keep: int, pins: dict[str, set[int]], dry_run: bool = False
) -> PrunePlan:
    """Delete all but the newest `keep` versions of `name` (and the served and pinned ones)."""
    if keep < 1:
        raise ValueError("--keep must be at least 1: the newest version always stays")
    model_dir = Path(models_dir) / check_model_name(name)
    if not list_versions(model_dir):
        raise ValueError(f"{model_dir} holds no published version of {name!r}")
    if dry_run:
        return plan_prune(model_dir, keep, pins.get(name, set()))
    with publish_lock(model_dir):
        plan = plan_prune(model_dir, keep, pins.get(name, set()))
        last = model_dir / LAST_PUBLISHED_FILE
        if plan.deleted and not last.is_file():  # a repository older than the marker
            last.write_text(f"{max(plan.kept)}\n")
        for version in plan.deleted:
            doomed = model_dir / f"{DRAFT_PREFIX}pruned-{version}-{uuid.uuid4().hex}"
            os.rename(model_dir / str(version), doomed)
            shutil.rmtree(doomed)
    return plan
