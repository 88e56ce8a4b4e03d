#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh machine: a virtualenv with the pinned packages, a
# throwaway PostgreSQL on loopback (Debian's package, installed when missing), Chromium for the
# dashboard's browser tests (Debian's package, installed when missing), then pytest against SQLite
# and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
TIERLINE_TEST_POSTGRES_URL="$(bash scripts/postgres.sh start)"
export TIERLINE_TEST_POSTGRES_URL
export TIERLINE_REQUIRE_POSTGRES=1
export TIERLINE_REQUIRE_BROWSER=1
exec .venv/bin/pytest "$@"
