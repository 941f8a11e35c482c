# Shared by the load scripts (sourced): a wagate config with bench numbers, mock-meta, wagate
# itself, stopping both on exit, and the admin set-up every run needs. Ports: wagate HTTP 18090,
# gRPC 18091, mock-meta 18092.
ADMIN_TOKEN=bench-admin-token-000

# fresh_dir DIR: DIR emptied, and the deletion on disk before the run starts: on a filesystem
# that discards freed blocks when its journal commits (ext4 with `discard`, as here), deleting
# a previous run's gigabytes stalls every fsync of the next seconds, which would land in this
# run's latencies.
fresh_dir() {
  rm -rf "$1"
  sync
  mkdir -p "$1"
}

# write_config FILE DATA_DIR MPS NUMBER...: one tenant owning the numbers (account 1, TIER_100K,
# MPS messages/s each), dispatching to mock-meta.
write_config() {
  local file=$1 data=$2 mps=$3; shift 3
  {
    cat <<TOML
[storage]
data_dir = "$data"
[meta]
base_url = "http://127.0.0.1:18092"
app_secret = "bench-app-secret"
[admin]
token = "$ADMIN_TOKEN"
[[tenants]]
name = "bench"
token = "bench-tenant-token-00"
numbers = [$(IFS=,; echo "$*")]
${BENCH_TENANT_TOML:-}
TOML
    for n in "$@"; do
      printf '[[numbers]]\nid = %s\naccount = 1\nportfolio = 1\ntier = "TIER_100K"\nthroughput_mps = %s\n' "$n" "$mps"
    done
  } > "$file"
}

# start_mock OUT ARGS...: mock-meta with the order_update template, Meta's rules and ARGS.
# Meta answers from its own machines: mock-meta gets the CPU before wagate and the driver, so
# that it reads requests when they arrive and judges their timing fairly (as root; else as is).
start_mock() {
  local out=$1; shift
  local nice=""
  [ "$(id -u)" = 0 ] && nice="nice -n -5"
  $nice target/release/loadgen mock-meta --listen 127.0.0.1:18092 --template order_update:en_US \
    --app-secret bench-app-secret --max-secs 900 "$@" > "$out" 2>&1 &
  MOCK=$!
}

# start_wagate CONFIG DIR: wagate serve (WAGATE_BIN, default target/release/wagate, with
# WAGATE_ARGS, e.g. "--storage.sync false"), waiting until it listens.
start_wagate() {
  : > "$2/wagate.out"
  ${WAGATE_BIN:-target/release/wagate} serve --config "$1" --http.listen 127.0.0.1:18090 \
    --grpc.listen 127.0.0.1:18091 ${WAGATE_ARGS:-} >> "$2/wagate.out" 2> "$2/wagate.err" &
  WAGATE=$!
  until grep -q listening "$2/wagate.out"; do sleep 0.2; done
}

# A stop hands over what is due first: wait for it, so runs never overlap.
stop_all() {
  kill "${WAGATE:-}" 2>/dev/null || true; wait "${WAGATE:-}" 2>/dev/null || true
  kill "${MOCK:-}" 2>/dev/null || true; wait "${MOCK:-}" 2>/dev/null || true
}

# approve_template: order_update, approved, for account 1.
approve_template() {
  python3 - <<'PY'
import json, urllib.request
def post(path, body):
    r = urllib.request.Request("http://127.0.0.1:18090" + path, data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-admin-token-000", "Content-Type": "application/json"})
    return urllib.request.urlopen(r).read()
post("/wagate/admin/templates", {"account": 1, "name": "order_update", "language": "en_US",
     "category": "utility", "body": "Hello {{1}}, your order has shipped."})
for s in ["in_review", "approved"]:
    post("/wagate/admin/templates/status", {"account": 1, "name": "order_update", "language": "en_US", "status": s})
PY
}

# opt_in_single_number: the 90,000 recipients +16500000000.. opted in to number 2000001 (the
# single-number runs' set-up).
opt_in_single_number() {
  python3 - <<'PY'
import json, urllib.request
for start in range(0, 90000, 30000):
    body = {"phone_number_id": "2000001", "change": "opt_in",
            "to": ["+1650%07d" % i for i in range(start, start + 30000)]}
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:18090/wagate/admin/contacts/consent", data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-admin-token-000", "Content-Type": "application/json"})).read()
PY
}

# start_pressure: samples the kernel's pressure stall information (/proc/pressure) once a
# second in the background, so that a slow second of a run can be matched with what the
# machine was short of. stop_pressure prints, per second, the milliseconds some task waited
# for a CPU, for I/O, and all tasks for I/O ("full").
start_pressure() {
  [ -r /proc/pressure/io ] || return 0
  PRESSURE_LOG=$(mktemp)
  ( while :; do
      printf '%s %s %s\n' \
        "$(awk '/^some/ {sub("total=", "", $5); print $5}' /proc/pressure/cpu)" \
        "$(awk '/^some/ {sub("total=", "", $5); print $5}' /proc/pressure/io)" \
        "$(awk '/^full/ {sub("total=", "", $5); print $5}' /proc/pressure/io)"
      sleep 1
    done >> "$PRESSURE_LOG" ) &
  PRESSURE=$!
}

stop_pressure() {
  [ -n "${PRESSURE:-}" ] || return 0
  kill "$PRESSURE" 2>/dev/null || true; wait "$PRESSURE" 2>/dev/null || true
  python3 - "$PRESSURE_LOG" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 3]
deltas = [[(b - a) // 1000 for a, b in zip(r0, r1)] for r0, r1 in zip(rows, rows[1:])]
for name, i in (("cpu some", 0), ("io some", 1), ("io full", 2)):
    print("pressure %s ms per second: %s" % (name, [d[i] for d in deltas]))
PY
  rm -f "$PRESSURE_LOG"
}

# The single-number set-up server-load.sh and health-under-bulk.sh share: a fresh data directory
# under $1, mock-meta with number 2000001 at TIER_100K and 1,000 mps, wagate started on it, 90,000
# people opted in, the template approved. Stops both on exit.
start_single_number_bench() {
  mkdir -p "$1" && fresh_dir "$1/data"
  write_config "$1/wagate.toml" "$1/data" 1000 2000001
  trap stop_all EXIT
  start_mock "$1/mock.out" --number 2000001:1000:100000 --webhook-url http://127.0.0.1:18090/webhooks/meta
  start_wagate "$1/wagate.toml" "$1"
  opt_in_single_number
  approve_template
}
