#!/usr/bin/env bash
# The layering rule (docs/ARCHITECTURE.md): rules <- store <- durable <- server <- binary, with
# cloud-api and proto beside them. Each line below names a crate and the crates its tree must
# not hold; the check fails, printing the offenders, when `cargo tree -p CRATE` names any. Then
# the modules of each crate under engine/ are checked for cycles (tests/module_cycles.py).
set -euo pipefail
cd "$(dirname "$0")/.."

io='tokio|rocksdb|librocksdb-sys|hyper|hyper-util|axum|tonic|mio|socket2'
engine='wagate-durable|wagate-server|wagate'
failed=0

check() {
  local crate=$1 forbidden=$2 why=$3 tree found
  tree=$(cargo tree -p "$crate" -e normal,build --prefix none --format '{p}')
  # The crate itself heads its tree; only what it depends on counts.
  found=$(tail -n +2 <<<"$tree" | grep -E "^($forbidden) " | sort -u || true)
  if [ -n "$found" ]; then
    echo "layering: $crate depends on $why:" >&2
    echo "$found" >&2
    failed=1
  else
    echo "layering: $crate holds no $why ($(sort -u <<<"$tree" | wc -l) crates in its tree)"
  fi
}

check wagate-rules "$io|wagate-[a-z-]+" "I/O crate or other wagate crate"
check wagate-store "$io|$engine|wagate-cloud-api|wagate-proto" "I/O crate (RocksDB is its feature) or upper layer"
check wagate-cloud-api "$io|$engine|wagate-store|wagate-proto" "I/O crate or engine layer"
check wagate-proto "rocksdb|librocksdb-sys|axum|$engine|wagate-rules|wagate-store|wagate-cloud-api" "engine crate or RocksDB"
check wagate-durable "hyper|hyper-util|axum|tonic|mio|socket2|wagate-server|wagate|wagate-proto" "network crate or upper layer"
check wagate-server "wagate" "binary crate"
check wagate-loadgen "rocksdb|librocksdb-sys|$engine|wagate-store" "engine crate or RocksDB"

# Inside each crate: no two top-level modules that name each other, directly or around a loop.
python3 tests/module_cycles.py || failed=1
exit $failed
