#!/usr/bin/env bash
# Standalone against a three-node cluster, alternated in one session (cluster-load.sh): single
# requests (256 in flight) and bulk (8 x 1,000), through the standalone server, through the
# cluster node that owns the number's partition, and through another node (every request
# forwarded over NATS). One line per run, then the medians.
#   bash bench/scripts/ab-cluster.sh [ROUNDS]     (ROUNDS: 2)
# With A_BIN and B_BIN (two builds of wagate), the sides are those two builds' clusters
# instead, each through the owner: a change's A/B.
#   A_BIN=/tmp/wagate-a B_BIN=/tmp/wagate-b bash bench/scripts/ab-cluster.sh 3
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
LINES=$(mktemp)
cargo build -q --release --workspace --all-targets
run() {
  local side=$1 mode=$2; shift 2
  local log
  log=$(mktemp)
  case $side in
    standalone) STANDALONE=1 bash bench/scripts/cluster-load.sh "$@" > "$log" 2>&1 || true ;;
    owner) VIA=owner bash bench/scripts/cluster-load.sh "$@" > "$log" 2>&1 || true ;;
    other) VIA=other bash bench/scripts/cluster-load.sh "$@" > "$log" 2>&1 || true ;;
    A) WAGATE_BIN=$A_BIN VIA=owner bash bench/scripts/cluster-load.sh "$@" > "$log" 2>&1 || true ;;
    B) WAGATE_BIN=$B_BIN VIA=owner bash bench/scripts/cluster-load.sh "$@" > "$log" 2>&1 || true ;;
  esac
  python3 - "$log" "$side" "$mode" <<'PY'
import json, re, sys
log, side, mode = sys.argv[1:]
text = open(log).read()
summary = next((json.loads(l) for l in text.splitlines() if l.startswith('{"accepted"') and '"latency_us"' in l), None)
cpu = re.search(r"cpu_us_per_accepted_message ([\d.]+)", text)
report = next((json.loads(l) for l in text.splitlines() if l.startswith('{"accepted"') and '"violations"' in l), {})
if summary is None:
    print(f"{mode} {side} no summary (see {log})")
else:
    print(f"{mode} {side} {summary['messages_per_second']:.0f}/s p99 {summary['latency_us']['p99'] / 1000:.1f} ms "
          f"cpu {cpu[1] if cpu else '?'} us/msg violations {report.get('violations', '?')} duplicates {report.get('duplicates', '?')}")
PY
}
SIDES="standalone owner other"
[ -n "${A_BIN:-}" ] && [ -n "${B_BIN:-}" ] && SIDES="A B"
for round in $(seq 1 "$ROUNDS"); do
  for side in $SIDES; do
    run "$side" single --concurrency 256 --messages 150000 --max-secs 12
    run "$side" bulk --concurrency 8 --batch 1000 --messages 1500000 --max-secs 12
  done
done | tee "$LINES"
echo "medians:"
python3 bench/scripts/medians.py "$LINES"
