#!/usr/bin/env bash
# The benchmarks build; the examples run: short cyclotron forms, the
# type-stable page RSS comparison, the quickstart.
source "$(dirname "$0")/lib.sh"

step "benchmarks build"
cargo bench --no-run

step "cyclotron's tests: its report, rust-cc's runtime, and the crate docs' examples on dumpster and gc-arena"
cargo test --release --manifest-path examples/cyclotron/Cargo.toml

step "cyclotron: a short grid (chain), a tree point, two mutator threads, dumpster, gc-arena and rust-cc"
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --cycle 10,100 --extra 0,100000 --live 10000 --total 100000 \
  --json target/cyclotron-ci.json --plot target/cyclotron-ci.svg --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --workload tree --cycle 10 --extra 10000 --live 10000 --total 100000 --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --threads 2 --cycle 10 --extra 0,10000 --live 10000 --total 200000 --check
# Real collectors: a short form of `--runtime dumpster|gc-arena|rust-cc --quick`.
# --check fails the step on a FAIL verdict: the peak-RSS verdicts, which
# repeat within a few percent (the time lines are advisory). The toy's runs
# above are judged on stability only: its 0.5x-of-rss and trash goals need
# runs of the default size (the rss gate's 80,000-allocation cap a dozen
# times over), so under 1M objects those lines print "ok"/"miss".
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime dumpster --cycle 10 --extra 0,100k --live 10k --total 100000 --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime gc-arena --cycle 10 --extra 0,100k --live 10k --total 100000 --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime gc-arena --workload tree --cycle 10 --extra 10k --live 10k --total 100000 --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime rust-cc --cycle 10 --extra 0,100k --live 10k --total 100000 --check
# The time-memory frontier, short: three knob values per policy on gc-arena
# (about 10 s), with the balanced policies' verdict; and a soft limit.
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime gc-arena --cycle 10 --extra 100k --live 10k \
  --total 100000 --sweep 3 --policies own,estimate,goal,balanced,incremental --frontier target/cyclotron-frontier-ci.svg
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --cycle 10 --extra 100k --live 10k --total 200000 \
  --policies estimate,balanced --memory-limit 256

step "cyclotron --noise: a 0-500 MiB cache beside the toy, its objects in a GcHeap or not (fails if the GcHeap trigger moves)"
# About 15 s: the estimate policy with and without the cache, --heap gc and
# global, then two mutator threads in a GcHeap; --check exits 1 if the
# GcHeap trigger's collections move by more than 5% either way (peak RSS is
# advisory: huge pages move it by a few %).
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --noise --cycle 10 --extra 10k --live 10k \
  --total 5m --policies estimate --check
cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --noise --heap gc --threads 2 --cycle 10 \
  --extra 10k --live 10k --total 8m --policies estimate --check

step "type-stable pages: peak RSS, delay on/off vs stock v2.5.2"
cargo run --release --example page_delay_rss

step "quickstart example"
cargo run --release --example quickstart
