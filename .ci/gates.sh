#!/usr/bin/env bash
# Checks that fail fast: provenance of the vendored C, warnings, what the
# patches cost the alloc/free paths, formatting, lints, docs, the package and
# the MSRV build.
source "$(dirname "$0")/lib.sh"

step "vendor: pristine mimalloc v2.5.2 + patch series == vendor/mimalloc, and it compiles warning-free (-Wall)"
vendor/patches.sh check
# build.rs hides the C compiler's warnings from users; here they fail the
# run (a patch that shifts a positional initializer shows up only as one).
for debug in 0 2; do
  cc -fsyntax-only -Wall -Werror -DMI_DEBUG=$debug -Ivendor/mimalloc/include -I. vendor/mimalloc/src/static.c
done
# and refuses MI_HUGE_PAGE_ABANDON, which would free huge pages without their goal
if cc -fsyntax-only -DMI_HUGE_PAGE_ABANDON=1 -Ivendor/mimalloc/include -I. vendor/mimalloc/src/static.c 2>/dev/null; then
  echo "MI_HUGE_PAGE_ABANDON=1 compiled: csrc/gcmalloc.h must refuse it" >&2; exit 1
fi

step "patches: pristine v2.5.2 vs vendor/mimalloc under callgrind, as build.rs builds both (alloc/free pairs within 0.5%)"
benches/patches_icount.sh

step "layers: no import runs up a layer (root < runtime < pacing), drawn by scripts/layers.py"
mkdir -p target
python3 scripts/layers.py > target/layers.txt || { sed -n '/run up/,$p' target/layers.txt; exit 1; }
tail -1 target/layers.txt

step "words: one word per concept (scripts/words.sh)"
scripts/words.sh

step "gates: rustfmt (rustfmt.toml), and clippy with the [lints] of Cargo.toml, warnings denied"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# cyclotron is a package of its own (examples/cyclotron/Cargo.toml).
cargo fmt --check --manifest-path examples/cyclotron/Cargo.toml
cargo clippy --release --all-targets --manifest-path examples/cyclotron/Cargo.toml -- -D warnings \
  -W clippy::undocumented_unsafe_blocks

step "API docs build without warnings (broken or private links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

step "the packaged crate (cargo package) builds from its tarball"
cargo package 2>&1 | grep -v '^warning: ignoring' || { echo "cargo package failed" >&2; exit 1; }

step "MSRV: the library builds with the declared rust-version (Debian's rustc-web)"
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo build --lib --target-dir target/msrv
