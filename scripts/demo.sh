#!/usr/bin/env bash
# The main job on a fresh machine: demo data -> train car_truck -> export -> export
# vgg16_imagenet -> serve on 127.0.0.1:8000 (Ctrl-C stops the service).
# Usage: bash scripts/demo.sh
# Re-running reuses the demo data and the vgg16_imagenet export, and publishes a new car_truck
# version (versions are never overwritten). The VGGSVC_DEMO_* variables below override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- settings of the demo run --------------------------------------------------------------
# fit's own defaults: `auto` base weights are the ImageNet weights when they are in the Keras
# cache or can be downloaded, else the offline pretrained substitute (hed), and the cut,
# image size, head and flips follow those weights (training/defaults.py); metadata.json
# records which weights and which settings it used, and why.
source scripts/renamed-env.sh
for name in IMAGE_SIZE BASE_WEIGHTS DATA_DIR MODELS_DIR HOST PORT; do
  renamed_env "VGGSVC_DEMO_$name" "DEMO_$name"  # the DEMO_* names: one more release
done
IMAGE_SIZE=${VGGSVC_DEMO_IMAGE_SIZE:-auto}
BASE_WEIGHTS=${VGGSVC_DEMO_BASE_WEIGHTS:-auto}
DATA_DIR=${VGGSVC_DEMO_DATA_DIR:-data/demo}
MODELS_DIR=${VGGSVC_DEMO_MODELS_DIR:-models}
SERVICE_HOST=${VGGSVC_DEMO_HOST:-127.0.0.1}
SERVICE_PORT=${VGGSVC_DEMO_PORT:-8000}
# ---------------------------------------------------------------------------------------------

source scripts/venv.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

step() { printf '\n==> %s\n' "$*"; }

step "demo data in $DATA_DIR"
if [ -d "$DATA_DIR/train" ] && [ -d "$DATA_DIR/valid" ]; then
  echo "reusing $DATA_DIR (delete it to generate it again)"
else
  "$PY" -m training demo-data "$DATA_DIR" --seed 0
fi

step "train car_truck (image size $IMAGE_SIZE, base weights $BASE_WEIGHTS)"
"$PY" -m training fit --data "$DATA_DIR" --name car_truck --models-dir "$MODELS_DIR" \
  --image-size "$IMAGE_SIZE" --base-weights "$BASE_WEIGHTS"

step "export vgg16_imagenet (the full 1000-class VGG16, for ImageNet decode_predictions)"
if compgen -G "$MODELS_DIR/vgg16_imagenet/[0-9]*/metadata.json" >/dev/null; then
  echo "reusing $MODELS_DIR/vgg16_imagenet (delete it to export again)"
elif ! "$PY" -m training export-imagenet --models-dir "$MODELS_DIR" --weights imagenet; then
  cat >&2 <<'NOTE'

NOTE: vgg16_imagenet was NOT exported: the ImageNet VGG16 weights could not be loaded
(no internet, and not in the Keras cache ~/.keras/models). ImageNet decode_predictions
(POST /decode_predictions?model=vgg16_imagenet) needs them; everything else, car_truck
included, is served as usual. With internet, re-run this script to add it.

NOTE
fi

example=$(find "$DATA_DIR/valid" -type f -print -quit 2>/dev/null || true)
example=${example:-path/to/picture.jpg}
base_url="http://$SERVICE_HOST:$SERVICE_PORT"
step "starting the service on $base_url (demo page: $base_url/)"
decode_model=car_truck
if compgen -G "$MODELS_DIR/vgg16_imagenet/[0-9]*/metadata.json" >/dev/null; then
  decode_model=vgg16_imagenet
fi
cat <<TRY
Once $base_url/readyz answers 200, try:
  curl -F "file=@$example" "$base_url/predict?model=car_truck"
  curl -F "file=@$example" "$base_url/decode_predictions?model=$decode_model&top=5"

TRY
exec "$PY" -m service --models-dir "$MODELS_DIR" --host "$SERVICE_HOST" --port "$SERVICE_PORT"
