#!/usr/bin/env bash
# Where a request's machine time goes during one load run: `server-load.sh` with the given
# arguments, measured over WINDOW seconds (default 6) starting 3 s into the run. Prints the
# machine's busy and idle time and wagate's CPU time per message accepted in the window (two
# cores give 2,000,000 µs a second), and, when perf is installed, the machine's fdatasync
# calls, futex calls and context switches over the same window. The window must close before
# the run ends (give the run enough messages); the script says when it did not.
#   bash bench/scripts/cost-per-request.sh --concurrency 256 --messages 600000 --max-secs 20
#   bash bench/scripts/cost-per-request.sh --concurrency 256 --rate 18000 --messages 270000 --max-secs 20
set -euo pipefail
cd "$(dirname "$0")/../.."
WINDOW=${WINDOW:-6}
OUT=${LG_DIR:-/tmp/wagate-load}/cost-run.out
mkdir -p "$(dirname "$OUT")"
bash bench/scripts/server-load.sh "$@" > "$OUT" 2>&1 &
RUN=$!
until pgrep -f "loadgen http" >/dev/null; do
  kill -0 "$RUN" 2>/dev/null || { cat "$OUT"; exit 1; }
  sleep 0.2
done
sleep 3
WAGATE=$(pgrep -f -- "${WAGATE_BIN:-target/release/wagate} serve" | head -1)
messages() {
  curl -s http://127.0.0.1:18090/metrics |
    awk '/^wagate_messages_(accepted|queued)_total/ { n += $2 } END { print n + 0 }'
}
machine() { head -1 /proc/stat; }
m0=$(messages) s0=$(machine) w0=$(awk '{print $14 + $15}' "/proc/$WAGATE/stat")
if command -v perf >/dev/null; then
  perf stat -a -x, -e 'syscalls:sys_enter_fdatasync,syscalls:sys_enter_futex,context-switches' \
    -o "$OUT.perf" -- sleep "$WINDOW" || sleep "$WINDOW"
else
  sleep "$WINDOW"
fi
if ! pgrep -f "loadgen http" >/dev/null; then
  wait "$RUN" || true
  head -1 "$OUT"
  echo "the run ended inside the window: give it more messages" >&2
  exit 1
fi
m1=$(messages) s1=$(machine) w1=$(awk '{print $14 + $15}' "/proc/$WAGATE/stat")
wait "$RUN" || true
head -1 "$OUT"
count() { [ -f "$OUT.perf" ] && awk -F, -v e="$1" '$3 ~ e { print $1 }' "$OUT.perf" || echo 0; }
awk -v s0="$s0" -v s1="$s1" -v w=$((w1 - w0)) -v n=$((m1 - m0)) -v hz="$(getconf CLK_TCK)" \
  -v secs="$WINDOW" -v fs="$(count fdatasync)" -v fx="$(count futex)" -v cs="$(count context-switches)" '
  BEGIN {
    split(s0, a, " "); split(s1, b, " ")
    busy = 0; for (k = 2; k <= 9; k++) if (k != 5 && k != 6) busy += b[k] - a[k]
    idle = (b[5] - a[5]) + (b[6] - a[6])
    us = 1e6 / hz
    printf "messages in the window: %d (%.0f/s)\n", n, n / secs
    printf "µs per message: machine busy %.1f (wagate %.1f), idle %.1f\n", busy * us / n, w * us / n, idle * us / n
    if (fs + fx + cs > 0)
      printf "fdatasync %.0f/s (%.1f messages each); futex %.2f and context switches %.2f per message\n",
        fs / secs, (fs > 0 ? n / fs : 0), fx / n, cs / n
  }'
