#!/usr/bin/env bash
# Runs wagate's benchmarks and prints the figures docs/benchmarks.md quotes: criterion's median
# for each benchmark, and the memory probe's bytes per contact.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
cargo bench -p wagate-bench --bench decisions -- --noplot
python3 bench/medians.py
cargo run --release -q -p wagate-bench --bin memory -- 1030000 2000000
