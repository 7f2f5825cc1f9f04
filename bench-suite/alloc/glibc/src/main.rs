//! The suite with the system allocator (glibc's malloc on Linux).
#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    gcm_suite::child_main(gcm_suite::Hooks::NONE);
}
