//! The suite with snmalloc (`snmalloc-rs`, built with `cc`: no CMake here).
#[global_allocator]
static GLOBAL: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;

fn main() {
    gcm_suite::child_main(gcm_suite::Hooks::NONE);
}
