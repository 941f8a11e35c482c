#!/usr/bin/env bash
# A three-node wagate cluster on this machine: three `nats-server` processes (JetStream, one
# cluster, replication 3) and three `wagate serve` nodes over them, each on the embedded
# defaults plus a [cluster] section. Fronts: http://127.0.0.1:18090 (node a), :18095 (b),
# :18096 (c), their gRPC ports :18190, :18195, :18196; any of them takes any request.
#   bash bench/scripts/local-cluster.sh [DIR]          (DIR: /tmp/wagate-cluster, emptied)
# Env: EXTRA_CONFIG=FILE appended to every node's config (tenants, numbers, [meta]);
# PARTITIONS (16), LEASE_SECS (6), WAGATE_BIN (target/release/wagate). It runs until Ctrl-C or
# SIGTERM, then stops the nodes and the servers; with DETACH=1 it returns once every node
# listens, leaving them running (their pids in DIR/pids; `kill $(cat DIR/pids)` stops them).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/wagate-cluster}
WAGATE_BIN=${WAGATE_BIN:-target/release/wagate}
command -v nats-server >/dev/null || { echo "nats-server is needed: apt-get install nats-server" >&2; exit 1; }
[ -x "$WAGATE_BIN" ] || cargo build --release -p wagate --bin wagate
rm -rf "$DIR" && mkdir -p "$DIR"
: > "$DIR/pids"
stop() {
  kill $(cat "$DIR/pids") 2>/dev/null || true
  wait 2>/dev/null || true
}
[ "${DETACH:-0}" = 1 ] || trap stop EXIT INT TERM

ROUTES="nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224"
for i in 0 1 2; do
  mkdir -p "$DIR/nats-$i"
  cat > "$DIR/nats-$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((14222 + i))
jetstream { store_dir: "$DIR/nats-$i" }
cluster { name: wagate, listen: 127.0.0.1:$((16222 + i)), routes: [$ROUTES] }
CONF
  nats-server -c "$DIR/nats-$i.conf" > "$DIR/nats-$i.log" 2>&1 &
  echo $! >> "$DIR/pids"
done

{
  echo "[cluster]"
  echo 'nats_url = "127.0.0.1:14222,127.0.0.1:14223,127.0.0.1:14224"'
  echo "partitions = ${PARTITIONS:-16}"
  echo "lease_secs = ${LEASE_SECS:-6}"
  [ -n "${EXTRA_CONFIG:-}" ] && cat "$EXTRA_CONFIG"
} > "$DIR/wagate.toml"

PORTS=(18090 18095 18096)
GRPC_PORTS=(18190 18195 18196)
NODES=(a b c)
for i in 0 1 2; do
  "$WAGATE_BIN" serve --config "$DIR/wagate.toml" --cluster.node_id "${NODES[$i]}" \
    --storage.data_dir "$DIR/node-${NODES[$i]}" --http.listen "127.0.0.1:${PORTS[$i]}" \
    --grpc.listen "127.0.0.1:${GRPC_PORTS[$i]}" \
    > "$DIR/node-${NODES[$i]}.out" 2> "$DIR/node-${NODES[$i]}.log" &
  echo $! >> "$DIR/pids"
done
for i in 0 1 2; do
  until grep -q listening "$DIR/node-${NODES[$i]}.out"; do
    kill -0 $(tail -3 "$DIR/pids") 2>/dev/null || { cat "$DIR"/node-*.log >&2; exit 1; }
    sleep 0.2
  done
  echo "node ${NODES[$i]}: http://127.0.0.1:${PORTS[$i]}, gRPC 127.0.0.1:${GRPC_PORTS[$i]}  (log $DIR/node-${NODES[$i]}.log)"
done
if [ "${DETACH:-0}" = 1 ]; then
  exit 0
fi
echo "the cluster runs; Ctrl-C stops it"
wait
