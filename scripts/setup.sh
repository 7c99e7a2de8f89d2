#!/usr/bin/env bash
# Installs everything beamgate needs on a fresh Debian machine (idempotent):
# Erlang/OTP and Elixir from Debian, the OpenSSH client and server, tmux,
# and a virtualenv in .venv with beamgate and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v erl >/dev/null 2>&1 || need_apt+=(erlang-base erlang-runtime-tools erlang-dev erlang-ssl erlang-public-key erlang-crypto erlang-asn1 erlang-syntax-tools)
command -v erlc >/dev/null 2>&1 || need_apt+=(erlang-dev)
command -v elixir >/dev/null 2>&1 || need_apt+=(elixir)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
dpkg -s erlang-ssl >/dev/null 2>&1 || need_apt+=(erlang-ssl erlang-public-key erlang-crypto erlang-asn1)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.beamgate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
fi
