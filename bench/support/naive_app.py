"""The naive baseline: what a typical tutorial serves, for the serving benchmark to beat.

One image per request, decoded with Pillow and predicted inside the handler
with `model.predict`-style single-image calls, no batching, no thread pool.
Run: NAIVE_MODEL=models/car_truck/1 uvicorn bench.support.naive_app:app --port 8001
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from fastapi import FastAPI, File, UploadFile
from PIL import Image

MODEL_DIR = Path(os.environ.get("NAIVE_MODEL", "models/car_truck/1"))
model = tf.saved_model.load(str(MODEL_DIR))
infer = model.signatures["serving_default"]
meta = json.loads((MODEL_DIR / "metadata.json").read_text())
size = int(meta["image_size"])
labels = meta["labels"]

app = FastAPI()


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict[str, object]:
    data = await file.read()
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size))
    batch = np.expand_dims(np.asarray(image, dtype=np.uint8), 0)
    probs = infer(images=tf.constant(batch))["probabilities"].numpy()[0]
    best = int(np.argmax(probs))
    return {"label": labels[best], "score": float(probs[best])}
