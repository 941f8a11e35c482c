#!/usr/bin/env bash
# Resident memory of `wagate serve` with 10,000 numbers and 10,000,000 contacts: each number
# gets 1,000 people opted in through the admin API (8 clients at once); then RSS from /proc,
# once loaded and once more after a restart (which restores everything from RocksDB).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}/memory
PEOPLE=${PEOPLE:-10000000}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 80 $(seq 4000000 4009999)
start() { start_wagate "$DIR/wagate.toml" "$DIR"; }
rss() { echo "rss $1: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/$WAGATE/status)"; }
trap stop_all EXIT
start
rss "empty, 10,000 numbers"
python3 - "$PEOPLE" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
people = int(sys.argv[1])
def opt_in(k):
    body = {"phone_number_id": str(4000000 + k), "change": "opt_in",
            "to": ["+1650%07d" % p for p in range(k, people, 10000)]}
    r = urllib.request.Request("http://127.0.0.1:18090/wagate/admin/contacts/consent",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-admin-token-000", "Content-Type": "application/json"})
    urllib.request.urlopen(r).read()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(opt_in, range(10000)))
PY
rss "$PEOPLE contacts loaded"
kill $WAGATE; wait $WAGATE || true
STARTED=$(date +%s%N)
start
echo "rss restart: listening again after $(( ($(date +%s%N) - STARTED) / 1000000 )) ms"
rss "$PEOPLE contacts restored from disk"
