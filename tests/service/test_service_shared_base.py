"""Many heads on one frozen base: same answers as whole models, one base pass per batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fastapi.testclient import TestClient

from bench.support.harness import export_tiny
from imaging.decode import load_image
from service.app import create_app
from tests.conftest import encode
from tests.service.conftest import SIZE, files, make_settings, publish_copy
from tests.service.test_service_metrics import samples, value

BASE_SEED = 21


@pytest.fixture(scope="session")
def heads_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three heads on one random base (one averaging mirror images), one on another base."""
    store = tmp_path_factory.mktemp("heads")
    export_tiny(store, "cars", ["car", "van"], SIZE, seed=BASE_SEED, head_seed=1)
    export_tiny(store, "trucks", ["a", "b", "c"], SIZE, seed=BASE_SEED, head_seed=2, flip_tta=True)
    export_tiny(store, "cars_next", ["car", "van"], SIZE, seed=BASE_SEED, head_seed=3)
    export_tiny(store, "other", ["x", "y"], SIZE, seed=BASE_SEED + 1)
    return store


@pytest.fixture
def heads_dir(heads_store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name in ("cars", "trucks", "other"):
        (root / name).mkdir(parents=True)
        publish_copy(heads_store, root, name, 1, 1)
    return root


@pytest.fixture(scope="session")
def pictures() -> list[bytes]:
    rng = np.random.default_rng(24)
    # Not symmetric left-right: the mirror images' features differ from the pictures'.
    return [encode(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for _ in range(3)]


def whole_answers(version_dir: Path, pictures: list[bytes]) -> np.ndarray:
    """The complete SavedModel's own answers (what TF Serving would say)."""
    saved = tf.saved_model.load(str(version_dir))
    batch = tf.constant(np.stack([load_image(p, SIZE) for p in pictures]))
    return saved.signatures["serving_default"](images=batch)["probabilities"].numpy()


def by_class_id(prediction: dict) -> list[float]:  # type: ignore[type-arg]
    return [c["score"] for c in sorted(prediction["classes"], key=lambda c: c["class_id"])]


def answers(body: dict) -> np.ndarray:  # type: ignore[type-arg]
    return np.array([by_class_id(p) for p in body["predictions"]])


def shared_settings(models_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    # The service's own padding buckets; fp32 for the 1e-5 parity.
    return make_settings(models_dir, max_images_per_request=8, **overrides)


def test_shared_base_answers_equal_whole_models(heads_dir: Path, pictures: list[bytes]) -> None:
    upload = files(*[(f"{i}.png", p) for i, p in enumerate(pictures)])
    with TestClient(create_app(shared_settings(heads_dir))) as client:
        listing = client.get("/models").json()
        served = {m["name"]: m["serving"][0] for m in listing["models"]}
        single = {name: client.post(f"/predict?model={name}", files=upload) for name in served}
        together = client.post("/predict?models=cars,trucks,other", files=upload)
    assert {name: s["served"] for name, s in served.items()} == dict.fromkeys(
        ("cars", "other", "trucks"), "shared-base"
    )
    # cars and trucks run on one base; other's base has other weights.
    assert served["cars"]["base"] == served["trucks"]["base"] != served["other"]["base"]
    bases = {b["base"]: b["versions"] for b in listing["shared_bases"]}
    assert bases[served["cars"]["base"]] == ["cars:1", "trucks:1"]
    assert together.status_code == 200, together.text
    results = together.json()["results"]
    assert [r["model"] for r in results] == ["cars", "trucks", "other"]
    assert together.headers["X-Model-Name"] == "cars,trucks,other"
    for name, result in zip(("cars", "trucks", "other"), results, strict=True):
        expected = whole_answers(heads_dir / name / "1", pictures)
        assert single[name].status_code == 200
        assert np.max(np.abs(answers(single[name].json()) - expected)) <= 1e-5, name
        assert np.max(np.abs(answers(result) - expected)) <= 1e-5, name
        assert [p["filename"] for p in result["predictions"]] == ["0.png", "1.png", "2.png"]


def test_shared_base_runs_the_base_once_for_several_models(
    heads_dir: Path, pictures: list[bytes]
) -> None:
    with TestClient(create_app(shared_settings(heads_dir))) as client:
        base = client.get("/models").json()["models"][0]["serving"][0]["base"]
        before = samples(client)
        response = client.post("/predict?models=cars,trucks", content=pictures[0])
        after = samples(client)
    assert response.status_code == 200

    def moved(name: str) -> float:
        return value(after, name, base=base) - value(before, name, base=base)

    assert moved("vggsvc_base_passes_total") == 1
    # One picture, and its mirror image for the head that averages mirrors.
    assert moved("vggsvc_base_images_total") == 2
    assert moved("vggsvc_head_calls_total") == 2
    assert value(after, "vggsvc_base_heads", base=base) == 2
    for model in ("cars", "trucks"):  # per-version series keep counting model calls
        calls = "vggsvc_model_calls_total"
        labels = {"model": model, "version": "1"}
        assert value(after, calls, **labels) - value(before, calls, **labels) == 1


def test_shared_base_off_serves_every_version_whole(heads_dir: Path, pictures: list[bytes]) -> None:
    settings = shared_settings(heads_dir, share_base=False)
    with TestClient(create_app(settings)) as client:
        listing = client.get("/models").json()
        response = client.post("/predict?models=trucks,cars", content=pictures[1])
    assert {m["served"] for m in listing["models"]} == {"whole"}
    assert listing["shared_bases"] == []
    assert response.status_code == 200
    expected = whole_answers(heads_dir / "trucks" / "1", pictures[1:2])
    assert np.max(np.abs(answers(response.json()["results"][0]) - expected)) <= 1e-5


def test_shared_base_old_export_or_damaged_head_is_served_whole(
    heads_dir: Path, pictures: list[bytes]
) -> None:
    legacy = heads_dir / "legacy" / "1"
    shutil.copytree(heads_dir / "cars" / "1", legacy)
    meta = json.loads((legacy / "metadata.json").read_text())
    del meta["base_identity"], meta["head"]  # as exported before base identities
    (legacy / "metadata.json").write_text(json.dumps(meta))
    damaged = heads_dir / "damaged" / "1"
    shutil.copytree(heads_dir / "cars" / "1", damaged)
    (damaged / "head" / "saved_model.pb").write_bytes(b"not a protobuf")
    with TestClient(create_app(shared_settings(heads_dir))) as client:
        info = {m["name"]: m for m in client.get("/models").json()["models"]}
        response = client.post("/predict?models=legacy,damaged,cars", content=pictures[2])
    assert info["legacy"]["served"] == "whole"
    assert "no base identity" in info["legacy"]["serving"][0]["whole_reason"]
    # Its complete SavedModel still serves.
    assert info["damaged"]["served"] == "whole"
    assert "head cannot be loaded" in info["damaged"]["serving"][0]["whole_reason"]
    assert info["cars"]["served"] == "shared-base"
    legacy_answer, damaged_answer, cars_answer = (answers(r) for r in response.json()["results"])
    assert np.max(np.abs(legacy_answer - cars_answer)) <= 1e-5  # the same model, both ways
    assert np.max(np.abs(damaged_answer - cars_answer)) <= 1e-5


def test_shared_base_hot_reload_swaps_heads_and_keeps_the_base(
    heads_dir: Path, heads_store: Path, pictures: list[bytes]
) -> None:
    with TestClient(create_app(shared_settings(heads_dir))) as client:
        repo = client.app.state.service.repository  # type: ignore[attr-defined]
        old = repo.get("cars")
        base = old.batcher.batcher.base
        publish_copy(heads_store, heads_dir, "cars_next", 1, 2)  # moved in as cars v2
        shutil.move(heads_dir / "cars_next" / "2", heads_dir / "cars" / "2")
        assert repo.reload()["cars"] == [2]
        new = repo.get("cars")
        assert new.served == "shared-base" and new.base == old.base
        assert new.batcher.batcher.base is base  # the base was not loaded again
        assert old.model.released and not base.released
        response = client.post("/predict?model=cars", content=pictures[0])
        assert response.headers["X-Model-Version"] == "2"
        expected = whole_answers(heads_store / "cars_next" / "1", pictures[:1])
        assert np.max(np.abs(answers(response.json()) - expected)) <= 1e-5
    assert base.released  # its last version left with the app


def test_predict_models_bad_lists_are_refused(heads_dir: Path, pictures: list[bytes]) -> None:
    settings = shared_settings(heads_dir, max_models_per_request=2)
    bad = [
        ("models=cars&model=cars", 422, "not both"),
        ("models=,,", 422, "names no model"),
        ("models=cars,nope", 404, "nope"),
        ("models=cars,trucks,other", 413, "limit is 2"),
    ]
    with TestClient(create_app(settings)) as client:
        for query, status, words in bad:
            response = client.post(f"/predict?{query}", content=pictures[0])
            assert response.status_code == status, (query, response.text)
            assert words in response.json()["error"], query
        again = client.post("/predict?models=cars,cars", content=pictures[0])
        top = client.post("/decode_predictions?models=trucks,cars&top=1", content=pictures[0])
    assert again.status_code == 200
    assert [r["model"] for r in again.json()["results"]] == ["cars"]  # repeats dropped
    assert top.status_code == 200
    assert [len(r["predictions"][0]["classes"]) for r in top.json()["results"]] == [1, 1]


@pytest.fixture(scope="module")
def fitted_scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions made by `fit` (each with its unknown scorer), one averaging mirrors."""
    from tests.training.conftest import fit_tiny
    from training.demo_data import generate

    work = tmp_path_factory.mktemp("fitted_scored")
    generate(work / "data", train=12, valid=6, size=SIZE, seed=0)
    fit_tiny(work / "data", work, name="plain")
    fit_tiny(work / "data", work, name="mirrored", flip_tta=True)
    return work / "models"


def test_shared_base_unknown_score_equals_whole_model(
    fitted_scored: Path, pictures: list[bytes]
) -> None:
    from modelstore.loader import load_published

    upload = files(*[(f"{i}.png", p) for i, p in enumerate(pictures)])
    batch = np.stack([load_image(p, SIZE) for p in pictures])
    with TestClient(create_app(shared_settings(fitted_scored))) as client:
        listing = {m["name"]: m for m in client.get("/models").json()["models"]}
        together = client.post("/predict?models=plain,mirrored", files=upload).json()["results"]
        v1 = client.post(
            "/v1/models/mirrored:predict",
            json={"signature_name": "predict_with_unknown", "instances": batch.tolist()},
        ).json()["predictions"]
        explained = client.post("/explain?model=mirrored", files=upload)
    assert listing["plain"]["served"] == listing["mirrored"]["served"] == "shared-base"
    for name, result in zip(("plain", "mirrored"), together, strict=True):
        whole = load_published(fitted_scored / name / "1")
        probs, scores = whole.predict_with_unknown(batch)
        served = np.array([p["unknown_score"] for p in result["predictions"]])
        assert np.max(np.abs(served - scores)) <= 1e-5, name
        assert np.max(np.abs(answers(result) - probs)) <= 1e-5, name
        flags = [p["unknown"] for p in result["predictions"]]
        assert flags == [bool(s > whole.beyond.threshold) for s in scores]  # type: ignore[union-attr]
        if name == "mirrored":
            assert np.max(np.abs(np.array([r["unknown_score"] for r in v1]) - scores)) <= 1e-5
            # Explanations load the version's complete SavedModel: same scores again.
            assert explained.status_code == 200, explained.text
            got = [e["unknown_score"] for e in explained.json()["explanations"]]
            assert np.max(np.abs(np.array(got) - scores)) <= 1e-5


def test_shared_base_scorer_without_head_signature_is_served_whole(
    fitted_scored: Path, tmp_path: Path, pictures: list[bytes]
) -> None:
    root = tmp_path / "models"
    old = root / "old" / "1"
    shutil.copytree(fitted_scored / "plain" / "1", old)
    meta = json.loads((old / "metadata.json").read_text())
    del meta["head"]["unknown_signature"]  # exported before heads carried the scorer
    (old / "metadata.json").write_text(json.dumps(meta))
    with TestClient(create_app(shared_settings(root))) as client:
        info = client.get("/models").json()["models"][0]
        body = client.post("/predict?model=old", content=pictures[0]).json()
    assert info["served"] == "whole"
    assert "no unknown-score signature" in info["serving"][0]["whole_reason"]
    assert isinstance(body["predictions"][0]["unknown_score"], float)  # whole, as before
