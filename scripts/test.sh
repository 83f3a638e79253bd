#!/usr/bin/env bash
# The test command: lint, type check and the whole test suite, from a fresh machine.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages the tests drive (Debian's): installed when we can (root + apt). On a
# developer's machine without them those tests skip with the reason; under CI=true a
# missing one fails the run (the tests fail too), never a silent skip.
# Each entry is "debian-package:command".
SYSTEM_PACKAGES=(chromium:chromium prometheus:promtool haproxy:haproxy)
# Debian installs haproxy in /usr/sbin, which is not on a non-root user's PATH.
export PATH="$PATH:/usr/sbin"
missing=()
for entry in "${SYSTEM_PACKAGES[@]}"; do
  command -v "${entry#*:}" >/dev/null 2>&1 || missing+=("${entry%%:*}")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
    || echo "warning: could not install ${missing[*]}" >&2
fi
for entry in "${SYSTEM_PACKAGES[@]}"; do
  if ! command -v "${entry#*:}" >/dev/null 2>&1 && [ "${CI:-}" = true ]; then
    echo "error: ${entry#*:} (Debian package ${entry%%:*}) is required under CI=true" >&2
    exit 1
  fi
done
# ray: the multi-node Ray engine tests run in CI (tests/training/cluster/test_cluster_engine.py).
EXTRAS=dev,ray source scripts/venv.sh
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy imaging modelstore training service bench docs/config_tables.py
# The direction of imports (contracts in pyproject.toml): service and training never
# import each other; imaging and modelstore import neither.
"$(dirname "$PY")/lint-imports"
# The documentation site: a broken link or anchor, or a page missing from the nav, fails.
site_dir=$(mktemp -d)
trap 'rm -rf "$site_dir"' EXIT
NO_MKDOCS_2_WARNING=1 "$(dirname "$PY")/mkdocs" build --strict --site-dir "$site_dir"
set +e
"$PY" -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no test: that is a failure, never a pass.
if [ "$status" = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$status"
