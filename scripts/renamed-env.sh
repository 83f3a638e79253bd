#!/usr/bin/env bash
# Old variable names keep working for one release, with a warning (they moved into the
# VGGSVC_* family: generic names such as TF_FLAVOUR or DEMO_PORT collide with what CI
# systems and other tools set).
# Usage: source scripts/renamed-env.sh; renamed_env NEW_NAME OLD_NAME
# If OLD_NAME is set and NEW_NAME is not, NEW_NAME takes OLD_NAME's value (exported).
renamed_env() {
  local new=$1 old=$2
  if [ -z "${!new+x}" ] && [ -n "${!old+x}" ]; then
    echo "warning: $old is deprecated and stops working in the next release: set $new instead" >&2
    printf -v "$new" '%s' "${!old}"
    export "${new?}"
  fi
}
