"""Shared test set-up: quiet TensorFlow, and helpers that make small images in memory."""

from __future__ import annotations

import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image


def encode(array: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    """Encode a uint8 array with Pillow (the tests make every image they use)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
