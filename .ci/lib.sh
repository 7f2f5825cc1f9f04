# Sourced by every pass: the environment every pass runs in.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=never
# The build must not need binutils' nm or objcopy: stand-ins that fail loudly
# (made by setup.sh) come first on the PATH.
export PATH="$PWD/target/no-binutils:$PWD/target/cargo-fuzz/bin:$PATH"
export GCMALLOC_REQUIRE_CROSS=1
step() { echo; echo "== $* ($(date +%T))"; }
has_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }
