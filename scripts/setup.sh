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
PYTHON=${PYTHON:-python3}
# Debian's python3 comes without venv/ensurepip until python3-venv is installed.
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3 python3-venv python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "setup.sh: need root or sudo to install: ${need_apt[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "setup.sh: beamgate needs Python >= 3.11 ($PYTHON is $("$PYTHON" -V 2>&1)); set PYTHON=" >&2; exit 1; }
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.beamgate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
fi
