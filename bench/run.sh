#!/usr/bin/env bash
# Runs wagate's benchmarks.
#   bash bench/run.sh        everything: the engine benchmarks below, then the load suite
#   bash bench/run.sh engine criterion's decisions, request and webhook parse, the memory probe
#                            (figures printed; the engine sections of docs/benchmarks.md
#                            quote them)
#   bash bench/run.sh load   the load suite: wagate serve with mock-meta and loadgen, the Redis
#                            baseline, dispatch over 1,000 numbers, memory at 10 M contacts;
#                            writes its section of docs/benchmarks.md and docs/plots/*.svg
# RUNS (default 3) runs of each load shape; their median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date +%F)"
echo "machine: $MACHINE"
WHAT=${1:-all}
RUNS=${RUNS:-3}
cargo build --release --workspace --all-targets -q

if [ "$WHAT" = all ] || [ "$WHAT" = engine ]; then
  cargo bench -p wagate-bench --bench decisions -- --noplot
  cargo bench -p wagate-bench --bench request_parse -- --noplot
  cargo bench -p wagate-bench --bench webhook_parse -- --noplot
  python3 bench/medians.py
  cargo run --release -q -p wagate-bench --bin memory -- 1030000 2000000
fi

if [ "$WHAT" = all ] || [ "$WHAT" = load ]; then
  RESULTS=${RESULTS:-target/load-results}
  rm -rf "$RESULTS" && mkdir -p "$RESULTS"
  export LG_DIR=${LG_DIR:-/tmp/wagate-load}
  run() { # NAME SCRIPT ARGS...: RUNS runs, one log each
    local name=$1 script=$2; shift 2
    for i in $(seq 1 "$RUNS"); do
      echo "== $name $i: $script $*"
      bash "bench/scripts/$script" "$@" > "$RESULTS/$name-$i.log" 2>&1 || echo "   (failed, see $RESULTS/$name-$i.log)"
      grep -E "^messages|^dispatch|^rss|^healthz|^send|^cpu-per-request" "$RESULTS/$name-$i.log" || true
    done
  }
  run single server-load.sh --concurrency 256 --messages 300000 --max-secs 15
  # Half the median peak of the closed-loop runs, as an open loop.
  HALF=$(python3 -c "
import json, glob, statistics
rates = [json.loads(l)['messages_per_second'] for f in glob.glob('$RESULTS/single-*.log')
         for l in open(f) if l.startswith('{') and 'messages_per_second' in l]
print(int(statistics.median(rates) / 2))")
  run single-half server-load.sh --concurrency 256 --rate "$HALF" --messages $((HALF * 15)) --max-secs 20
  RUNS=1 run single-modelled server-load.sh --concurrency 64 --max-secs 15 --zipf 1.0 \
    --repliers 1000 --reply-share 0.3 --cold-share 0.05 --retry-share 0.05 --mock http://127.0.0.1:18092
  run bulk server-load.sh --concurrency 8 --batch 1000 --messages 2000000 --max-secs 15
  RUNS=1 run grpc server-load.sh --transport grpc --target http://127.0.0.1:18091 --concurrency 64 --max-secs 15
  RUNS=1 run grpc-stream server-load.sh --transport grpc-stream --target http://127.0.0.1:18091 --concurrency 8 --batch 1000 --messages 2000000 --max-secs 15
  run redis-single redis-load.sh --concurrency 256 --messages 300000 --max-secs 15
  run redis-bulk redis-load.sh --concurrency 8 --batch 1000 --messages 2000000 --max-secs 15
  RUNS=1 run ceiling http-ceiling.sh
  RUNS=1 run dispatch dispatch-load.sh
  RUNS=1 run memory memory-10m.sh
  python3 bench/report.py "$RESULTS" "$MACHINE"
fi
