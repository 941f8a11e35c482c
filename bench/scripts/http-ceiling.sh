#!/usr/bin/env bash
# What this machine's loopback HTTP/1.1 allows, measured with wrk (a C client far cheaper per
# request than loadgen): wagate's /healthz (no work at all) and the single send endpoint
# (server-load.sh's set-up, 64 connections, one wrk thread), SECS seconds each. Prints wrk's
# "Requests/sec" lines, and where the machine's time went per request: each process's CPU
# time from /proc (wagate, wrk, mock-meta) and the machine's idle time, divided by the
# requests wrk completed (two cores give 2,000,000 µs a second: 2e6 / R µs per request at R
# requests/s). The send run's answers are counted by wagate's metrics.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
DIR=${LG_DIR:-/tmp/wagate-load}/ceiling
SECS=${SECS:-8}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 1000 2000001
trap stop_all EXIT
start_mock "$DIR/mock.out" --number 2000001:1000:100000 --webhook-url http://127.0.0.1:18090/webhooks/meta
start_wagate "$DIR/wagate.toml" "$DIR"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
idle_ticks() { awk '/^cpu /{print $5 + $6}' /proc/stat; }

# measure LABEL WRK-ARGS...: one wrk run; prints its requests/s and the CPU µs per request.
measure() {
  local label=$1
  shift
  local w0 m0 i0 w1 m1 i1 out
  w0=$(cpu_ticks "$WAGATE") m0=$(cpu_ticks "$MOCK") i0=$(idle_ticks)
  out=$(/usr/bin/time -f "wrk-cpu %U %S" wrk -t1 -c64 -d"${SECS}s" "$@" 2>&1)
  w1=$(cpu_ticks "$WAGATE") m1=$(cpu_ticks "$MOCK") i1=$(idle_ticks)
  echo "$label: $(echo "$out" | grep Requests/sec)"
  echo "$out" | awk -v label="$label" -v w=$((w1 - w0)) -v m=$((m1 - m0)) -v i=$((i1 - i0)) \
    -v hz="$(getconf CLK_TCK)" '
    /requests in/ { requests = $1 }
    /wrk-cpu/ { client = ($2 + $3) * 1e6 }
    END {
      us = 1e6 / hz
      printf "cpu-per-request %s: wagate %.1f wrk %.1f mock-meta %.1f idle %.1f\n",
        label, w * us / requests, client / requests, m * us / requests, i * us / requests
    }'
}

measure healthz http://127.0.0.1:18090/healthz
opt_in_single_number
approve_template
measure send -s bench/scripts/wrk-send.lua http://127.0.0.1:18090
curl -s http://127.0.0.1:18090/metrics | grep -E "^wagate_messages_(accepted|queued|refused)_total"
