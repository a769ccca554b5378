#!/usr/bin/env bash
# relayq demo: one worker delivering three jobs to a local SMTP sink.
#
# Starts a private redis-server and the test SMTP sink
# (tests/fixtures/smtp_server.py) on free 127.0.0.1 ports in a temp dir,
# starts relayq-worker against them, sends a plain message, one with a PDF
# attachment and one with a UTF-8 subject through `relayq send`, waits for
# each to reach a final state, prints their status, lists the delivered
# .eml files and shows one's headers. Everything it started is stopped and
# the temp dir removed on exit, whatever happens. Gives up after 30 s.
#
# Usage: scripts/demo.sh            (binaries in ./build)
#        BUILD_DIR=/path/to/build scripts/demo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3           # Debian's python, which has python3-aiosmtpd
LIMIT_S=30
DEADLINE=$((SECONDS + LIMIT_S))

BUILD_DIR=${BUILD_DIR:-build}
if [ ! -d "$BUILD_DIR" ] && [ -d "$ROOT/$BUILD_DIR" ]; then
  BUILD_DIR="$ROOT/$BUILD_DIR"
fi
RELAYQ="$BUILD_DIR/relayq"
WORKER="$BUILD_DIR/relayq-worker"

die() { echo "demo: $*" >&2; exit 1; }

for bin in "$RELAYQ" "$WORKER"; do
  [ -x "$bin" ] || die "$bin not found: build first (cmake -S . -B build && cmake --build build), or set BUILD_DIR"
done
command -v redis-server >/dev/null || die "redis-server not found: run scripts/deps.sh"
command -v redis-cli >/dev/null || die "redis-cli not found: run scripts/deps.sh"
[ -x "$PY" ] || die "$PY not found: run scripts/deps.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/relayq-demo.XXXXXX")
PIDS=()

cleanup() {
  local rc=$?
  # Stop in reverse order: worker first (SIGTERM lets it hand jobs back),
  # then the sink and redis. Each gets 5 s before SIGKILL.
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

time_left() { [ "$SECONDS" -lt "$DEADLINE" ]; }

show_log() {
  echo "---- last lines of $1 ----" >&2
  tail -n 30 "$1" >&2 || true
}

# wait_until WHAT PID LOG CMD...: polls CMD until it succeeds; dies when
# process PID exits (showing LOG) or at the demo's deadline.
wait_until() {
  local what=$1 pid=$2 log=$3
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log "$log"
      die "process $pid exited before $what"
    fi
    time_left || die "timed out after ${LIMIT_S} s waiting for $what"
    sleep 0.1
  done
}

# ---- redis-server --------------------------------------------------------------
REDIS_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$TMP" --daemonize no --logfile "$TMP/redis.log" &
PIDS+=($!)
wait_until "redis-server answered PING" "$!" "$TMP/redis.log" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
PREFIX="demo"
echo "redis-server   $REDIS_URL"

# ---- SMTP sink --------------------------------------------------------------------
MAILDIR="$TMP/mail"
"$PY" "$ROOT/tests/fixtures/smtp_server.py" --port 0 --maildir "$MAILDIR" >"$TMP/smtp.out" 2>&1 &
SMTP_PID=$!
PIDS+=("$SMTP_PID")
wait_until "the SMTP sink listened" "$SMTP_PID" "$TMP/smtp.out" grep -q '^listening on ' "$TMP/smtp.out"
SMTP_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/smtp.out")
[ -n "$SMTP_PORT" ] || die "could not read the SMTP sink's port from $TMP/smtp.out"
echo "SMTP sink      smtp://127.0.0.1:$SMTP_PORT -> $MAILDIR"

# ---- worker -------------------------------------------------------------------------
"$WORKER" --redis "$REDIS_URL" --prefix "$PREFIX" --id demo-worker \
  --platform-smtp "smtp://127.0.0.1:$SMTP_PORT" \
  --platform-from no-reply@platform.example >"$TMP/worker.log" 2>&1 &
WORKER_PID=$!
PIDS+=("$WORKER_PID")
echo "relayq-worker  pid $WORKER_PID"

rq() { "$RELAYQ" --redis "$REDIS_URL" --prefix "$PREFIX" "$@"; }

# ---- three jobs -------------------------------------------------------------------
# A small file that looks like a PDF invoice (a valid one-page PDF skeleton).
PDF="$TMP/fattura-42.pdf"
printf '%s\n' '%PDF-1.4' \
  '1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj' \
  '2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj' \
  '3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj' \
  'trailer << /Root 1 0 R >>' '%%EOF' >"$PDF"

RUN=$(date +%s)-$$
ID1="demo-$RUN-plain"
ID2="demo-$RUN-attachment"
ID3="demo-$RUN-utf8"

echo
echo "== sending three jobs"
rq send --tenant demo --id "$ID1" --to alice@example.com \
  --subject "Your order has shipped" --text "Hello Alice, your order is on its way."
rq send --tenant demo --id "$ID2" --to bob@example.com --cc accounts@example.com \
  --subject "Invoice 42" --text "Please find invoice 42 attached." --attach "$PDF"
rq send --tenant demo --id "$ID3" --to chiara@example.it \
  --subject "Fattura n. 42 — Grüße 🚀" --text "Ciao Chiara, ecco la fattura. Viele Grüße!"

# ---- wait for final states -----------------------------------------------------
state_of() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --raw HGET "$PREFIX:status:$1" state 2>/dev/null || true
}

echo
echo "== waiting for delivery (at most ${LIMIT_S} s in all)"
for id in "$ID1" "$ID2" "$ID3"; do
  while :; do
    st=$(state_of "$id")
    case "$st" in
      sent | partial | failed) break ;;
    esac
    if ! kill -0 "$WORKER_PID" 2>/dev/null; then
      show_log "$TMP/worker.log"
      die "relayq-worker exited while job $id was '${st:-unknown}'"
    fi
    if ! time_left; then
      show_log "$TMP/worker.log"
      die "timed out after ${LIMIT_S} s: job $id is still '${st:-unknown}' (is relayq-worker working yet?)"
    fi
    sleep 0.1
  done
  echo "$id: $st"
done

echo
for id in "$ID1" "$ID2" "$ID3"; do
  echo "== relayq status $id"
  rq status "$id"
  echo
done

echo "== delivered messages in the sink"
shopt -s nullglob
EMLS=("$MAILDIR"/*.eml)
[ ${#EMLS[@]} -gt 0 ] || die "no message reached the SMTP sink"
ls -l "${EMLS[@]}"

LAST=${EMLS[${#EMLS[@]}-1]}
echo
echo "== headers of $(basename "$LAST")"
# The header block ends at the first empty line (CRLF line endings).
sed -e 's/\r$//' -e '/^$/q' "$LAST"
echo "== decoded: $("$PY" -c 'import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print("Subject:", m["subject"])' "$LAST")"

FAILED=0
for id in "$ID1" "$ID2" "$ID3"; do
  [ "$(state_of "$id")" = sent ] || FAILED=1
done
if [ "$FAILED" -ne 0 ]; then
  die "not every job was sent; see the statuses above"
fi
echo
echo "demo: all three jobs sent in $SECONDS s"
