#!/usr/bin/env bash
# Runs the wagate engine on its embedded default profile (whatsapp-2021): a simulated day of
# traffic on a manual clock, printing each rule's verdicts and the number's usage.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
cargo run --release -p wagate --bin wagate -- "${@:-simulate}"
