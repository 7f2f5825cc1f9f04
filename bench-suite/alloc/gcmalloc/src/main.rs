//! The suite with gcmalloc. Flags: `--no-delay` turns type-stable page reuse
//! off; `--qsbr` registers every worker thread, which announces a quiescent
//! state every few hundred operations (a runtime's mutators would).
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use gcm_suite::Hooks;
use gcmalloc::{GcMalloc, ThreadHandle};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

static QSBR: AtomicBool = AtomicBool::new(false);

thread_local! {
    static HANDLE: RefCell<Option<ThreadHandle>> = const { RefCell::new(None) };
}

fn setup(flags: &[String]) {
    for flag in flags {
        match flag.as_str() {
            "--no-delay" => gcmalloc::set_page_reuse_delay(false),
            "--qsbr" => QSBR.store(true, Ordering::Relaxed),
            other => {
                eprintln!("suite-gcmalloc: unknown flag {other} (expected --no-delay or --qsbr)");
                std::process::exit(2);
            }
        }
    }
}

fn enter() {
    if QSBR.load(Ordering::Relaxed) {
        HANDLE.with(|h| *h.borrow_mut() = Some(gcmalloc::register_thread()));
    }
}

fn tick() {
    HANDLE.with(|h| {
        if let Some(h) = &*h.borrow() {
            h.quiescent();
        }
    });
}

fn exit() {
    HANDLE.with(|h| drop(h.borrow_mut().take()));
}

fn main() {
    gcm_suite::child_main(Hooks { setup, enter, tick, exit });
}
