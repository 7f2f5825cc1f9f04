//! The process's resident set, as the kernel counts it.
#![allow(dead_code)] // each test binary uses a subset

/// Resident bytes of this process: `/proc/self/statm`'s second field, in
/// pages of the machine's page size (not always 4 KiB: 16 KiB and 64 KiB
/// pages exist on arm64).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|f| f.parse().ok()).expect("statm's resident field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).expect("a positive page size")
}
