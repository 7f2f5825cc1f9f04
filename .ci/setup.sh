#!/usr/bin/env bash
# Installs what the passes need that the machine may lack: the C cross
# compilers of tests/alloc_symbol_prefix.rs, valgrind, CMake (the stock
# baseline, libmimalloc-sys2, builds mimalloc with it), and the MSRV toolchain
# (Debian's rustc-web, whose 1.85 is the declared rust-version: rustup cannot
# fetch toolchains here).
source "$(dirname "$0")/lib.sh"
step "setup: toolchain and the tools the passes use"
cargo --version
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
# Each tool on its own: `command -v a b` succeeds when any one is found.
missing=""
for tool in patch python3 valgrind cmake aarch64-linux-gnu-gcc x86_64-w64-mingw32-gcc i686-w64-mingw32-gcc clang; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
/usr/bin/rustc --version 2>/dev/null | grep -q "^rustc $msrv" || missing="$missing rustc-$msrv"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  debian_msrv=$(apt-cache madison rustc-web | awk -v v="$msrv" '$3 ~ "^"v"[.]" {print $3; exit}')
  [ -n "$debian_msrv" ] || { echo "setup: no rustc-web $msrv in Debian's archive" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patch python3 valgrind cmake \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 clang \
    "rustc-web=$debian_msrv" "cargo-web=$debian_msrv" "libstd-rust-web-dev=$debian_msrv" >/dev/null
fi
mkdir -p target/no-binutils
for tool in nm objcopy; do
  printf '#!/bin/sh\necho "%s must not be needed by the build" >&2\nexit 127\n' "$tool" > "target/no-binutils/$tool"
  chmod +x "target/no-binutils/$tool"
done
