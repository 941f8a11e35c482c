#!/usr/bin/env bash
# One load run: fresh wagate dispatching to loadgen's mock-meta, a number at TIER_100K and
# 1,000 mps, 90,000 opted-in recipients, an approved template, then `loadgen http` with the given
# extra arguments, with the machine's pressure stall figures per second of the run. mock-meta's
# compliance report is printed last. WAGATE_BIN and LOADGEN_BIN run other builds of the server
# and the driver (A/B comparisons).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}
start_single_number_bench "$DIR"
start_pressure
${LOADGEN_BIN:-target/release/loadgen} http --target http://127.0.0.1:18090 --token bench-tenant-token-00 \
  --number 2000001 --recipients 90000 --messages 90000 --max-secs 20 "$@"
stop_pressure
curl -s http://127.0.0.1:18092/mock/report; echo
