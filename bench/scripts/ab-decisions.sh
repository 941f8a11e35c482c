#!/usr/bin/env bash
# The decision benchmark and the memory probe, a base revision (A) against the working tree
# (B), alternated A, B, A, B... so that the machine's drift falls on both alike.
#   bash bench/scripts/ab-decisions.sh BASE_REV [ROUNDS]     (ROUNDS: 3)
# The base is built in a temporary git worktree sharing this target directory, so only the
# workspace's own crates are compiled again (the working tree first; see `build` below). Prints one line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${1:?usage: ab-decisions.sh BASE_REV [ROUNDS]}
ROUNDS=${2:-3}
TARGET=$PWD/target
WORK=$(mktemp -d)
git worktree add -f --detach "$WORK/base" "$BASE" >/dev/null
trap 'git worktree remove --force "$WORK/base"; rm -rf "$WORK"' EXIT

# Builds the benchmark and the probe in DIR and copies them to $WORK/SIDE-*.
build() {
  local dir=$1 side=$2
  (cd "$dir" && CARGO_TARGET_DIR=$TARGET cargo bench -q -p wagate-bench --bench decisions \
    --no-run --message-format=json) |
    python3 -c "import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get('executable') and m['target']['name'] == 'decisions': print(m['executable'])" |
    xargs -I{} cp {} "$WORK/$side-decisions"
  (cd "$dir" && CARGO_TARGET_DIR=$TARGET cargo build -q --release -p wagate-bench --bin memory)
  cp "$TARGET/release/memory" "$WORK/$side-memory"
}
# The working tree first: built after the base, it could be taken as up to date (cargo keeps
# one fingerprint per crate, its sources named relative to the workspace, so the base's fresh
# artifacts look newer than the working tree's older files) and B would run A's code.
build "$PWD" B
build "$WORK/base" A
# For the same reason, the working tree's next build must not take the base's artifacts.
find engine bench loadgen tests -name '*.rs' -exec touch {} +

for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    "$WORK/$side-decisions" --bench --noplot >"$WORK/$side-$round.log" 2>&1
    for bench in one_core_inline two_shard_threads; do
      python3 -c "import json; print('$side', $round, '$bench', round(json.load(open('$TARGET/criterion/decisions_1m_contacts/$bench/new/estimates.json'))['median']['point_estimate'] / 1000, 1), 'us per 1,024 events')"
    done
    echo "$side $round memory $("$WORK/$side-memory" 1030000 2000000 | grep -i 'resident bytes per contact')"
  done
done | tee "$WORK/runs.txt"
python3 - "$WORK/runs.txt" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    side, _, bench, value = line.split()[:4]
    if bench != "memory":
        runs.setdefault((bench, side), []).append(float(value))
for (bench, side), values in sorted(runs.items()):
    print(f"median {bench} {side}: {statistics.median(values):.1f} us per 1,024 events")
EOF
