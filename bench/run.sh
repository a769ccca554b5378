#!/usr/bin/env bash
# relayq benchmark harness (bench/README.md explains every figure).
#
# On this machine, on 127.0.0.1 only: starts a private redis-server and
# postfix's smtp-sink in a temp dir, then --rounds times (default 2): (A)
# enqueues N jobs with the C producer API (bench/enqueue.c,
# relayq_enqueue_many) and runs K relayq-worker processes until every job
# is final, (B) right after, the SMTP ceiling: N messages from smtp-source
# straight into the same sink. Each A checks that N jobs have status sent
# and that the sink itself counted N messages (smtp-sink -c), each B that
# the sink counted N more; any difference fails the run. Then relayq_enqueue
# (one job per call) is measured, then a paced phase at half the measured
# drain rate for latency, read only once every paced job is final; and it
# prints the figures with medians and ranges (bench/report.py). Everything it started is stopped
# and the temp dir removed on exit, whatever happens; --timeout bounds the
# whole run.
#
# Usage: bench/run.sh [--profile small|large|tenants|many] [-n N] [-k K]
#          [--attach-bytes N] [--tenants T] [--worker-arg ARG]...
#          [--concurrency C] [--fetch-batch B] [--log-level L]
#          [--latency-rate R | --no-latency] [--latency-seconds S]
#          [--no-ceiling] [--ceiling-sessions S] [--rounds R] [--no-enqueue-one]
#          [--perf] [--no-slowlog] [--redis-tls]
#          [--out DIR] [--timeout S]
#        bench/run.sh --callgrind [--callgrind-n N] [...]
#        bench/run.sh --backlog N [--backlog-seconds S] [--concurrency C]
#        bench/run.sh --suite [--out DIR]
#        (scripts/dev bench ARGS builds a Release tree first and runs this)
# Environment: BUILD_DIR (default ./build) holds relayq-worker and
# librelayq.a.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3   # Debian's python, which has python3-redis
REPORT="$ROOT/bench/report.py"
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -d "$BUILD_DIR" ] && [ -d "$ROOT/$BUILD_DIR" ]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd || echo "$BUILD_DIR")
WORKER="$BUILD_DIR/relayq-worker"
ARGS_AS_GIVEN="$*"

# ---- options -------------------------------------------------------------------
PROFILE=small N="" K=1 CONCURRENCY=256 FETCH_BATCH="" LOG_LEVEL=info
LATENCY=1 LATENCY_RATE="" LATENCY_SECONDS=10
CEILING=1 CEILING_SESSIONS=20 ROUNDS=2 PERF=0 SLOWLOG=1 ENQ_ONE=1
MODE=throughput CALLGRIND_N=500 BACKLOG=0 BACKLOG_SECONDS=60
OUT="" TIMEOUT=900 TIMEOUT_SET=0
ATTACH_BYTES="" TENANTS="" WORKER_ARGS=()

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
need_val() { [ $# -ge 2 ] || die "$1 needs a value (see bench/README.md)"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) need_val "$@"; PROFILE=$2; shift 2 ;;
    -n) need_val "$@"; N=$2; shift 2 ;;
    -k) need_val "$@"; K=$2; shift 2 ;;
    --concurrency) need_val "$@"; CONCURRENCY=$2; shift 2 ;;
    --fetch-batch) need_val "$@"; FETCH_BATCH=$2; shift 2 ;;
    --attach-bytes) need_val "$@"; ATTACH_BYTES=$2; shift 2 ;;
    --tenants) need_val "$@"; TENANTS=$2; shift 2 ;;
    --worker-arg) need_val "$@"; WORKER_ARGS+=("$2"); shift 2 ;;
    --log-level) need_val "$@"; LOG_LEVEL=$2; shift 2 ;;
    --latency-rate) need_val "$@"; LATENCY_RATE=$2; shift 2 ;;
    --latency-seconds) need_val "$@"; LATENCY_SECONDS=$2; shift 2 ;;
    --no-latency) LATENCY=0; shift ;;
    --no-ceiling) CEILING=0; shift ;;
    --ceiling-sessions) need_val "$@"; CEILING_SESSIONS=$2; shift 2 ;;
    --rounds) need_val "$@"; ROUNDS=$2; shift 2 ;;
    --no-enqueue-one) ENQ_ONE=0; shift ;;
    --perf) PERF=1; shift ;;
    --no-slowlog) SLOWLOG=0; shift ;;
    --redis-tls) REDIS_TLS=1; shift ;;
    --callgrind) MODE=callgrind; shift ;;
    --callgrind-n) need_val "$@"; CALLGRIND_N=$2; shift 2 ;;
    --backlog) need_val "$@"; MODE=backlog; BACKLOG=$2; shift 2 ;;
    --backlog-seconds) need_val "$@"; BACKLOG_SECONDS=$2; shift 2 ;;
    --suite) MODE=suite; shift ;;
    --out) need_val "$@"; OUT=$2; shift 2 ;;
    --timeout) need_val "$@"; TIMEOUT=$2; TIMEOUT_SET=1; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown option $1 (see bench/README.md)" ;;
  esac
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
case "$PROFILE" in small|tenants) : "${N:=100000}" ;; large) : "${N:=10000}" ;; many) : "${N:=200000}" ;;
  *) die "--profile is small, large, tenants or many" ;; esac
[ -z "$ATTACH_BYTES" ] || is_uint "$ATTACH_BYTES" || die "--attach-bytes must be a whole number"
[ -z "$TENANTS" ] || is_uint "$TENANTS" || die "--tenants must be a whole number"
for v in N K CONCURRENCY LATENCY_SECONDS CEILING_SESSIONS ROUNDS CALLGRIND_N BACKLOG BACKLOG_SECONDS TIMEOUT; do
  is_uint "${!v}" || die "$v must be a whole number, not '${!v}'"
done
[ -z "$FETCH_BATCH" ] || is_uint "$FETCH_BATCH" || die "--fetch-batch must be a whole number"
[ -z "$LATENCY_RATE" ] || is_uint "$LATENCY_RATE" || die "--latency-rate must be a whole number"
[ "$K" -ge 1 ] && [ "$K" -le 16 ] || die "-k is 1-16 workers"
[ "$N" -ge 1 ] || die "-n must be at least 1"
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 9 ] || die "--rounds is 1-9"

# ---- suite: every figure of docs/performance.md, one directory per run ----------
if [ "$MODE" = suite ]; then
  [ "$TIMEOUT_SET" = 1 ] || TIMEOUT=900
  OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$OUT"
  runs=(
    "small-k1|--profile small -k 1 --rounds 3"
    "small-k2|--profile small -k 2"
    "large-k1|--profile large -k 1"
    "tenants-k1|--profile tenants -k 1"
    "backlog|--backlog 1000000 --concurrency 256"
    "callgrind|--callgrind"
  )
  dirs=()
  for r in "${runs[@]}"; do
    name=${r%%|*} args=${r#*|}
    say "suite: $name: bench/run.sh $args"
    # shellcheck disable=SC2086
    bash "$0" $args --timeout "$TIMEOUT" --out "$OUT/$name" || die "suite: run $name failed"
    dirs+=("$OUT/$name")
  done
  "$PY" "$REPORT" table "${dirs[@]}" | tee "$OUT/table.txt"
  say "suite: results in $OUT"
  exit 0
fi

# ---- prerequisites ----------------------------------------------------------------
[ -x "$WORKER" ] || die "$WORKER not found: build first (scripts/dev bench does), or set BUILD_DIR"
[ -f "$BUILD_DIR/librelayq.a" ] || die "$BUILD_DIR/librelayq.a not found: build the relayq_static target"
for t in redis-server smtp-sink smtp-source pkg-config cc; do
  command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh (postfix ships smtp-sink)"
done
[ -x "$PY" ] && "$PY" -c 'import redis' 2>/dev/null || die "$PY with python3-redis is needed: run scripts/deps.sh"
[ "$MODE" != callgrind ] || command -v valgrind >/dev/null || die "valgrind not found: run scripts/deps.sh"
[ "$PERF" = 0 ] || command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/relayq-bench.XXXXXX")
RES=${OUT:-$TMP/results}
mkdir -p "$RES"
PIDS=()        # long-lived processes, stopped in reverse order
WORKER_PIDS=()
CHILD=""       # the foreground step, so a timeout can stop it
WATCHDOG=""

stop_pid() { # stop_pid PID SECONDS: TERM, then KILL after SECONDS
  local pid=$1 secs=${2:-5} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  [ -z "$CHILD" ] || stop_pid "$CHILD" 2
  for ((i = ${#WORKER_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${WORKER_PIDS[i]}" 35; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 5; done
  [ -z "$WATCHDOG" ] || { kill "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; } || true
  if [ "$rc" -ne 0 ]; then
    for f in "$TMP"/worker-*.log "$TMP"/redis.log; do
      [ -s "$f" ] || continue
      echo "---- last lines of $(basename "$f") ----" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ -n "$OUT" ]; then cp "$TMP"/*.log "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The watchdog: the whole run is bounded, whatever hangs.
# Its sleep dies with it (the trap), so nothing keeps our stdout open.
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT" >/dev/null 2>&1 &
  s=$!
  wait "$s" && echo "bench: gave up after --timeout $TIMEOUT s" >&2 && kill -TERM $$
) &
WATCHDOG=$!

# step CMD...: runs one step in the background and waits for it, so the
# TERM from the watchdog interrupts the wait at once.
step() {
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# ---- the tools ---------------------------------------------------------------------
ENQ="$BUILD_DIR/bench/relayq-bench-enqueue"
if [ ! -x "$ENQ" ] || [ "$ROOT/bench/enqueue.c" -nt "$ENQ" ]; then
  # Not built by CMake (bench/CMakeLists.txt), or older than its source:
  # build it here against the static library, with the project's flags.
  ENQ="$TMP/enqueue"
  # shellcheck disable=SC2046
  cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 -I"$ROOT/include" \
    $(pkg-config --cflags hiredis msgpack openssl) "$ROOT/bench/enqueue.c" "$BUILD_DIR/librelayq.a" \
    $(pkg-config --libs hiredis msgpack openssl) -o "$ENQ" || die "cannot build bench/enqueue.c"
fi

port() { "$PY" "$REPORT" port; }

wait_port() { # wait_port PORT PID LOG WHAT
  local i
  for ((i = 0; i < 200; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$3" >&2; die "$4 exited at start"; }
    sleep 0.05
  done
  die "$4 did not listen on 127.0.0.1:$1 within 10 s"
}

# With --redis-tls the workers talk to Redis over TLS (rediss://, a throwaway
# self-signed certificate for localhost); the producer and the measuring
# scripts keep the plain port, so only the workers' traffic pays for TLS.
start_redis() {
  RPORT=$(port)
  local tls=()
  if [ "${REDIS_TLS:-0}" = 1 ]; then
    TPORT=$(port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
      -addext subjectAltName=DNS:localhost -days 2 -keyout "$TMP/redis-key.pem" -out "$TMP/redis-cert.pem" \
      >/dev/null 2>&1 || die "openssl could not make a certificate"
    tls=(--tls-port "$TPORT" --tls-cert-file "$TMP/redis-cert.pem" --tls-key-file "$TMP/redis-key.pem"
      --tls-ca-cert-file "$TMP/redis-cert.pem" --tls-auth-clients no)
  fi
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis.log" --protected-mode yes --daemonize no "${tls[@]}" &
  PIDS+=($!)
  REDIS_PID=$!
  wait_port "$RPORT" "$REDIS_PID" "$TMP/redis.log" redis-server
  REDIS_URL="redis://127.0.0.1:$RPORT"
  WORKER_REDIS=(--redis "$REDIS_URL")
  [ "${REDIS_TLS:-0}" = 1 ] && WORKER_REDIS=(--redis "rediss://localhost:$TPORT" --redis-ca-file "$TMP/redis-cert.pem")
  return 0
}

start_sink() {
  SPORT=$(port)
  # Room for every worker connection (-m) plus the ceiling's sessions.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  local user=()
  [ "$(id -u)" -ne 0 ] || user=(-u nobody) # as root smtp-sink insists on dropping privileges
  # -c: the sink's own running count of messages (mesg=N), which each
  # phase checks against what it sent.
  smtp-sink "${user[@]}" -c -m 2048 "127.0.0.1:$SPORT" 2048 >"$TMP/sink.log" 2>&1 &
  PIDS+=($!)
  SINK_PID=$!
  wait_port "$SPORT" "$SINK_PID" "$TMP/sink.log" smtp-sink
}

# start_workers K [WRAPPER...]: K workers; pids in WORKER_PIDS and $TMP/pids.
start_workers() {
  local k=$1 i
  shift
  local extra=()
  [ -z "$FETCH_BATCH" ] || extra+=(--fetch-batch "$FETCH_BATCH")
  extra+=("${WORKER_ARGS[@]}")
  WORKER_IDS=""
  for ((i = 1; i <= k; i++)); do
    "$@" "$WORKER" "${WORKER_REDIS[@]}" --platform-smtp "smtp://127.0.0.1:$SPORT" \
      --platform-from bench@platform.example --concurrency "$CONCURRENCY" --id "bench-w$i" \
      --log-level "$LOG_LEVEL" "${extra[@]}" >"$TMP/worker-$i.log" 2>&1 &
    WORKER_PIDS+=($!)
    WORKER_IDS+="${WORKER_IDS:+,}bench-w$i"
  done
  printf '%s\n' "${WORKER_PIDS[@]}" >"$TMP/pids"
}

stop_workers() {
  local i secs=${1:-35}
  for ((i = ${#WORKER_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${WORKER_PIDS[i]}" "$secs"; done
  WORKER_PIDS=()
  rm -f "$TMP/pids" # the next watcher waits for the next workers' pids
}

# watch OUT EXPECT [watch options]: the report.py watcher, started before
# the workers (it takes the baseline, then reads their pids).
start_watch() {
  local out=$1 expect=$2
  shift 2
  rm -f "$TMP/ready"
  "$PY" "$REPORT" watch --redis "$REDIS_URL" --workers "$WORKER_IDS" --pids "$TMP/pids" \
    --ready "$TMP/ready" --sink-pid "$SINK_PID" --expect "$expect" --timeout "$TIMEOUT" \
    --out "$out" "$@" &
  WATCH_PID=$!
  PIDS+=("$WATCH_PID")
  local i
  for ((i = 0; i < 400; i++)); do
    [ -f "$TMP/ready" ] && return 0
    kill -0 "$WATCH_PID" 2>/dev/null || die "the watcher exited at start"
    sleep 0.025
  done
  die "the watcher did not start within 10 s"
}

finish_watch() {
  local rc=0
  CHILD=$WATCH_PID
  wait "$WATCH_PID" || rc=$?
  CHILD=""
  [ "$rc" -eq 0 ] || die "the drain did not complete (see the messages above)"
}

# sink_count: the messages smtp-sink has received so far (its -c counter).
sink_count() {
  local n
  n=$(tail -c 400 "$TMP/sink.log" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1)
  echo "${n:-0}"
}

# sink_sessions: the SMTP sessions smtp-sink has seen end so far (its sess=N
# counts a session when it closes):
# per message, how often a client reconnects.
sink_sessions() {
  local n
  n=$(tail -c 400 "$TMP/sink.log" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*sess=\([0-9]*\).*/\1/p' | tail -n 1)
  echo "${n:-0}"
}

# cpu_ticks PID: utime+stime of PID in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# machine_ticks: "busy idle steal" clock ticks of the whole machine (/proc/stat).
machine_ticks() { awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }

# expect_sink FROM WANT WHAT: waits (up to 10 s, for the counter's last
# update) until the sink counted WANT messages since FROM; else fails.
expect_sink() {
  local from=$1 want=$2 what=$3 i got=0
  for ((i = 0; i < 200; i++)); do
    got=$(($(sink_count) - from))
    [ "$got" -eq "$want" ] && return 0
    [ "$got" -gt "$want" ] && break
    sleep 0.05
  done
  die "$what: smtp-sink counted $got messages, expected $want"
}

ENQ_EXTRA=()
enqueue() { # enqueue OUT ID_PREFIX N [RATE]: adds redis-server's CPU to OUT
  local c0 c1
  c0=$("$PY" "$REPORT" rcpu --redis "$REDIS_URL")
  local more=("${ENQ_EXTRA[@]}")
  [ -z "$ATTACH_BYTES" ] || more+=(--attach-bytes "$ATTACH_BYTES")
  [ -z "$TENANTS" ] || more+=(--tenants "$TENANTS")
  step "$ENQ" --redis "$REDIS_URL" --profile "$PROFILE" -n "$3" --id-prefix "$2" \
    --rate "${4:-0}" --timeout "$TIMEOUT" "${more[@]}" >"$1.tmp" || die "enqueue failed"
  c1=$("$PY" "$REPORT" rcpu --redis "$REDIS_URL")
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); d['redis_cpu_s']=round($c1-$c0,3); \
json.dump(d, open(sys.argv[2],'w'))" "$1.tmp" "$1"
  rm -f "$1.tmp"
}

json() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

commit() {
  local c
  c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || c="$c+dirty"
  echo "$c"
}

write_config() {
  "$PY" - "$RES/config.json" <<EOF
import json, sys
json.dump({"command": "bench/run.sh $ARGS_AS_GIVEN", "profile": "$PROFILE", "k": $K,
           "concurrency": $CONCURRENCY, "n": $N, "commit": "$(commit)", "mode": "$MODE",
           "log_level": "$LOG_LEVEL", "fetch_batch": "${FETCH_BATCH:-default}",
           "host_cpus": $(nproc)}, open(sys.argv[1], "w"), indent=1)
EOF
}

# ---- modes -----------------------------------------------------------------------
# drain_round R: enqueue N jobs (ids b-, or bR- after round 1), start K
# workers, wait until every job is final, check statuses and the sink's
# count against N, stop the workers.
drain_round() {
  local r=$1 sfx="" pfx="b-"
  [ "$r" = 1 ] || { sfx="-r$r"; pfx="b$r-"; }
  say "round $r (A): enqueueing $N $PROFILE jobs (redis $REDIS_URL, sink 127.0.0.1:$SPORT)"
  enqueue "$RES/enqueue$sfx.json" "$pfx" "$N"
  say "$(json "$RES/enqueue$sfx.json" '"enqueued %d in %.2f s: %.0f jobs/s" % (d["n"], d["seconds"], d["rate"])')"
  local slowlog_after
  slowlog_after=$("$PY" -c "print(min(2.0, max(0.3, $N / 20000)))")
  WORKER_IDS=$(seq -s, -f 'bench-w%g' 1 "$K")
  local sl=()
  [ "$SLOWLOG" = 0 ] || [ "$r" != 1 ] || sl=(--slowlog --slowlog-after "$slowlog_after")
  start_watch "$RES/watch$sfx.json" "$N" "${sl[@]}"
  local sink0 sess0
  sink0=$(sink_count)
  sess0=$(sink_sessions)
  start_workers "$K"
  local perf_pid=""
  if [ "$PERF" = 1 ] && [ "$r" = 1 ]; then
    perf record -F 999 -g -o "$TMP/perf.data" -p "$(IFS=,; echo "${WORKER_PIDS[*]},$REDIS_PID,$SINK_PID")" \
      >"$TMP/perf.log" 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  say "round $r (A): draining with $K worker(s), --concurrency $CONCURRENCY"
  finish_watch
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    # Flat profiles: the share of each process, then the hottest symbols
    # (the call graphs stay in perf.data when --out is given).
    perf report -i "$TMP/perf.data" --stdio --no-children -g none --sort comm \
      2>/dev/null | grep '%' >"$RES/perf-comm.txt" || true
    perf report -i "$TMP/perf.data" --stdio --no-children -g none --sort comm,dso,sym \
      --percent-limit 0.5 2>/dev/null | grep '%' >"$RES/perf.txt" || true
    [ -z "$OUT" ] || cp "$TMP/perf.data" "$OUT/perf.data"
    say "perf: CPU samples per process ($RES/perf-comm.txt), then the hottest symbols ($RES/perf.txt)"
    cat "$RES/perf-comm.txt" >&2
    head -n 30 "$RES/perf.txt" >&2
  fi
  step "$PY" "$REPORT" statuses --redis "$REDIS_URL" --id-prefix "$pfx" -n "$N" --require-final 60 \
    --out "$RES/statuses$sfx.json" || die "round $r: not every job became final"
  local sent
  sent=$(json "$RES/statuses$sfx.json" 'd["states"].get("sent", 0)')
  [ "$sent" -eq "$N" ] || die "round $r: $sent of $N jobs have status sent: $(json "$RES/statuses$sfx.json" 'd["states"]')"
  expect_sink "$sink0" "$N" "round $r (A), $sent jobs with status sent"
  "$PY" -c "import json,sys; json.dump({'n': $N, 'sent': $sent, 'sink_messages': $(($(sink_count) - sink0)), \
'sink_sessions': $(($(sink_sessions) - sess0))}, open(sys.argv[1], 'w'))" "$RES/sink$sfx.json"
  stop_workers
  grep -h "stopped:" "$TMP"/worker-*.log >&2 || true
}

# ceiling_round R: N messages of the size the worker sent (bytes the sink
# read per message, less ~210 bytes: the SMTP commands and the headers
# smtp-source adds itself, so the sink reads the same bytes per message in
# A and B, within ~1%) over reused sessions, straight into the same sink,
# right after drain round R, so both see the same machine.
ceiling_round() {
  local r=$1 sfx="" size t0 t1 cmd sink0 sess0 ticks0 ticks1 times_ m0 m1 rchar0 rchar1
  [ "$r" = 1 ] || sfx="-r$r"
  size=$(json "$RES/watch.json" 'max(100, int((d["sink_rchar"] or 0) / max(1, '"$N"')) - 210)')
  cmd="smtp-source -d -s $CEILING_SESSIONS -m $N -l $size -f bench@platform.example -t user@example.com 127.0.0.1:$SPORT"
  say "round $r (B): SMTP ceiling: $cmd"
  sink0=$(sink_count)
  sess0=$(sink_sessions)
  ticks0=$(cpu_ticks "$SINK_PID")
  rchar0=$(awk '/^rchar:/ { print $2 }' "/proc/$SINK_PID/io")
  m0=$(machine_ticks)
  t0=$(date +%s.%N)
  # The subshell's `times` prints its children's CPU (smtp-source's) last.
  # shellcheck disable=SC2086
  step bash -c "$cmd >'$TMP/ceiling.log' 2>&1 || exit 1; times >'$TMP/ceiling.times'" ||
    die "smtp-source failed: $(tail -n 3 "$TMP/ceiling.log")"
  t1=$(date +%s.%N)
  ticks1=$(cpu_ticks "$SINK_PID")
  rchar1=$(awk '/^rchar:/ { print $2 }' "/proc/$SINK_PID/io")
  m1=$(machine_ticks)
  expect_sink "$sink0" "$N" "round $r (B), smtp-source -m $N"
  # "0m0.420s 0m1.250s": user and system seconds of the children.
  times_=$(tail -n 1 "$TMP/ceiling.times" | sed 's/\([0-9]*\)m\([0-9.]*\)s/(\1*60+\2)/g; s/ /+/')
  "$PY" - "$RES/ceiling$sfx.json" <<EOF
import json, sys
s = $t1 - $t0
json.dump({"command": "$cmd", "messages": $N, "seconds": round(s, 3), "rate": $N / s,
           "bytes": $size, "sink_cpu_s": ($ticks1 - $ticks0) / $(getconf CLK_TCK),
           "source_cpu_s": round($times_, 3), "sink_bytes_per_msg": round(($rchar1 - $rchar0) / $N), "sink_sessions": $(($(sink_sessions) - sess0)),
           "machine": dict(zip(("busy_s", "idle_s", "steal_s"), (round((b - a) / $(getconf CLK_TCK), 2)
                      for a, b in zip(map(int, "$m0".split()), map(int, "$m1".split())))))},
          open(sys.argv[1], "w"))
EOF
}

throughput() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    drain_round "$r"
    [ "$CEILING" = 0 ] || ceiling_round "$r"
  done

  # The per-job producer call, one round trip per job, into a queue no
  # worker reads (removed afterwards).
  if [ "$ENQ_ONE" = 1 ]; then
    local n1=$((N < 20000 ? N : 20000))
    say "enqueueing $n1 jobs with relayq_enqueue (one per call)"
    ENQ_EXTRA=(--api one --queue bench-one)
    enqueue "$RES/enqueue-one.json" "o-" "$n1"
    ENQ_EXTRA=()
    say "$(json "$RES/enqueue-one.json" '"enqueued %d in %.2f s: %.0f jobs/s, one per call" % (d["n"], d["seconds"], d["rate"])')"
    "$PY" -c "import redis; redis.Redis.from_url('$REDIS_URL').delete('relayq:queue:bench-one')"
  fi

  if [ "$LATENCY" = 1 ]; then
    local rate m
    rate=${LATENCY_RATE:-$("$PY" -c "
import json
w = json.load(open('$RES/watch.json')); s = json.load(open('$RES/statuses.json'))
n = s['states'].get('sent', 0) + s['states'].get('partial', 0)
t = s['last_final_ms'] / 1000 - w['t_first_fetch']
print(max(1, int(n / t / 2)))")}
    m=$((rate * LATENCY_SECONDS))
    say "paced phase: $m jobs at $rate jobs/s (half the drain rate unless --latency-rate)"
    WORKER_IDS=$(seq -s, -f 'bench-w%g' 1 "$K")
    rm -f "$TMP/paced-done"
    # The watch covers the whole paced enqueue (it cannot end while the
    # producer runs), and the statuses are read once every job is final.
    start_watch "$RES/watch-latency.json" 0 --wait-file "$TMP/paced-done"
    start_workers "$K"
    local sink0
    sink0=$(sink_count)
    enqueue "$RES/enqueue-latency.json" "l-" "$m" "$rate"
    touch "$TMP/paced-done"
    finish_watch
    step "$PY" "$REPORT" statuses --redis "$REDIS_URL" --id-prefix "l-" -n "$m" --require-final 60 \
      --out "$RES/statuses-latency.json" || die "paced phase: not every job became final"
    expect_sink "$sink0" "$m" "paced phase"
    stop_workers
  fi
}

callgrind() {
  local n run cg=()
  for run in 1 2; do
    n=$((CALLGRIND_N * run))
    "$PY" -c "import redis; redis.Redis.from_url('$REDIS_URL').flushall()"
    say "callgrind run $run: $n $PROFILE jobs, one worker under valgrind --tool=callgrind"
    enqueue "$RES/enqueue-cg$run.json" "cg$run-" "$n"
    cp "$RES/enqueue-cg$run.json" "$RES/enqueue.json"
    WORKER_IDS=bench-w1
    start_watch "$RES/watch-cg$run.json" "$n"
    start_workers 1 valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.$run.out"
    finish_watch
    stop_workers 120
    cg+=("$TMP/callgrind.$run.out")
  done
  "$PY" "$REPORT" callgrind --file1 "${cg[0]}" --n1 "$CALLGRIND_N" --file2 "${cg[1]}" \
    --n2 $((2 * CALLGRIND_N)) --per-function "$RES/callgrind-per-message.txt" >"$RES/callgrind.json"
  [ -z "$OUT" ] || cp "${cg[0]}" "${cg[1]}" "$OUT"/
  say "callgrind: instructions per message by function ($RES/callgrind-per-message.txt)"
  sed -n '1,40p' "$RES/callgrind-per-message.txt" >&2
}

backlog() {
  say "backlog: enqueueing $BACKLOG small jobs"
  PROFILE=small
  enqueue "$RES/enqueue.json" "bl-" "$BACKLOG"
  say "$(json "$RES/enqueue.json" '"enqueued %d in %.2f s: %.0f jobs/s" % (d["n"], d["seconds"], d["rate"])')"
  WORKER_IDS=bench-w1
  start_watch "$RES/watch-backlog.json" "$BACKLOG" --duration "$BACKLOG_SECONDS" --rss-interval 1
  start_workers 1
  say "backlog: one worker, --concurrency $CONCURRENCY, RSS sampled each second for $BACKLOG_SECONDS s"
  finish_watch
  stop_workers
  local sent
  sent=$(sed -n 's/.*stopped: sent=\([0-9]*\).*/\1/p' "$TMP/worker-1.log" | tail -n 1)
  "$PY" "$REPORT" backlog --watch "$RES/watch-backlog.json" --backlog "$BACKLOG" \
    --concurrency "$CONCURRENCY" --seconds "$BACKLOG_SECONDS" --delivered "${sent:-0}" --out "$RES/backlog.json"
}

case "$MODE" in callgrind) N=$((2 * CALLGRIND_N)) ;; backlog) N=$BACKLOG PROFILE=small K=1 ;; esac
write_config
start_redis
if [ "$PROFILE" = many ]; then
  # Every tenant owns a hash (a sender identity, as a platform's backend
  # writes), so the worker reads one hash per tenant it meets.
  say "many: writing ${TENANTS:-20} tenant hashes"
  "$PY" - "$REDIS_URL" "${TENANTS:-20}" <<'PYEOF' || die "cannot write the tenant hashes"
import sys, redis
r = redis.Redis.from_url(sys.argv[1])
n = int(sys.argv[2])
p = r.pipeline(transaction=False)
for i in range(n):
    p.hset("relayq:tenant:t%d" % i, mapping={"from_name": "Tenant %d" % i, "reply_to": "help@t%d.example" % i})
    if i % 5000 == 4999:
        p.execute()
p.execute()
PYEOF
fi
start_sink
case "$MODE" in
  throughput) throughput ;;
  callgrind) callgrind ;;
  backlog) backlog ;;
esac
"$PY" "$REPORT" summarize --dir "$RES"
[ -z "$OUT" ] || say "results in $OUT"
