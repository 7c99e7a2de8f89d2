#!/usr/bin/env bash
# Fresh machine to test results: installs what is missing, then runs lint,
# type checks and the whole test suite against real Erlang nodes (OTP 25 from
# Debian, OTP 28 from a test-only wheel) and the real OpenSSH client.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
