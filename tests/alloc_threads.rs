//! Cross-thread frees and thousands of short-lived threads.

use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

#[test]
fn blocks_freed_by_other_threads() {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u8]>>>(4);
    let consumer = thread::spawn(move || {
        let mut freed = 0usize;
        for batch in rx {
            for (i, b) in batch.iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8), "corrupted block");
            }
            freed += batch.len();
        }
        freed
    });
    let producers: Vec<_> = (0..3)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for round in 0..200 {
                    let size = 8 << (round % 12); // 8 B .. 16 KiB
                    let batch: Vec<Box<[u8]>> = (0..100).map(|i| vec![i as u8; size].into_boxed_slice()).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 3 * 200 * 100);
}

#[test]
fn thousands_of_short_lived_threads() {
    // Each thread leaves blocks behind for the main thread to free after
    // the thread (and its mimalloc heap) is gone: abandoned pages.
    let mut survivors = Vec::new();
    for wave in 0..250 {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                thread::spawn(move || {
                    let keep: Vec<String> = (0..20).map(|i| format!("{wave}-{t}-{i}")).collect();
                    let scratch: Vec<Vec<u64>> = (0..50).map(|i| vec![i; 1 + i as usize]).collect();
                    assert_eq!(scratch[49].len(), 50);
                    keep
                })
            })
            .collect();
        for h in handles {
            survivors.push(h.join().unwrap());
        }
        if survivors.len() > 200 {
            survivors.drain(..100);
        }
    }
    assert_eq!(survivors.last().unwrap()[19], "249-15-19");
}
