//! A program with `GcMalloc` as its global allocator doing real
//! collections-heavy work on several threads, with results checked.

use std::collections::{BTreeMap, HashMap};
use std::thread;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

fn churn(seed: u64) -> (u64, usize) {
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    let mut x = seed;
    let mut checksum = 0u64;
    for i in 0..60_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("k{}", x % 5_000);
        let entry = map.entry(key).or_default();
        entry.push(i);
        if entry.len() > 8 {
            checksum = checksum.wrapping_add(entry.drain(..4).sum::<u64>());
        }
        if i % 10_000 == 0 {
            map.retain(|k, v| {
                let keep = !k.ends_with('7');
                if !keep {
                    checksum = checksum.wrapping_add(v.iter().sum::<u64>());
                }
                keep
            });
        }
    }
    let total: u64 = map.values().flatten().sum();
    (checksum.wrapping_add(total), map.len())
}

#[test]
fn multithreaded_collections_churn_matches_single_threaded_results() {
    let expected: Vec<_> = (1..=4).map(churn).collect();
    let got: Vec<_> = (1..=4)
        .map(|seed| thread::spawn(move || churn(seed)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(got, expected);
    // Nothing lost: every index was either drained or retained away into
    // the checksum, or is still in the map.
    for (sum, _) in &got {
        assert_eq!(*sum, (0..60_000u64).sum::<u64>());
    }
}

#[test]
fn strings_and_trees_survive_cross_thread_moves() {
    let tree: BTreeMap<u32, String> = (0..20_000).map(|i| (i, i.to_string().repeat(3))).collect();
    let tree = thread::spawn(move || {
        let mut t = tree;
        t.retain(|k, _| k % 3 != 0);
        t
    })
    .join()
    .unwrap();
    assert_eq!(tree.len(), 20_000 - 6_667);
    assert_eq!(tree[&20], "202020");
}
