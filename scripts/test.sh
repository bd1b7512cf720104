#!/usr/bin/env bash
# Installs what the whole test suite needs, then runs it in two processes (extra arguments
# go to pytest):
#   - a virtualenv .venv with Spark and its test extras,
#   - promtool (Debian's prometheus package) for the alert-rule tests, and node + npm for
#     the Node client interop test (examples/node), when run as root on Debian/Ubuntu;
#     elsewhere those tests are skipped with a note (CI=true fails them).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (apt-get)..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not found; the tests that need them will be skipped (sudo apt-get install ${missing[*]})" >&2
  fi
fi
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
# Two test processes (SPARK_TEST_PROCESSES to change): each has its own embedded broker;
# a module's tests stay in one process (--dist loadfile).
exec .venv/bin/python -m pytest -n "${SPARK_TEST_PROCESSES:-2}" --dist loadfile "$@"
