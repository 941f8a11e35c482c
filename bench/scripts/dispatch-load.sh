#!/usr/bin/env bash
# The dispatch path under load: fresh wagate with 1,000 numbers (80 mps each, TIER_100K) in one
# account, 200 opted-in people per number, mock-meta judging every send by Meta's rules (80
# mps per number) and sending statuses back; `loadgen http` puts MESSAGES sends through the
# bulk endpoint, spread over the numbers, then the script waits until mock-meta has taken them
# all (or WAIT_SECS) and prints its report: sends accepted per second, violations, duplicates.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}/dispatch
MESSAGES=${MESSAGES:-600000}
WAIT_SECS=${WAIT_SECS:-120}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 80 $(seq 3000000 3000999)
trap stop_all EXIT
# WEBHOOKS= (empty) runs without status webhooks back to wagate.
start_mock "$DIR/mock.out" --mps 80 --tier-limit 100000 \
  ${WEBHOOKS---webhook-url http://127.0.0.1:18090/webhooks/meta}
start_wagate "$DIR/wagate.toml" "$DIR"
python3 - <<'PY'
import json, urllib.request
for k in range(1000):
    body = {"phone_number_id": str(3000000 + k), "change": "opt_in",
            "to": ["+1650%07d" % p for p in range(k, 200000, 1000)]}
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:18090/wagate/admin/contacts/consent", data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer bench-admin-token-000", "Content-Type": "application/json"})).read()
PY
approve_template
target/release/loadgen http --target http://127.0.0.1:18090 --token bench-tenant-token-00 \
  --number 3000000 --numbers 1000 --recipients 200000 --messages "$MESSAGES" \
  --batch 1000 --concurrency 8 --max-secs 60 "$@"
python3 - "$MESSAGES" "$WAIT_SECS" <<'PY'
import json, sys, time, urllib.request
want, deadline = int(sys.argv[1]), time.time() + int(sys.argv[2])
while True:
    report = json.load(urllib.request.urlopen("http://127.0.0.1:18092/mock/report"))
    if report["accepted"] >= want or time.time() > deadline:
        break
    time.sleep(1)
per_second = report.pop("accepted_per_second")
# The steady part: every full second between the first and the last.
steady = sorted(per_second[1:-1]) or [0]
print("dispatch: %d accepted by mock-meta in %d s; median %d sends/s over the full seconds, best %d"
      % (report["accepted"], len(per_second), steady[len(steady) // 2], max(per_second or [0])))
print(json.dumps(report))
print(json.dumps({"accepted_per_second": per_second}))
PY
