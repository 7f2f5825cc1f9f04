//! The suite with mimalloc v3 (the `mimalloc` crate's default).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    gcm_suite::child_main(gcm_suite::Hooks::NONE);
}
