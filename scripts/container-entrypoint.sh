#!/bin/sh
# Container entrypoint: seed the model volume with the models baked into the image, then run
# the command (default: `python -m service`, configured by VGGSVC_* environment variables).
#
# The image carries `vgg16_imagenet` (exported at build time, when the build had internet) in
# /opt/models-builtin. The model repository is a volume, so on first start it is empty: each
# built-in model is copied in once, under a hidden name (the service ignores names starting
# with a dot) and renamed into place, so the service never sees half a copy. A model already
# in the volume is left alone (it may hold newer versions); delete it from the volume to
# re-seed it from a newer image. A volume we cannot write to is reported, not fatal.
set -eu

builtin_dir=${VGGSVC_BUILTIN_MODELS_DIR:-/opt/models-builtin}
models_dir=${VGGSVC_MODELS_DIR:-/models}

if [ -d "$builtin_dir" ] && mkdir -p "$models_dir" 2>/dev/null; then
  for src in "$builtin_dir"/*/; do
    [ -d "$src" ] || continue
    name=$(basename "$src")
    [ -e "$models_dir/$name" ] && continue
    tmp="$models_dir/.seed-$name-$$"
    if cp -R "$src" "$tmp" && mv "$tmp" "$models_dir/$name"; then
      echo "container-entrypoint: seeded $models_dir/$name from $builtin_dir" >&2
    else
      rm -rf "$tmp"
      echo "container-entrypoint: warning: could not copy $name into $models_dir" \
        "(is the volume writable by uid $(id -u)?); serving without it" >&2
    fi
  done
elif [ -d "$builtin_dir" ]; then
  echo "container-entrypoint: warning: cannot create $models_dir; built-in models not seeded" >&2
fi

exec "$@"
