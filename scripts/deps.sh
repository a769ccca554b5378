#!/usr/bin/env bash
# Installs every Debian package relayq needs to build, test, demo and
# benchmark. Idempotent: installs only what is missing. Run as root (or with
# sudo available). Used by README's commands and by .ci/run.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libhiredis-dev libcurl4-openssl-dev libssl-dev libuv1-dev libmsgpack-dev libmicrohttpd-dev
  clang libclang-rt-14-dev
  redis-server redis-tools redis-sentinel
  python3 python3-aiosmtpd python3-redis python3-msgpack python3-dkim
  python3-cryptography python3-yaml python3-dnspython python3-spf
  dnsmasq-base postfix openssl valgrind procps curl iproute2
  chromium
  php-cli php-redis php-msgpack ruby ruby-redis ruby-msgpack
  golang-go golang-github-gomodule-redigo-dev golang-github-vmihailenco-msgpack.v5-dev
)

# Node.js for the Node producer example (tests/e2e/test_producers.py):
# Debian's nodejs and npm when no node is on the PATH (a machine with its
# own Node.js keeps it).
command -v node >/dev/null || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # postfix would ask questions and start a daemon: preseed "No configuration"
  # and keep services from starting (we only want smtp-sink/smtp-source).
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Node producer example's packages (examples/node/package-lock.json), for
# tests/e2e/test_producers.py (node and npm are installed above when
# missing). `npm ci` runs only when the lock file changed since the last
# install, recorded in a stamp inside node_modules.
NODE_EXAMPLE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/examples/node"
if command -v node >/dev/null && command -v npm >/dev/null && [ -f "$NODE_EXAMPLE/package-lock.json" ]; then
  stamp="$NODE_EXAMPLE/node_modules/.relayq-lock.sha256"
  want="$(sha256sum "$NODE_EXAMPLE/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "deps: npm ci in examples/node" >&2
    (cd "$NODE_EXAMPLE" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
fi
