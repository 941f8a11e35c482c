#!/usr/bin/env bash
# The load suite's three headline runs, a base revision's server (A) against the working
# tree's (B), alternated A, B, A, B... so that the machine's drift falls on both alike:
# single requests (closed loop, 256 in flight), bulk (8 x 1,000), and the open loop at a fixed
# rate (RATE, about half the single peak) for its p99. The same loadgen drives both.
#   bash bench/scripts/ab-load.sh BASE_REV [ROUNDS] [RATE]     (ROUNDS: 3, RATE: 25000)
# MODES (env) chooses the runs (default "single bulk half"). Odd rounds run A then B, even
# rounds B then A, so that neither side always follows the other. Prints one line per run and
# the medians. With A_BIN and B_BIN (two builds of wagate already made), nothing is built and
# BASE_REV only names A in the output.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${1:?usage: ab-load.sh BASE_REV [ROUNDS] [RATE]}
ROUNDS=${2:-3}
RATE=${3:-25000}
TARGET=$PWD/target
WORK=$(mktemp -d)
if [ -n "${A_BIN:-}" ] && [ -n "${B_BIN:-}" ]; then
  trap 'rm -rf "$WORK"' EXIT
  cp "$A_BIN" "$WORK/A-wagate"
  cp "$B_BIN" "$WORK/B-wagate"
else
  git worktree add -f --detach "$WORK/base" "$BASE" >/dev/null
  trap 'git worktree remove --force "$WORK/base"; rm -rf "$WORK"' EXIT

  # The working tree first, then the base in its worktree (sharing the target directory, so only
  # the workspace's crates compile again), then the working tree's sources touched: cargo keeps
  # one fingerprint per crate, and the base's build would otherwise pass for the tree's.
  cargo build -q --release --workspace --all-targets
  cp target/release/wagate "$WORK/B-wagate"
  (cd "$WORK/base" && CARGO_TARGET_DIR=$TARGET cargo build -q --release -p wagate --bin wagate)
  cp "$TARGET/release/wagate" "$WORK/A-wagate"
  find engine bench loadgen tests -name '*.rs' -exec touch {} +
  cargo build -q --release --workspace --all-targets
fi

run() {
  local side=$1 mode=$2 log="$WORK/$1-$2-$3.log"
  shift 3
  WAGATE_BIN="$WORK/$side-wagate" bash bench/scripts/server-load.sh "$@" >"$log" 2>&1 || true
  python3 bench/scripts/run-line.py "$log" "$mode" "$side"
}

MODES=${MODES:-single bulk half}
for round in $(seq 1 "$ROUNDS"); do
  order="A B"
  [ $((round % 2)) -eq 0 ] && order="B A"
  for side in $order; do
    for mode in $MODES; do
      case $mode in
        single) run "$side" single "$round" --concurrency 256 --messages 300000 --max-secs 15 ;;
        bulk) run "$side" bulk "$round" --concurrency 8 --batch 1000 --messages 2000000 --max-secs 15 ;;
        half) run "$side" half "$round" --concurrency 256 --rate "$RATE" --messages $((RATE * 10)) --max-secs 20 ;;
      esac
    done
  done
done | tee "$WORK/lines"
echo "medians (A = $BASE, B = working tree):"
python3 bench/scripts/medians.py "$WORK/lines"
