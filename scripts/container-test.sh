#!/usr/bin/env bash
# The container test: builds the CPU image offline and checks what a deployer relies on.
# Usage: bash scripts/container-test.sh
#
# 1. A Docker engine: the one that answers, else Debian's `docker.io` (installed when
#    missing, as root with apt) started here without a bridge (`--bridge=none
#    --iptables=false`): every build and run uses `--network host`, the service listens on
#    the loopback only.
# 2. A base image: BASE_IMAGE when given (a Python 3.11 image such as
#    python:3.11-slim-bookworm), else one made from Debian's packages (`debootstrap`
#    bookworm, minbase + python3 and python3-venv, then `docker import`).
# 3. The image: VGGSVC_TF_FLAVOUR=cpu and VGGSVC_BASE_WEIGHTS=none (offline: random
#    weights), with this machine's pip index settings passed in as build arguments.
# 4. It serves (waits for /readyz), answers a JPEG made here with Pillow on /predict,
#    trains the demo model inside the container (`demo-data` + `fit`, tiny settings), serves
#    the new version without a restart, and stops on `docker stop` with exit code 0 while
#    answering a request in flight.
# 5. It removes what it made: container, volume, images (and the engine it started).
#
# Outside CI a machine that cannot run Docker skips with the reason (exit 0); under
# CI=true that is a failure. Environment: BASE_IMAGE, DEBIAN_MIRROR (debootstrap's
# mirror, default http://deb.debian.org/debian), PY (the host's Python with the project
# installed; default: scripts/venv.sh's).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

started=$(date +%s)
say() { echo "container-test: $*" >&2; }
elapsed() { echo "$(($(date +%s) - started)) s"; }
cannot_run() {
  if [ "${CI:-}" = true ]; then
    say "error: $* (required under CI=true)"
    exit 1
  fi
  say "skipped: $*"
  skipped=yes
  exit 0
}
skipped=""

# ---- 1. a Docker engine -------------------------------------------------------------
daemon_pid="" daemon_dir=""
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's docker.io"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends docker.io) >/dev/null || cannot_run "could not install docker.io"
    else
      cannot_run "no Docker engine, and no root with apt to install Debian's docker.io"
    fi
  fi
  [ "$(id -u)" = 0 ] || cannot_run "no Docker engine answers, and starting dockerd needs root"
  daemon_dir=$(mktemp -d /tmp/container-test-dockerd.XXXXXX)
  say "starting dockerd (no bridge, no iptables; log: $daemon_dir/dockerd.log)"
  dockerd --bridge=none --iptables=false --pidfile "$daemon_dir/dockerd.pid" \
    >"$daemon_dir/dockerd.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    tail -20 "$daemon_dir/dockerd.log" >&2 || true
    kill "$daemon_pid" 2>/dev/null || true
    cannot_run "dockerd did not start"
  fi
fi
# BuildKit where the client has it (buildx, or a client before 23.0 that drives the
# engine's own BuildKit); the classic builder otherwise. The Dockerfile builds with both.
client=$(docker version --format '{{.Client.Version}}' 2>/dev/null || echo 0)
if docker buildx version >/dev/null 2>&1; then
  builder=BuildKit
elif [ "${client%%.*}" -lt 23 ] 2>/dev/null; then
  export DOCKER_BUILDKIT=1
  builder=BuildKit
else
  builder="classic builder"
fi
say "engine $(docker version --format '{{.Server.Version}}'), client $client, $builder"

# ---- names, and removing what was made ----------------------------------------------
tag=vggsvc-container-test-$$
image=$tag:cpu
container=$tag
volume=$tag-models
rootfs=""
work=$(mktemp -d /tmp/container-test.XXXXXX)
docker images -aq --no-trunc | sort -u >"$work/images-before"
# The engine's data root, as root: its growth is the disk this test uses.
engine_disk() {
  local root
  root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null) || return 0
  [ -r "$root" ] && du -sm "$root" 2>/dev/null | cut -f1
}
disk_before=$(engine_disk || true)
cleanup() {
  local status=$?
  set +e
  docker rm -f "$container" >/dev/null 2>&1
  docker volume rm "$volume" >/dev/null 2>&1
  # The images this run added: ours by name, and the untagged ones (the classic builder's
  # stages). Never -f: an image another build or container uses is refused, not taken.
  # A child goes before its parent, hence the passes.
  for _ in 1 2 3 4; do
    docker images -a --no-trunc --format '{{.ID}} {{.Repository}}' \
      | awk -v tag="$tag" '$2 == "<none>" || index($2, tag) == 1 { print $1 }' | sort -u \
      | comm -13 "$work/images-before" - >"$work/images-new"
    [ -s "$work/images-new" ] || break
    xargs docker rmi <"$work/images-new" >/dev/null 2>&1
  done
  [ -n "$rootfs" ] && rm -rf "$rootfs"
  if [ -n "$daemon_pid" ]; then
    # Our own engine: its build cache goes too, then the engine.
    docker system prune -af --volumes >/dev/null 2>&1
    kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    rm -rf "$daemon_dir"
  elif [ "$builder" = BuildKit ]; then
    say "BuildKit's cache of this build stays in the engine (docker builder prune frees it)"
  fi
  rm -rf "$work"
  if [ -n "$skipped" ]; then :; elif [ "$status" = 0 ]; then say "passed in $(elapsed)"; else
    say "FAILED after $(elapsed)"
  fi
  exit "$status"
}
trap cleanup EXIT

# ---- the host's Python: JPEGs and HTTP (Pillow, httpx) -------------------------------
if [ -z "${PY:-}" ]; then
  source scripts/venv.sh >/dev/null
fi

# ---- 2. the base image ---------------------------------------------------------------
base=${BASE_IMAGE:-}
if [ -z "$base" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
      || cannot_run "no BASE_IMAGE, and no debootstrap (nor root with apt to install it)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) \
      >/dev/null || cannot_run "could not install debootstrap"
  fi
  [ "$(id -u)" = 0 ] || cannot_run "no BASE_IMAGE, and debootstrap needs root"
  rootfs=$(mktemp -d /var/tmp/container-test-rootfs.XXXXXX)
  say "debootstrap bookworm (minbase + python3, python3-venv) into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  base=$tag-base:bookworm
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
  rm -rf "$rootfs"
  rootfs=""
  say "base image $base made ($(elapsed))"
fi

# ---- 3. the image, with this machine's pip index settings -----------------------------
# As pip here sees them (environment first, then pip's configuration files). Only http(s)
# indexes: a file:// index on this machine is not in the build.
pip_setting() {
  local env_name=$1 key=$2 value
  value=${!env_name:-}
  [ -n "$value" ] || value=$("$PY" -m pip config get "global.$key" 2>/dev/null || true)
  printf '%s' "$value"
}
build_args=(--build-arg VGGSVC_TF_FLAVOUR=cpu --build-arg VGGSVC_BASE_WEIGHTS=none)
index_url=$(pip_setting PIP_INDEX_URL index-url)
case "$index_url" in http://* | https://*) build_args+=(--build-arg "PIP_INDEX_URL=$index_url") ;; esac
extra=""
for url in $(pip_setting PIP_EXTRA_INDEX_URL extra-index-url); do
  case "$url" in http://* | https://*) extra="${extra:+$extra }$url" ;; esac
done
[ -z "$extra" ] || build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
trusted=$(pip_setting PIP_TRUSTED_HOST trusted-host)
[ -z "$trusted" ] || build_args+=(--build-arg "PIP_TRUSTED_HOST=$trusted")
# pip here trusts a CA file of its own (a TLS-inspecting proxy's, say): the same file goes
# into a layer on top of the base image, for PIP_CERT to name.
cert=$(pip_setting PIP_CERT cert)
if [ -n "$cert" ] && [ -f "$cert" ]; then
  mkdir -p "$work/ca"
  cp "$cert" "$work/ca/pip-ca.pem"
  printf 'FROM %s\nCOPY pip-ca.pem /etc/ssl/certs/pip-ca.pem\n' "$base" >"$work/ca/Dockerfile"
  docker build --network host -q -t "$tag-base:pip-ca" "$work/ca" >/dev/null
  base=$tag-base:pip-ca
  build_args+=(--build-arg PIP_CERT=/etc/ssl/certs/pip-ca.pem)
fi
build_args+=(--build-arg "PYTHON_IMAGE=$base")
say "building $image (${build_args[*]})"
build_start=$(date +%s)
docker build --network host --label "vggsvc.container-test=$$" -t "$image" \
  "${build_args[@]}" . >&2
build_s=$(($(date +%s) - build_start))
size=$(docker image inspect -f '{{.Size}}' "$image")
disk_built=$(engine_disk || true)
say "built in $build_s s; image $((size / 1000000)) MB;" \
  "engine data ${disk_before:-?} MB before, ${disk_built:-?} MB after the build"

# ---- 4. run it ------------------------------------------------------------------------
# Batches of at most 4: VGG16 warms up 4 batch shapes instead of 16 (a minute less on 2
# cores), and a request of 8 images stays in flight a few seconds, well inside the 20 s drain.
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
docker volume create "$volume" >/dev/null
docker run -d --name "$container" --network host --stop-timeout 30 \
  -v "$volume:/models" \
  -e VGGSVC_HOST=127.0.0.1 -e VGGSVC_PORT="$port" \
  -e VGGSVC_DEFAULT_MODEL=vgg16_imagenet -e VGGSVC_POLL_INTERVAL_S=1 \
  -e VGGSVC_MAX_BATCH_SIZE=4 \
  "$image" >/dev/null
# Each probe's line is kept in a variable first: `set -e` stops at a failing assignment.
probe() { "$PY" scripts/container_probe.py "$@" || { docker logs --tail 40 "$container" >&2; return 1; }; }
say "waiting for $url/readyz"
seen=$(probe wait-ready "$url" --timeout 600)
say "$seen ($(elapsed)); runs as $(docker exec "$container" id -un)"
seen=$(probe predict "$url" --images 1)
say "predict: $seen"

say "training the demo model inside the container"
train_start=$(date +%s)
docker exec "$container" python -m training demo-data /tmp/demo --train 12 --valid 6 --size 64 >&2
docker exec "$container" python -m training fit --data /tmp/demo --name demo \
  --models-dir /models --base-weights hed --image-size 32 --epochs 2 --quiet >&2
say "trained in $(($(date +%s) - train_start)) s"
seen=$(probe wait-version "$url" demo 1 --timeout 120)
say "hot reload: $seen"
seen=$(probe predict "$url" --model demo --version 1 --images 2)
say "predict: $seen"

say "docker stop (the container's --stop-timeout) during a request"
seen=$(probe stop-during-request "$url" "$container" --images 8)
say "$seen"
docker logs --tail 5 "$container" >&2
say "engine data $(engine_disk || true) MB at the end, before clean-up"
