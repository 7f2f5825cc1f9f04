//! Installs gcmalloc as the global allocator, does some collections-heavy
//! work on a few threads, and prints what it did.
//!
//! `cargo run --release --example quickstart`

use std::collections::HashMap;
use std::thread;
use std::time::Instant;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

fn main() {
    let start = Instant::now();
    let threads = 4;
    let words: Vec<usize> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for i in 0..200_000usize {
                    *counts.entry(format!("w{}", (i * 7919 + t) % 10_000)).or_default() += 1;
                }
                counts.len()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();
    let v: Vec<u8> = vec![1; 64 << 20];
    println!(
        "gcmalloc (mimalloc {}): {} threads counted {:?} distinct words, then a {} MiB vector at {:p} (owned by gcmalloc: {}), in {:.2?}",
        gcmalloc::mimalloc_version(),
        threads,
        words,
        v.len() >> 20,
        v.as_ptr(),
        gcmalloc::owns(v.as_ptr()),
        start.elapsed()
    );
}
