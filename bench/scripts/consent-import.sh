#!/usr/bin/env bash
# The consent import: PEOPLE rows (1,000,000 by default; NDJSON, or CSV with FORMAT=csv), each an
# opt-in with its source and evidence, sent as PARTS requests (4), two at a time, to
# `POST /wagate/admin/consent/import` of `wagate serve` on its defaults (every row and its
# history record durable, synced group commits). Prints the rows applied and people a second.
#   bash bench/scripts/consent-import.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-load}/consent-import
PEOPLE=${PEOPLE:-1000000}
PARTS=${PARTS:-4}
FORMAT=${FORMAT:-ndjson}
fresh_dir "$DIR"
write_config "$DIR/wagate.toml" "$DIR/data" 80 4000000
trap stop_all EXIT
python3 - "$PEOPLE" "$PARTS" "$FORMAT" "$DIR" <<'PY'
import json, sys
people, parts, fmt, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
per = people // parts
evidence = {"form_url": "https://shop.example/join", "wording": "Send me order updates"}
for part in range(parts):
    with open(f"{out}/part{part}", "w") as f:
        if fmt == "csv":
            f.write("phone_number_id,to,change,topics,source,evidence\n")
            ev = '"' + json.dumps(evidence).replace('"', '""') + '"'
            for p in range(part * per, (part + 1) * per):
                f.write(f"4000000,+1650{p:07d},opt_in,,web_form,{ev}\n")
        else:
            for p in range(part * per, (part + 1) * per):
                f.write(json.dumps({"phone_number_id": "4000000", "to": "+1650%07d" % p,
                    "change": "opt_in", "source": "web_form", "evidence": evidence}) + "\n")
PY
WAGATE_ARGS="--http.max_bulk_bytes 268435456 --http.max_body_bytes_held 536870912" \
  start_wagate "$DIR/wagate.toml" "$DIR"
TYPE=application/x-ndjson; [ "$FORMAT" = csv ] && TYPE=text/csv
STARTED=$(date +%s%N)
for part in $(seq 0 $((PARTS - 1))); do echo $part; done | xargs -P 2 -I{} sh -c \
  "curl -s -H 'Authorization: Bearer $ADMIN_TOKEN' -H 'Content-Type: $TYPE' \
     --data-binary @$DIR/part{} http://127.0.0.1:18090/wagate/admin/consent/import | tail -1 > $DIR/answer{}"
MS=$(( ($(date +%s%N) - STARTED) / 1000000 ))
APPLIED=$(cat "$DIR"/answer* | python3 -c "import json,sys; print(sum(json.loads(l)['applied'] for l in sys.stdin))")
echo "import ($FORMAT): $APPLIED of $PEOPLE rows applied in $MS ms: $(( APPLIED * 1000 / MS )) people/s"
