//! loom model of `GcTrigger`'s counts: a deferral (young count moved to the
//! deferred count) racing a reader never makes `pending()` lose allocations
//! it has already seen. (It may count them twice for a moment: the deferral
//! adds before it subtracts.) Batches flushed at thread exit are tested on
//! real threads in `tests/trigger.rs`: loom runs no thread-local destructors
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
