#!/usr/bin/env bash
# Installs what the whole test suite needs, then runs it (extra arguments go to pytest):
#   - a virtualenv .venv with Spark and its test extras,
#   - promtool (Debian's prometheus package) for the alert-rule tests, when run as root
#     on Debian/Ubuntu; elsewhere those tests are skipped with a note (CI=true fails them).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing promtool (apt-get install prometheus)..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "note: promtool not found; alert-rule tests will be skipped (sudo apt-get install prometheus)" >&2
  fi
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
