//! `quiescent()`, `poll()`, `detach()`/`attach()`, reclaiming retired items
//! and the page hooks' goal functions never allocate: dhat counts every
//! allocation in this process.

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn quiescent_and_poll_do_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let me = gcmalloc::register_thread();
    let goal = gcmalloc::qsbr::advance();
    me.quiescent(); // warm-up: lazy thread-locals, the advance log's clock
    assert!(gcmalloc::qsbr::poll(goal));
    // Reclaiming takes due items off the queue into a batch: on the stack,
    // never a heap allocation. (The boxes are made before the count.)
    let mut boxes: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
    let before = dhat::HeapStats::get();
    for _ in 0..1000 {
        gcmalloc::qsbr::retire(boxes.pop().unwrap());
        me.quiescent();
        let g = gcmalloc::qsbr::advance();
        assert!(!gcmalloc::qsbr::poll(g), "this thread holds it");
        me.quiescent();
        assert!(gcmalloc::qsbr::poll(g), "scan path");
        assert!(gcmalloc::qsbr::poll(g), "cached path");
        me.detach();
        me.attach();
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
    drop(me);
}

/// Runs without libtest (`harness = false`): this is the only thread, so
/// dhat's process-wide counts are this check's.
fn main() {
    quiescent_and_poll_do_not_allocate();
    println!("test quiescent_and_poll_do_not_allocate ... ok");
}
