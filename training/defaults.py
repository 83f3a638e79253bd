"""What `auto` means for the settings whose best value depends on the base weights.

`fit` resolves `FitConfig`'s "auto" fields once the weights are known (`auto`
base weights become `imagenet` or `hed`), records the value used and the
reason in the version's metadata (`training.auto_settings`), and an explicit
flag always wins. No TensorFlow here.

- `hed` (the offline substitute; edge-detection fine-tuned VGG16): chosen on the
  validation photos by `python -m bench.accuracy.defaults search`
  (`bench/results/accuracy_search_hed.json`), reported on a held-out test split
  (`bench/results/accuracy_defaults.json`).
- `imagenet`, and a weights file of the user's (most likely ImageNet-like): the
  whole convolutional base at 128 px, the usual transfer-learning recipe. Not
  measured here: ImageNet weights cannot be downloaded in this environment.
- `none` (random weights, tests only): the fixed defaults the tests were written for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.config import FitConfig

AUTO_FIELDS = (
    "base_layer",
    "image_size",
    "width",
    "flip_augment",
    "flip_tta",
    "label_smoothing",
)


@dataclass(frozen=True)
class Profile:
    values: dict[str, Any]
    reason: str


HED_SEARCH = "bench/results/accuracy_search_hed.json"
HED_EXPLORE = "bench/results/accuracy_explore.json"
PROFILES = {
    "hed": Profile(
        {
            "base_layer": "block4_pool",
            "image_size": 96,
            "width": 256,
            "flip_augment": True,
            "flip_tta": True,
            "label_smoothing": 0.2,
        },
        "hed weights: best mean validation accuracy over 3 seeds on real car/truck photos "
        f"({HED_SEARCH}); HED fine-tuned the deepest block for edges, so the cut is earlier; "
        f"label smoothing 0.2: +2.3 validation and +2.4 cross-validation points ({HED_EXPLORE})",
    ),
    "imagenet": Profile(
        {
            "base_layer": "block5_pool",
            "image_size": 128,
            "width": 256,
            "flip_augment": True,
            "flip_tta": False,
            "label_smoothing": 0.0,
        },
        "ImageNet-like weights: the whole convolutional base, the usual transfer-learning "
        "recipe (not measured here: no ImageNet weights offline)",
    ),
    "none": Profile(
        {
            "base_layer": "block5_pool",
            "image_size": 128,
            "width": 256,
            "flip_augment": False,
            "flip_tta": False,
            "label_smoothing": 0.0,
        },
        "random weights (tests only): fixed defaults",
    ),
}
PROFILES["file"] = PROFILES["imagenet"]
# What each kind of weights is called in help texts.
WEIGHTS_WORDS = {"hed": "hed", "imagenet": "imagenet", "file": "a weights file", "none": "none"}

# Measured (bench/results/retrain.json, 2 repeats): a warm head is 0.17-0.22x of a cold
# run in-process and now matches the cold head's accuracy (valid -0.5, test +1.2 points);
# switching it on for --promote-if-better jobs is the next step.
WARM_START_AUTO = Profile(
    {"warm_start": False},
    "opt-in (--warm-start): 0.17-0.22x of a cold run in-process, "
    "accuracy as the cold head's in bench/results/retrain.json",
)


def _shown(value: Any) -> str:
    return (
        {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)
    )


def auto_help(name: str) -> str | None:
    """What "auto" means for setting `name`, in words, from the values above (or None).

    E.g. "auto: block4_pool for hed; block5_pool for imagenet, a weights file, none".
    The help texts and the documentation derive it from here, so it is written once.
    """
    if name == "warm_start":
        return f"auto: {_shown(WARM_START_AUTO.values[name])}, {WARM_START_AUTO.reason}"
    if name not in AUTO_FIELDS:
        return None
    by_value: dict[str, list[str]] = {}
    for kind, profile in PROFILES.items():
        by_value.setdefault(_shown(profile.values[name]), []).append(WEIGHTS_WORDS[kind])
    if len(by_value) == 1:
        return f"auto: {next(iter(by_value))}"
    return "auto: " + "; ".join(f"{v} for {', '.join(k)}" for v, k in by_value.items())


def resolve_auto(cfg: FitConfig, weights_kind: str) -> tuple[FitConfig, dict[str, dict[str, Any]]]:
    """`cfg` with every "auto" of AUTO_FIELDS and `warm_start` replaced, and why each was chosen."""
    profile = PROFILES[weights_kind]
    changes: dict[str, Any] = {}
    why: dict[str, dict[str, Any]] = {}
    for name in AUTO_FIELDS:
        if getattr(cfg, name) == "auto":
            changes[name] = profile.values[name]
            why[name] = {"value": profile.values[name], "reason": profile.reason}
    if cfg.warm_start == "auto":
        value = WARM_START_AUTO.values["warm_start"]
        changes["warm_start"] = value
        why["warm_start"] = {"value": value, "reason": WARM_START_AUTO.reason}
    return cfg.replace(**changes), why
