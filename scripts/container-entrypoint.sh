#!/bin/sh
# Container entrypoint: make the models baked into the image visible in the model
# repository, then run the command (default: `python -m service`, configured by VGGSVC_*
# environment variables).
#
# The image carries `vgg16_imagenet` (exported at build time) in /opt/models-builtin.
# - /models is a mounted volume or folder (another filesystem than the image's): each
#   built-in model is copied in once, under a hidden name (the service ignores names
#   starting with a dot) and renamed into place, so the service never sees half a copy; it
#   stays there for an older or newer image sharing the volume. A model already in the
#   volume is left alone (it may hold newer versions); delete it from the volume to re-seed
#   it from a newer image. A volume we cannot write to is reported, not fatal.
# - /models is the container's own folder (nothing mounted, e.g. a one-off `docker run`):
#   a symbolic link to the built-in model, so no command pays for copying 528 MB into a
#   container that goes away with it.
set -eu

builtin_dir=${VGGSVC_BUILTIN_MODELS_DIR:-/opt/models-builtin}
models_dir=${VGGSVC_MODELS_DIR:-/models}

if [ -d "$builtin_dir" ] && mkdir -p "$models_dir" 2>/dev/null; then
  for src in "$builtin_dir"/*/; do
    [ -d "$src" ] || continue
    name=$(basename "$src")
    [ -e "$models_dir/$name" ] && continue
    if [ "$(stat -c %d "$src")" = "$(stat -c %d "$models_dir")" ]; then
      # `ln -s` refuses a name that exists: what got there first stays.
      if ln -s "${src%/}" "$models_dir/$name" 2>/dev/null; then
        echo "container-entrypoint: linked $models_dir/$name to $builtin_dir" >&2
      elif [ ! -e "$models_dir/$name" ]; then
        echo "container-entrypoint: warning: could not link $name into $models_dir" \
          "(is it writable by uid $(id -u)?); serving without it" >&2
      fi
      continue
    fi
    # Several containers may share the volume and start together (api, api-replica): each
    # copies into its own mktemp folder ($$ is 1 in every container, so it would collide),
    # and `mv -T` renames onto the final name only if nobody got there first (it refuses a
    # non-empty target instead of moving the copy inside it).
    if ! tmp=$(mktemp -d "$models_dir/.seed-$name-XXXXXX" 2>/dev/null); then
      echo "container-entrypoint: warning: could not copy $name into $models_dir" \
        "(is the volume writable by uid $(id -u)?); serving without it" >&2
      continue
    fi
    if ! cp -R "$src." "$tmp/"; then
      rm -rf "$tmp"
      echo "container-entrypoint: warning: could not copy $name into $models_dir" \
        "(is the volume writable by uid $(id -u)?); serving without it" >&2
    elif mv -T "$tmp" "$models_dir/$name" 2>/dev/null; then
      chmod 755 "$models_dir/$name"  # mktemp made it 700; other users of the volume read it
      echo "container-entrypoint: seeded $models_dir/$name from $builtin_dir" >&2
    else
      rm -rf "$tmp"
      echo "container-entrypoint: $models_dir/$name was seeded by another container" >&2
    fi
  done
elif [ -d "$builtin_dir" ]; then
  echo "container-entrypoint: warning: cannot create $models_dir; built-in models not seeded" >&2
fi

exec "$@"
