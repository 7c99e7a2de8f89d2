#!/usr/bin/env bash
# Fresh machine to a running demo: installs what is missing, starts a local
# target node and the gateway, and prints the ssh line to type.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/beamgate demo "$@"
