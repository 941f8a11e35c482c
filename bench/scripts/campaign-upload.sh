#!/usr/bin/env bash
# The campaign planner over a large audience: PEOPLE (1,000,000 by default) opted in by the
# consent import, then uploaded as one campaign's audience (`POST /wagate/v1/campaigns`, NDJSON
# streamed, each person screened on their shard and kept on disk, the plan made at the end) to
# `wagate serve` on its defaults. Prints the upload's time and people a second, and wagate's
# resident memory (VmRSS) before and after and its peak (VmHWM) over the whole run.
#   bash bench/scripts/campaign-upload.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}/campaign-upload
PEOPLE=${PEOPLE:-1000000}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 80 4000000
trap stop_all EXIT
python3 - "$PEOPLE" "$DIR" <<'PY'
import json, sys
people, out = int(sys.argv[1]), sys.argv[2]
with open(f"{out}/optins", "w") as f:
    for p in range(people):
        f.write('{"phone_number_id":"4000000","to":"+1650%07d","change":"opt_in"}\n' % p)
with open(f"{out}/audience", "w") as f:
    for p in range(people):
        f.write('{"to":"+1650%07d","parameters":["Ada"]}\n' % p)
PY
WAGATE_ARGS="--http.max_bulk_bytes 268435456 --http.max_body_bytes_held 536870912" \
  start_wagate "$DIR/wagate.toml" "$DIR"
approve_template
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/x-ndjson' \
  --data-binary @"$DIR/optins" http://127.0.0.1:18090/wagate/admin/consent/import > /dev/null
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$WAGATE/status"; }
BEFORE=$(rss VmRSS)
STARTED=$(date +%s%N)
curl -s -H 'Authorization: Bearer bench-tenant-token-00' -H 'Content-Type: application/x-ndjson' \
  --data-binary @"$DIR/audience" \
  'http://127.0.0.1:18090/wagate/v1/campaigns?phone_number_id=4000000&template=order_update' \
  > "$DIR/answer"
MS=$(( ($(date +%s%N) - STARTED) / 1000000 ))
AFTER=$(rss VmRSS)
PEAK=$(rss VmHWM)
python3 - "$DIR/answer" "$MS" "$PEOPLE" "$BEFORE" "$AFTER" "$PEAK" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
ms, people, before, after, peak = (int(v) for v in sys.argv[2:])
days = answer["plan"]["days"]
print(f"campaign upload: {answer['audience']['eligible']} of {people} kept, planned over "
      f"{len(days)} days, in {ms} ms ({people * 1000 // max(ms, 1)} people/s); "
      f"RSS {before // 1024} MiB before, {after // 1024} MiB after, peak {peak // 1024} MiB")
PY
