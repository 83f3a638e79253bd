"""Benchmark: the shared preprocessing function on big inputs.

Run: python -m bench.decode_speed [--repeats 30] [--size 128]
Writes bench/results/decode_speed.json. Compares `imaging.load_image` (JPEG draft
mode + reducing_gap) with a plain full decode + resize of the same bytes, and
reports how far their pixels differ.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.support.photos import encoded, photo_like
from imaging import load_image
from imaging.decode import RESAMPLE

RESULTS = Path(__file__).resolve().parent / "results" / "decode_speed.json"


def plain_decode(data: bytes, size: int) -> np.ndarray:
    """What a tutorial does: full decode, orient, convert, one resize."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(rgb.resize((size, size), RESAMPLE), dtype=np.uint8)


def time_ms(fn, repeats: int) -> list[float]:
    fn()  # warm the caches once
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    # JPEG decoding cost follows the compressed size (entropy decoding cannot be skipped,
    # draft mode only skips most of the IDCT), so 12-megapixel files of 1.5 to 5 MB are measured:
    # phone photos of that size are typically 2.5 to 5 MB.
    cases = {
        f"jpeg_12mp_q{q}_noise{n}": encoded(photo_like(4000, 3000, 1, noise=n), "JPEG", quality=q)
        for q, n in ((85, 3), (85, 6), (90, 6), (90, 12))
    }
    cases["png_1mp_1152x864"] = encoded(photo_like(1152, 864, 2), "PNG")
    rows: list[dict] = []
    for name, data in cases.items():
        ours = time_ms(lambda d=data: load_image(d, args.size, max_pixels=50_000_000), args.repeats)
        plain = time_ms(lambda d=data: plain_decode(d, args.size), max(5, args.repeats // 3))
        diff = np.abs(
            load_image(data, args.size, max_pixels=50_000_000).astype(int)
            - plain_decode(data, args.size).astype(int)
        )
        rows.append(
            {
                "case": name,
                "bytes": len(data),
                "load_image_median_ms": round(statistics.median(ours), 2),
                "load_image_p95_ms": round(sorted(ours)[int(0.95 * (len(ours) - 1))], 2),
                "plain_decode_median_ms": round(statistics.median(plain), 2),
                "speedup": round(statistics.median(plain) / statistics.median(ours), 1),
                "pixel_diff_mean": round(float(diff.mean()), 2),
                "pixel_diff_max": int(diff.max()),
            }
        )
    print(
        f"{'case':24} {'MB':>5} {'ours p50 ms':>12} {'plain p50 ms':>13} {'speedup':>8} {'mean |diff|':>12}"
    )
    for r in rows:
        print(
            f"{r['case']:24} {r['bytes'] / 1e6:5.1f} {r['load_image_median_ms']:12.1f} {r['plain_decode_median_ms']:13.1f}"
            f" {r['speedup']:7.1f}x {r['pixel_diff_mean']:12.2f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={os.cpu_count()}",
        "size": args.size,
        "repeats": args.repeats,
        "results": rows,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
