#!/usr/bin/env bash
# Runs wagate's whole test suite on a fresh machine: installs what is missing, then tests every
# crate in the workspace. Everything builds under --release so that the tests and the benchmarks
# share one build of every dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
cargo test --release --workspace "$@"
