#!/usr/bin/env bash
# The consent history export of a business with EVENTS events (1,000,000 by default: one opt-in
# each of as many people, through the admin API, 8 clients at once): the export's time and
# lines, and wagate's resident memory before it and at its peak during it (sampled from /proc
# every 50 ms), so that an export is seen not to hold the history in memory.
#   bash bench/scripts/consent-export.sh        (EVENTS=... to change the size)
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}/consent-export
EVENTS=${EVENTS:-1000000}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 80 4000000
trap stop_all EXIT
start_wagate "$DIR/wagate.toml" "$DIR"
rss_kib() { awk '/VmRSS/ {print $2}' /proc/$WAGATE/status; }
LOADING=$(date +%s%N)
python3 - "$EVENTS" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
events = int(sys.argv[1])
def opt_in(first):
    body = {"phone_number_id": "4000000", "change": "opt_in",
            "to": ["+1650%07d" % p for p in range(first, min(first + 10000, events))]}
    r = urllib.request.Request("http://127.0.0.1:18090/wagate/admin/contacts/consent",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-admin-token-000", "Content-Type": "application/json"})
    urllib.request.urlopen(r).read()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(opt_in, range(0, events, 10000)))
PY
echo "loaded: $EVENTS opt-ins (10,000 a request, 8 clients) in $(( ($(date +%s%N) - LOADING) / 1000000 )) ms"
BEFORE=$(rss_kib)
PEAK=$BEFORE
STARTED=$(date +%s%N)
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" \
  "http://127.0.0.1:18090/wagate/admin/consent/export?phone_number_id=4000000&format=${FORMAT:-ndjson}" \
  > "$DIR/export.out" &
CURL=$!
while kill -0 $CURL 2>/dev/null; do
  NOW=$(rss_kib); [ "$NOW" -gt "$PEAK" ] && PEAK=$NOW
  sleep 0.05
done
wait $CURL
MS=$(( ($(date +%s%N) - STARTED) / 1000000 ))
LINES=$(wc -l < "$DIR/export.out")
BYTES=$(stat -c %s "$DIR/export.out")
echo "export: $LINES lines, $((BYTES / 1048576)) MiB in $MS ms"
echo "rss before: $((BEFORE / 1024)) MiB; peak during the export: $((PEAK / 1024)) MiB (+$(((PEAK - BEFORE) / 1024)) MiB)"
