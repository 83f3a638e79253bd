"""A synthetic car-vs-truck data set drawn with Pillow (for the demo and the tests).

Cars: a long low body, a cabin on top, two wheels. Trucks: a tall cab, a
cargo box, three or four wheels. Random colours, positions, scales, facing,
backgrounds, occluding shapes and pixel noise keep the task from being
trivial. The same `seed` always gives the same files.

    python -m training demo-data data/demo --train 300 --valid 100 --size 128 --seed 0
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("car", "truck")
SUPERSAMPLE = 2  # draw at 2x, then shrink: smooth edges at every size


def _colour(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _background(rng: random.Random, size: int) -> Image.Image:
    """A vertical gradient (sky to ground) with a few random clutter shapes."""
    top, bottom = np.array(_colour(rng)), np.array(_colour(rng))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    rows = (top * (1 - t) + bottom * t).astype(np.uint8)
    img = Image.fromarray(np.repeat(rows, size, axis=1), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 3)):
        x, y = rng.uniform(0, size), rng.uniform(0, size * 0.5)  # clutter stays in the "sky"
        r = rng.uniform(0.03, 0.12) * size
        box = (x - r, y - r, x + r, y + r)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=_colour(rng))
        else:
            draw.rectangle(box, fill=_colour(rng))
    return img


def _wheel(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(20, 20, 20))
    draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=(150, 150, 150))


def _draw_car(draw: ImageDraw.ImageDraw, x: float, y: float, s: float, rng: random.Random) -> None:
    """Vehicle with ground line at y, front at x + length; s = length in pixels."""
    body_h = s * rng.uniform(0.18, 0.24)
    paint = _colour(rng, 30, 230)
    draw.rounded_rectangle((x, y - body_h - s * 0.06, x + s, y - s * 0.06), s * 0.05, fill=paint)
    # Cabin: a trapezoid on the middle of the body, windows in light glass colour.
    top = y - body_h - s * 0.06 - s * rng.uniform(0.14, 0.2)
    base_y = y - body_h - s * 0.06
    draw.polygon(
        [(x + s * 0.22, base_y), (x + s * 0.34, top), (x + s * 0.66, top), (x + s * 0.8, base_y)],
        fill=paint,
    )
    glass = (170, 200, 230)
    draw.polygon(
        [
            (x + s * 0.28, base_y),
            (x + s * 0.37, top + s * 0.03),
            (x + s * 0.63, top + s * 0.03),
            (x + s * 0.74, base_y),
        ],
        fill=glass,
    )
    r = s * 0.09
    for fx in (0.2, 0.8):
        _wheel(draw, x + s * fx, y - r, r)


def _draw_truck(
    draw: ImageDraw.ImageDraw, x: float, y: float, s: float, rng: random.Random
) -> None:
    """Cargo box at the back, tall cab at the front; s = length in pixels."""
    r = s * 0.075
    chassis = y - 1.6 * r
    box_h = s * rng.uniform(0.42, 0.55)
    cab_w = s * 0.24
    draw.rectangle(
        (x, chassis - box_h, x + s - cab_w - s * 0.02, chassis), fill=_colour(rng, 30, 230)
    )
    cab_h = box_h * rng.uniform(0.65, 0.85)
    cab = _colour(rng, 30, 230)
    draw.rectangle((x + s - cab_w, chassis - cab_h, x + s, chassis), fill=cab)
    draw.rectangle(
        (x + s - cab_w * 0.6, chassis - cab_h * 0.9, x + s - cab_w * 0.1, chassis - cab_h * 0.5),
        fill=(170, 200, 230),
    )
    draw.rectangle((x, chassis, x + s, chassis + r * 0.5), fill=(40, 40, 40))
    wheels = (0.12, 0.3, 0.85) if rng.random() < 0.5 else (0.1, 0.26, 0.62, 0.85)
    for fx in wheels:
        _wheel(draw, x + s * fx, y - r, r)


def draw_vehicle(kind: str, size: int, rng: random.Random) -> Image.Image:
    """One `size` x `size` RGB picture of a car or a truck."""
    big = size * SUPERSAMPLE
    img = _background(rng, big)
    draw = ImageDraw.Draw(img)
    length = big * rng.uniform(0.6, 0.92)
    x = rng.uniform(0.02 * big, big - length - 0.02 * big)
    y = rng.uniform(0.6 * big, 0.95 * big)
    (_draw_car if kind == "car" else _draw_truck)(draw, x, y, length, rng)
    if rng.random() < 0.5:  # facing left or right
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # a small occluder in front of the vehicle
        cx, cy, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(0.03, 0.08) * big
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_colour(rng))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(
        0, rng.uniform(2, 12), (size, size, 3)
    )
    return Image.fromarray(
        np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    )


def generate(out: Path, train: int = 300, valid: int = 100, size: int = 128, seed: int = 0) -> dict:
    """Write `out/{train,valid}/{car,truck}/{car,truck}_NNNNN.png`; returns the counts written."""
    if size < 16:
        raise ValueError(f"--size must be at least 16 pixels, got {size}")
    out = Path(out)
    counts: dict[str, dict[str, int]] = {}
    for split_index, (split, n) in enumerate((("train", train), ("valid", valid))):
        counts[split] = {}
        for class_index, kind in enumerate(CLASSES):
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            # One generator per (split, class): changing --valid never changes the train files.
            rng = random.Random(f"{seed}-{split_index}-{class_index}")
            for i in range(n):
                draw_vehicle(kind, size, rng).save(folder / f"{kind}_{i:05d}.png", optimize=False)
            counts[split][kind] = n
    return counts
