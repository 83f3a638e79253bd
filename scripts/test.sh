#!/usr/bin/env bash
# The test command: lint, type check and the whole test suite, from a fresh machine.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test drives Debian's Chromium; install it when we can (root + apt), else it skips.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
EXTRAS=dev source scripts/venv.sh
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy imaging modelstore training service bench
# The direction of imports (contracts in pyproject.toml): service and training never
# import each other; imaging and modelstore import neither.
"$(dirname "$PY")/lint-imports"
set +e
"$PY" -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no test: that is a failure, never a pass.
if [ "$status" = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$status"
