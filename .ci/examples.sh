#!/usr/bin/env bash
# The benchmarks build; the examples run: short cyclotron forms, the
# type-stable page RSS comparison, the GcHeap noise runs, the quickstart.
source "$(dirname "$0")/lib.sh"

step "benchmarks build"
cargo bench --no-run

step "cyclotron: a short grid (chain), a tree point, two mutator threads, dumpster and gc-arena"
cargo run --release --example cyclotron -- --cycle 10,100 --extra 0,100000 --live 10000 --total 100000 \
  --json target/cyclotron-ci.json --plot target/cyclotron-ci.svg
cargo run --release --example cyclotron -- --workload tree --cycle 10 --extra 10000 --live 10000 --total 100000
cargo run --release --example cyclotron -- --threads 2 --cycle 10 --extra 0,10000 --live 10000 --total 200000
# Real collectors: a short form of `--runtime dumpster|gc-arena --quick`.
cargo run --release --example cyclotron -- --runtime dumpster --cycle 10 --extra 0,100k --live 10k --total 100000
cargo run --release --example cyclotron -- --runtime gc-arena --cycle 10 --extra 0,100k --live 10k --total 100000
cargo run --release --example cyclotron -- --runtime gc-arena --workload tree --cycle 10 --extra 10k --live 10k --total 100000

step "type-stable pages: peak RSS, delay on/off vs stock v2.3.2"
cargo run --release --example page_delay_rss

step "GcHeap beside a 0-500 MiB cache (--noise): collections and peak RSS, GcHeap vs process-wide trigger"
cargo run --release --example gcheap_noise

step "quickstart example"
cargo run --release --example quickstart
