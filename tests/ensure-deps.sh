#!/usr/bin/env bash
# Installs what a fresh machine lacks to build wagate: a Rust toolchain is assumed; RocksDB's
# bindings need libclang (bindgen) and a C++ compiler.
need=()
command -v c++ >/dev/null 2>&1 || need+=(g++)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
