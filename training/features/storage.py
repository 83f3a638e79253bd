"""Bytes on a local path or on any pyarrow filesystem (`s3://`, `gs://`, `hdfs://`, `file://`).

The feature store and the Ray batch-scoring job read and write through this
one small interface, so they run unchanged on a laptop folder and on object
storage. Local paths use plain `os` calls (no pyarrow needed: the local engine
works without the `ray` extra); URIs use `pyarrow.fs.FileSystem.from_uri`,
which pyarrow installs with `ray[data]`. Tested here on local paths and on
`file://` URIs only: S3 and GCS go through the same pyarrow calls but have not
been run against a real bucket.
"""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


class Storage:
    """`read`, `write_atomic`, `list_files`, `exists` and `size` under one root (a path or a URI)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self._fs: Any = None
        if is_uri(self.root):
            try:
                from pyarrow import fs as pafs
            except ImportError as exc:
                raise ValueError(
                    f'{self.root} is a storage URI, which needs pyarrow: pip install -e ".[ray]"'
                ) from exc
            self._fs, self._base = pafs.FileSystem.from_uri(self.root)
        else:
            self._base = self.root

    def path(self, *parts: str) -> str:
        """A location below the root, as this storage's filesystem names it."""
        joined = "/".join(p.strip("/") for p in parts if p)
        if self._fs is None:
            return str(Path(self._base, joined))
        return f"{self._base.rstrip('/')}/{joined}" if joined else self._base

    def read(self, path: str) -> bytes:
        """The bytes at `path` (from `self.path`); OSError (FileNotFoundError) when absent."""
        if self._fs is None:
            return Path(path).read_bytes()
        with self._fs.open_input_stream(path) as fh:
            return bytes(fh.read())

    def exists(self, path: str) -> bool:
        if self._fs is None:
            return os.path.isfile(path)
        from pyarrow import fs as pafs

        return bool(self._fs.get_file_info(path).type == pafs.FileType.File)

    def size(self, path: str) -> int | None:
        """The size in bytes of the file at `path`, or None when there is none."""
        if self._fs is None:
            try:
                return os.stat(path).st_size
            except OSError:
                return None
        from pyarrow import fs as pafs

        info = self._fs.get_file_info(path)
        return int(info.size) if info.type == pafs.FileType.File else None

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write under a temporary name, then rename: a reader sees all of it or nothing.

        Two writers of the same key never corrupt it: each renames a complete file of
        its own over the name, and the last one wins. On object storage the rename is
        a server-side copy, and an object only ever appears whole.
        """
        if self._fs is None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        parent = path.rsplit("/", 1)[0]
        self._fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
        with self._fs.open_output_stream(tmp) as fh:
            fh.write(data)
        self._fs.move(tmp, path)

    def list_uris(self) -> Iterator[str]:
        """Every visible object below a URI root, as full URIs (sorted); the root if a file."""
        if self._fs is None:
            raise ValueError(f"{self.root} is a local path; list it with os.walk")
        from pyarrow import fs as pafs

        scheme = self.root.split("://", 1)[0]
        info = self._fs.get_file_info(self._base)
        if info.type == pafs.FileType.File:
            yield self.root
            return
        if info.type != pafs.FileType.Directory:
            raise FileNotFoundError(f"{self.root}: no such file or prefix")
        found = self._fs.get_file_info(pafs.FileSelector(self._base, recursive=True))
        for entry in sorted(found, key=lambda e: e.path):
            rel = entry.path[len(self._base) :].strip("/")
            if entry.type == pafs.FileType.File and not any(
                part.startswith(".") for part in rel.split("/")
            ):
                yield f"{scheme}://{entry.path}"


@functools.lru_cache(maxsize=16)
def _filesystem(scheme_and_host: str) -> Any:
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(scheme_and_host)[0]


def read_location(location: str) -> bytes:
    """The bytes of a local file or of one object named by a full URI (filesystems cached)."""
    if not is_uri(location):
        return Path(location).read_bytes()
    scheme, rest = location.split("://", 1)
    if scheme == "file":
        return Path(rest).read_bytes()
    host = rest.split("/", 1)[0]
    with _filesystem(f"{scheme}://{host}").open_input_stream(rest) as fh:
        return bytes(fh.read())
