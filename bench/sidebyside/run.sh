#!/usr/bin/env bash
# Side by side: relayq (one worker process) against BullMQ + Nodemailer and
# a bare redis-py + smtplib pool, producers and workers running
# concurrently, all into one smtp-sink through one private redis-server, on
# 127.0.0.1 (bench/README.md, "Side by side"; the driver is sidebyside.py).
#
# Usage: BUILD_DIR=build-rel bash bench/sidebyside/run.sh [sidebyside.py options]
#   e.g. ... run.sh -n 60000 --rounds 3 --bullmq-workers 2 --pool 8 --out DIR
# Needs: a build (relayq-worker, librelayq.a), redis-server, postfix's
# smtp-sink, node >= 20 with npm (installs bullmq, ioredis and nodemailer
# from package-lock.json into bench/sidebyside/node_modules on first use),
# /usr/bin/python3 with python3-redis. Exit 0 when every competitor
# delivered exactly what it was sent.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -d "$BUILD_DIR" ] && [ -d "$ROOT/$BUILD_DIR" ]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || { echo "sidebyside: no build directory $BUILD_DIR" >&2; exit 1; }
die() { echo "sidebyside: $*" >&2; exit 1; }

[ -x "$BUILD_DIR/relayq-worker" ] || die "$BUILD_DIR/relayq-worker not found: build first, or set BUILD_DIR"
[ -f "$BUILD_DIR/librelayq.a" ] || die "$BUILD_DIR/librelayq.a not found: build the relayq_static target"
for t in redis-server smtp-sink node npm pkg-config cc; do
  command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh installs redis-server and postfix; node 20 and npm for BullMQ)"
done
/usr/bin/python3 -c 'import redis' 2>/dev/null || die "/usr/bin/python3 with python3-redis is needed: run scripts/deps.sh"

# BullMQ and Nodemailer, the exact versions of package-lock.json.
if [ ! -d "$HERE/node_modules/bullmq" ] || [ "$HERE/package-lock.json" -nt "$HERE/node_modules" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) || die "npm ci failed in $HERE"
  touch "$HERE/node_modules"
fi

# The relayq producer: bench/enqueue.c (relayq_enqueue_many), as bench/run.sh builds it.
ENQ="$BUILD_DIR/bench/relayq-bench-enqueue"
TMPBIN=""
if [ ! -x "$ENQ" ] || [ "$ROOT/bench/enqueue.c" -nt "$ENQ" ]; then
  TMPBIN=$(mktemp -d "${TMPDIR:-/tmp}/relayq-sbs-bin.XXXXXX")
  trap 'rm -rf "$TMPBIN"' EXIT
  ENQ="$TMPBIN/enqueue"
  # shellcheck disable=SC2046
  cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT/include" $(pkg-config --cflags hiredis msgpack openssl) \
    "$ROOT/bench/enqueue.c" "$BUILD_DIR/librelayq.a" $(pkg-config --libs hiredis msgpack openssl) -o "$ENQ" ||
    die "cannot build bench/enqueue.c"
fi

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || commit="$commit+dirty"
/usr/bin/python3 "$HERE/sidebyside.py" --worker "$BUILD_DIR/relayq-worker" --enqueue "$ENQ" --commit "$commit" "$@"
