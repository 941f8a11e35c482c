#!/usr/bin/env bash
# Several ready builds of wagate against each other on the single and bulk paths, alternated:
# odd rounds in the order given, even rounds reversed, so that the machine's drift falls on all
# alike. Each run is `server-load.sh` as `ab-load.sh` runs it. Prints one line per run, then
# the medians.
#   bash bench/scripts/ab-builds.sh ROUNDS NAME=BINARY NAME=BINARY...
# e.g. ab-builds.sh 2 before=/tmp/wagate-e6a2df3 now=target/release/wagate
# A name's runs may also configure the bench tenant: TOML_<name> is added to its table (one
# capability on against the same build with it off), e.g.
#   TOML_callbacks='callback_url = "http://127.0.0.1:18099/hook"' \
#     ab-builds.sh 3 off=target/release/wagate callbacks=target/release/wagate
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:?usage: ab-builds.sh ROUNDS NAME=BINARY...}
shift
[ $# -ge 2 ] || { echo "give at least two NAME=BINARY" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
names=()
for pair in "$@"; do
  name=${pair%%=*}
  cp "${pair#*=}" "$WORK/$name-wagate"
  names+=("$name")
done
for round in $(seq 1 "$ROUNDS"); do
  order=("${names[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[$i]}"); done
  fi
  for name in "${order[@]}"; do
    for mode in single bulk; do
      case $mode in
        single) args=(--concurrency 256 --messages 300000 --max-secs 15) ;;
        bulk) args=(--concurrency 8 --batch 1000 --messages 2000000 --max-secs 15) ;;
      esac
      log="$WORK/$name-$mode-$round.log"
      toml_of="TOML_$name"
      BENCH_TENANT_TOML="${!toml_of:-}" WAGATE_BIN="$WORK/$name-wagate" \
        bash bench/scripts/server-load.sh "${args[@]}" >"$log" 2>&1 || true
      python3 bench/scripts/run-line.py "$log" "$mode" "$name"
    done
  done
done | tee "$WORK/lines"
echo "medians:"
python3 bench/scripts/medians.py "$WORK/lines"
