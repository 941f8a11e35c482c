#!/usr/bin/env bash
# Runs wagate's whole test suite on a fresh machine: installs what is missing, checks the crates'
# layering, then tests every crate in the workspace. Everything builds under --release so that the tests and the benchmarks
# share one build of every dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
bash tests/layering.sh
# --no-fail-fast: one failing test program does not hide what the others say. The three-node
# cluster test (three nats-servers, three wagate nodes, ten crashes) runs on its own after the
# rest: on two cores it would starve the timed waits of the tests beside it.
status=0
cargo test --release --workspace --no-fail-fast "$@" -- --skip cluster_nodes || status=$?
cargo test --release --workspace --test server "$@" -- cluster_nodes || status=$?
exit $status
