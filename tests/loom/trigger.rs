//! loom model of `GcTrigger`'s counts: a deferral (young count moved to the
//! deferred count) racing a reader never makes `pending()` lose allocations
//! it has already seen. (It may count them twice for a moment: the deferral
//! adds before it subtracts.) Batches flushed at thread exit are tested on
//! real threads in `tests/pacing_trigger.rs`: loom runs no thread-local destructors
//! before `join`.

use crate::model;
use loom::thread;

use gcmalloc::{GcTrigger, MemorySource};

/// Memory never grows: every check past the threshold defers.
fn flat_trigger() -> GcTrigger {
    GcTrigger::builder().threshold(1).source(MemorySource::Custom(|| 1 << 30)).build()
}

#[test]
fn deferral_never_hides_seen_allocations() {
    model(|| {
        let trigger = loom::sync::Arc::new(flat_trigger());
        let mutator = {
            let trigger = trigger.clone();
            thread::spawn(move || {
                trigger.record_alloc(2);
                assert!(!trigger.should_collect(), "flat memory defers");
            })
        };
        let first = trigger.pending();
        let second = trigger.pending();
        if first >= 2 {
            assert!(second >= 2, "pending went from {first} to {second}");
        }
        mutator.join().unwrap();
        assert_eq!(trigger.pending(), 2);
    });
}

/// `should_collect_once` from three threads on one due collection: exactly
/// one yes, whatever the interleaving of the checks, the yes and the rebase
/// (a rebase published before it had cleared the counts gave two).
#[test]
fn should_collect_once_has_exactly_one_winner() {
    model(|| {
        let trigger = loom::sync::Arc::new(GcTrigger::builder().threshold(1).source(MemorySource::None).build());
        trigger.record_alloc(2);
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                let trigger = trigger.clone();
                thread::spawn(move || usize::from(trigger.should_collect_once()))
            })
            .collect();
        let mut yes = usize::from(trigger.should_collect_once());
        for c in checkers {
            yes += c.join().unwrap();
        }
        assert_eq!(yes, 1, "one due collection, one yes");
    });
}
