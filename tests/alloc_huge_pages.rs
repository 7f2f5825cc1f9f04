//! Transparent huge pages by heap size: a small heap's arena is not marked
//! for huge pages (`VmFlags: hg` in `/proc/self/smaps`), and once the heap
//! passes the threshold its arena is. Runs on the process's only thread
//! (no harness): arenas and the threshold are process-wide.

#[path = "common/runner.rs"]
mod runner;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

/// The `VmFlags` of the mapping that contains `addr`.
fn vm_flags_of(addr: usize) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("reading /proc/self/smaps");
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().map(str::to_owned).collect();
            }
        }
    }
    panic!("no mapping of /proc/self/smaps contains {addr:#x}")
}

fn marked_for_huge_pages(addr: usize) -> bool {
    vm_flags_of(addr).iter().any(|f| f == "hg")
}

/// Live blocks of 1 KiB adding up to `bytes`.
fn hold(bytes: usize) -> Vec<Box<[u8]>> {
    (0..bytes / 1024).map(|i| vec![i as u8; 1024].into_boxed_slice()).collect()
}

/// In a child process with `GCMALLOC_HUGE_PAGE_THRESHOLD_MIB=0` (stock
/// behaviour): the variable is read and no arena is left unmarked. (Whether
/// stock marks an arena depends on the OS mapping it aligned: its fallback,
/// an over-allocation, skips the mark, as under ASan's address layout; so
/// the mark itself is checked only where gcmalloc makes it, in the parent.)
fn stock_threshold_child() {
    assert_eq!(gcmalloc::huge_page_threshold(), 0, "GCMALLOC_HUGE_PAGE_THRESHOLD_MIB=0 was not read");
    let small = hold(4 << 20);
    assert_eq!(gcmalloc::huge_page_deferred_arenas(), 0, "threshold 0 deferred an arena");
    drop(small);
}

fn main() {
    if std::env::var_os("GCMALLOC_HUGE_PAGE_THRESHOLD_MIB").is_some() {
        return stock_threshold_child();
    }
    runner::run(&[("huge_pages_by_heap_size", huge_pages_by_heap_size)]);
}

fn huge_pages_by_heap_size() {
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if mode.is_empty() || mode.contains("[never]") || std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        println!("test huge_pages_by_heap_size ... skipped: transparent huge pages are off here ({})", mode.trim());
        return;
    }
    assert_eq!(gcmalloc::huge_page_threshold(), gcmalloc::DEFAULT_HUGE_PAGE_THRESHOLD);

    let small = hold(16 << 20);
    let addr = small[0].as_ptr() as usize;
    assert!(!marked_for_huge_pages(addr), "a 16 MiB heap's arena is marked for huge pages: {:?}", vm_flags_of(addr));
    assert!(gcmalloc::huge_page_deferred_arenas() >= 1, "the small heap's arena was not remembered as unmarked");

    gcmalloc::set_huge_page_threshold(64 << 20);
    let large = hold(96 << 20);
    assert!(
        marked_for_huge_pages(addr),
        "a 112 MiB heap (threshold 64 MiB) left its arena unmarked: {:?}",
        vm_flags_of(addr)
    );
    assert_eq!(gcmalloc::huge_page_deferred_arenas(), 0, "an arena stayed unmarked past the threshold");
    drop((small, large));

    let child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .env("GCMALLOC_HUGE_PAGE_THRESHOLD_MIB", "0")
        .output()
        .expect("running the test binary again");
    assert!(child.status.success(), "the stock-threshold child failed:\n{}", String::from_utf8_lossy(&child.stderr));
}
