#!/usr/bin/env bash
# One load run through a three-node cluster (local-cluster.sh, over three nats-servers) or,
# with STANDALONE=1, through one standalone wagate, on the same set-up as server-load.sh
# (number 2000001 at TIER_100K and 1,000 mps, 90,000 opted-in recipients, mock-meta as Meta),
# then `loadgen http` with the given arguments. VIA=owner (default) sends to the node serving
# the number's partition, VIA=other to another node (every request forwarded over NATS).
# Prints loadgen's summary, the CPU time every process of the run (wagate nodes and
# nats-servers) spent per accepted message, and mock-meta's report.
#   bash bench/scripts/cluster-load.sh --concurrency 256 --messages 100000 --max-secs 15
#   STANDALONE=1 bash bench/scripts/cluster-load.sh --concurrency 8 --batch 1000 --messages 1000000 --max-secs 15
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-cluster-load}
mkdir -p "$DIR" && fresh_dir "$DIR/data"
write_config "$DIR/bench.toml" "$DIR/data" 1000 2000001
start_mock "$DIR/mock.out" --number 2000001:1000:100000 --webhook-url http://127.0.0.1:18090/webhooks/meta
PIDS_FILE=$DIR/cluster/pids
if [ "${STANDALONE:-0}" = 1 ]; then
  trap stop_all EXIT
  start_wagate "$DIR/bench.toml" "$DIR"
  mkdir -p "$DIR/cluster" && echo "$WAGATE" > "$PIDS_FILE"
  PORT=18090
else
  trap 'kill $(cat "$PIDS_FILE") 2>/dev/null || true; stop_all' EXIT
  # The [storage] of the bench config is each node's --storage.data_dir instead.
  grep -v '^\[storage\]\|^data_dir' "$DIR/bench.toml" > "$DIR/extra.toml"
  EXTRA_CONFIG=$DIR/extra.toml DETACH=1 bash bench/scripts/local-cluster.sh "$DIR/cluster" >/dev/null
  # The partition of portfolio 1 (ClusterConfig::partition_of, 16 partitions) and its owner.
  PARTITION=$(python3 -c '
x = 1
m = (1 << 64) - 1
x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & m
x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & m
print((x ^ (x >> 31)) % 16)')
  until curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer bench-tenant-token-00' \
      'http://127.0.0.1:18090/wagate/v1/groups?phone_number_id=2000001' | grep -q 200; do
    sleep 0.2
  done
  OWNER=$(grep -l "serving a partition partition=$PARTITION " "$DIR"/cluster/node-*.log | tail -1)
  case $OWNER in
    *node-a.log) PORTS="18090 18095" ;;
    *node-b.log) PORTS="18095 18096" ;;
    *) PORTS="18096 18090" ;;
  esac
  set -- $PORTS "$@"
  PORT=$1
  [ "${VIA:-owner}" = other ] && PORT=$2
  shift 2
  echo "partition $PARTITION served by $(basename "$OWNER" .log); sending through :$PORT" >&2
fi
opt_in_single_number
approve_template
# CPU ticks of the run's processes: all, and the nats-servers alone (local-cluster.sh writes
# their pids first).
ticks() { for p in $(head -"${1:-99}" "$PIDS_FILE"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
NATS_PIDS=3
[ "${STANDALONE:-0}" = 1 ] && NATS_PIDS=0
t0=$(ticks) n0=$(ticks $NATS_PIDS)
${LOADGEN_BIN:-target/release/loadgen} http --target "http://127.0.0.1:$PORT" --token bench-tenant-token-00 \
  --number 2000001 --recipients 90000 --messages 90000 --max-secs 20 "$@" | tee "$DIR/summary.json"
t1=$(ticks) n1=$(ticks $NATS_PIDS)
[ "$NATS_PIDS" = 0 ] && n0=0 n1=0
python3 - "$DIR/summary.json" "$((t1 - t0))" "$((n1 - n0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
summary = next(json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"accepted"'))
ticks, nats, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = lambda t: t * 1e6 / hz / max(summary["accepted"], 1)
print("cpu_us_per_accepted_message %.1f (wagate %.1f, nats-servers %.1f; %d accepted)" %
      (per(ticks), per(ticks - nats), per(nats), summary["accepted"]))
PY
curl -s http://127.0.0.1:18092/mock/report; echo
