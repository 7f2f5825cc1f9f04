//! The suite with jemalloc (`tikv-jemallocator`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    gcm_suite::child_main(gcm_suite::Hooks::NONE);
}
