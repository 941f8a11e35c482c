#!/usr/bin/env bash
# What this machine's loopback HTTP/1.1 allows, measured with wrk (a C client far cheaper per
# request than loadgen): wagate's /healthz (no work at all) and the single send endpoint
# (server-load.sh's set-up, 64 connections, one wrk thread), SECS seconds each. Prints wrk's
# "Requests/sec" lines; the send run's answers are counted by wagate's metrics.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
DIR=${LG_DIR:-/tmp/wagate-load}/ceiling
SECS=${SECS:-8}
rm -rf "$DIR" && mkdir -p "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 1000 2000001
trap stop_all EXIT
start_mock "$DIR/mock.out" --number 2000001:1000:100000 --webhook-url http://127.0.0.1:18090/webhooks/meta
start_wagate "$DIR/wagate.toml" "$DIR"
echo "healthz: $(wrk -t1 -c64 -d"${SECS}s" http://127.0.0.1:18090/healthz | grep Requests/sec)"
opt_in_single_number
approve_template
echo "send: $(wrk -t1 -c64 -d"${SECS}s" -s bench/scripts/wrk-send.lua http://127.0.0.1:18090 | grep Requests/sec)"
curl -s http://127.0.0.1:18090/metrics | grep -E "^wagate_messages_(accepted|queued|refused)_total"
