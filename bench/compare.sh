#!/usr/bin/env bash
# Interleaved A/B runs of bench/run.sh, for comparisons on a noisy machine
# (two workers against one, a change against the last commit): each round
# runs every configuration once, so drift of the machine hits them alike.
#
# Usage: bench/compare.sh ROUNDS "RUN ARGS" "RUN ARGS" ...
#   e.g. bench/compare.sh 3 "-k 1" "-k 2" "-k 2 --concurrency 128"
# A configuration may start with BUILD_DIR=DIR to compare two builds:
#   bench/compare.sh 3 "BUILD_DIR=/tmp/old -k 1" "-k 1"
# Each run is bench/run.sh -n ${N:-60000} --rounds 1 --no-enqueue-one --no-latency --no-ceiling
# --no-slowlog ARGS. Prints one line per run, then the median per
# configuration: drain msg/s, then CPU s per 1,000 messages of the
# workers, redis-server and smtp-sink, and the machine's noise.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
ROUNDS=$1; shift
[[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "compare: ROUNDS is 1-20" >&2; exit 2; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/relayq-compare.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

figures() { # the five numbers of one run's report
  grep -E 'drain rate, msg/s|worker CPU s per|redis-server CPU s per|smtp-sink CPU s per|noise' "$1" |
    awk '{gsub(",", "", $NF); print $NF}' | tr '\n' ' '
}

for ((r = 1; r <= ROUNDS; r++)); do
  i=0
  for cfg in "$@"; do
    i=$((i + 1))
    build=${BUILD_DIR:-build}
    args=$cfg
    if [[ $cfg == BUILD_DIR=* ]]; then build=${cfg%% *}; build=${build#BUILD_DIR=}; args=${cfg#* }; fi
    # shellcheck disable=SC2086
    BUILD_DIR=$build bash "$ROOT/bench/run.sh" -n "${N:-60000}" --rounds 1 --no-enqueue-one --no-latency --no-ceiling --no-slowlog \
      $args >"$OUT/run.log" 2>&1 || { cat "$OUT/run.log" >&2; exit 1; }
    f=$(figures "$OUT/run.log")
    echo "$f" >>"$OUT/cfg$i"
    printf 'round %d  %-40s  %s\n' "$r" "$cfg" "$f"
  done
done
echo "median of $ROUNDS round(s): drain msg/s, CPU s per 1,000 msgs (workers, redis, sink), noise"
i=0
for cfg in "$@"; do
  i=$((i + 1))
  printf '%-40s  ' "$cfg"
  /usr/bin/python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
print("  ".join("%.3f" % statistics.median(c) if max(c) < 10 else "%.0f" % statistics.median(c)
                for c in zip(*rows)))' "$OUT/cfg$i"
done
