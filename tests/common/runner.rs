//! The runner of the harness-free test binaries. Each runs its tests in
//! order on the process's only thread (libtest's harness would add a thread,
//! and allocations, to what they measure), prints libtest's lines, and
//! honours a name filter as the first non-flag argument. A failing test
//! panics and so fails the process.
#![allow(dead_code)] // each test binary uses a subset

/// Runs `tests` (name, function) in order; see the module docs.
pub fn run(tests: &[(&str, fn())]) {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let (mut passed, mut filtered) = (0, 0);
    for &(name, test) in tests {
        if !name.contains(filter.as_str()) {
            filtered += 1;
            continue;
        }
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; {filtered} filtered out\n");
}
