#!/usr/bin/env bash
# Runs wagate. With no arguments: the server on its embedded defaults (the whatsapp-2021
# profile, RocksDB in ./data, HTTP on 127.0.0.1:8080, gRPC on 127.0.0.1:8081) with the example
# config's demo tenant and number. Any arguments go to the `wagate` command instead, e.g.
# `engine/run.sh simulate --profile whatsapp-2025`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/ensure-deps.sh
if [ $# -eq 0 ]; then
  set -- serve --config engine/wagate.example.toml
fi
cargo run --release -p wagate --bin wagate -- "$@"
