#!/usr/bin/env bash
# `/healthz` latency while bulk uploads flood the server: the same set-up as server-load.sh,
# `loadgen http --batch 1000` with 8 uploads under way for about 12 s, and meanwhile one client
# asking `/healthz` every 20 ms on a kept-alive connection (each answer must come within 10 s).
# Prints the health probe's p50, p99 and max, then loadgen's summary. WAGATE_BIN runs another
# build of the server (A/B comparisons).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/scripts/common.sh
DIR=${LG_DIR:-/tmp/wagate-health}
start_single_number_bench "$DIR"
${LOADGEN_BIN:-target/release/loadgen} http --target http://127.0.0.1:18090 --token bench-tenant-token-00 \
  --number 2000001 --recipients 90000 --concurrency 8 --batch 1000 --messages 3000000 --max-secs 12 \
  > "$DIR/loadgen.out" 2>&1 &
LOADGEN=$!
python3 - <<'PY'
import http.client, time
# Let the flood start, then probe for 10 s.
time.sleep(1)
connection = http.client.HTTPConnection("127.0.0.1", 18090, timeout=10)
took = []
end = time.monotonic() + 10
while time.monotonic() < end:
    start = time.monotonic()
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    took.append((time.monotonic() - start) * 1000)
    assert answer.status == 200, answer.status
    time.sleep(0.02)
took.sort()
pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
print(f"healthz under bulk: {len(took)} probes, p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, "
      f"max {took[-1]:.2f} ms")
PY
wait "$LOADGEN"
tail -n 5 "$DIR/loadgen.out"
