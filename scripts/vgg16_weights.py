"""Put the Keras ImageNet VGG16 weights files into a Keras cache folder (the image build).

    python3 scripts/vgg16_weights.py --local weights --notop-dir /opt/keras/models \
        --top-dir /opt/keras-top/models

Each file is taken from the `--local` folder when it is there (an offline build), else
downloaded from Keras' own address; either way its MD5 must be the one Keras checks, so a
truncated or wrong file fails the build instead of the first training run. Standard library
only: it runs before any package is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import NamedTuple

BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"


class WeightsFile(NamedTuple):
    name: str
    md5: str  # the file_hash keras.applications.VGG16 passes to keras.utils.get_file


NOTOP = WeightsFile(
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"
)
TOP = WeightsFile("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b")


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def place(weights: WeightsFile, local: Path, target_dir: Path, base_url: str | None = None) -> str:
    """Copy (or download) one file into `target_dir`; returns where it came from."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / weights.name
    partial = target.with_name(target.name + ".part")
    source = local / weights.name
    if source.is_file():
        shutil.copyfile(source, partial)
        origin = str(source)
    else:
        origin = (base_url or BASE_URL) + weights.name
        with urllib.request.urlopen(origin, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    got = md5_file(partial)
    if got != weights.md5:
        partial.unlink()
        raise ValueError(f"{weights.name} from {origin}: MD5 {got}, expected {weights.md5}")
    partial.rename(target)
    return origin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--local", type=Path, required=True, help="folder checked first")
    parser.add_argument("--notop-dir", type=Path, required=True, help="for the file without top")
    parser.add_argument("--top-dir", type=Path, required=True, help="for the file with top")
    args = parser.parse_args(argv)
    try:
        for weights, target in ((NOTOP, args.notop_dir), (TOP, args.top_dir)):
            origin = place(weights, args.local, target)
            print(f"{weights.name}: from {origin}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(
            f"error: ImageNet VGG16 weights unavailable ({exc}). Offline, put both Keras files "
            "into weights/ or build with --build-arg VGGSVC_BASE_WEIGHTS=hed (or none).",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
