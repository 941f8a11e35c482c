#!/usr/bin/env bash
# The peer baseline under load: a fresh Redis 7 (Debian's redis-server) on 127.0.0.1:16379,
# durable like wagate (append-only file, fsync before answering: appendfsync always), then
# `loadgen --transport redis` with the given extra arguments, at the same workload as
# server-load.sh (one number at 1,000 mps and TIER_100K, 90,000 recipients). AOF=no runs it
# without the append-only file (the issue's other baseline: no durability at all).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${LG_DIR:-/tmp/wagate-load}/redis
source bench/scripts/common.sh
fresh_dir "$DIR"
redis-server --port 16379 --bind 127.0.0.1 --dir "$DIR" --save "" \
  --appendonly "${AOF:-yes}" --appendfsync always > "$DIR/redis.out" 2>&1 &
REDIS=$!
trap 'kill $REDIS 2>/dev/null || true; wait $REDIS 2>/dev/null || true' EXIT
until redis-cli -p 16379 ping >/dev/null 2>&1; do sleep 0.1; done
target/release/loadgen http --transport redis --target redis://127.0.0.1:16379 \
  --number 2000001 --token - --mps 1000 --tier-limit 100000 \
  --recipients 90000 --messages 90000 --max-secs 20 "$@"
