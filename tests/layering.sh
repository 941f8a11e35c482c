#!/usr/bin/env bash
# The layering rule (docs/ARCHITECTURE.md): the compliance core depends on no I/O crate.
# Prints the offending crates and fails if `cargo tree -p wagate-rules` names any of them.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p wagate-rules -e normal,build --prefix none --format '{p}')
found=$(grep -E '^(tokio|rocksdb|librocksdb-sys|hyper|hyper-util|axum|tonic|mio|socket2)[ -]' <<<"$tree" || true)
if [ -n "$found" ]; then
  echo "wagate-rules depends on I/O crates:" >&2
  echo "$found" >&2
  exit 1
fi
echo "layering: wagate-rules depends on no I/O crate ($(wc -l <<<"$tree") crates in its tree)"
