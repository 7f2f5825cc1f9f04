//! The runner of the harness-free test binaries. Each runs its tests in
//! order on the process's only thread (libtest's harness would add a thread,
//! and allocations, to what they measure), prints libtest's lines, and reads
//! libtest's arguments: names to run (a test runs if its name contains one),
//! `--skip NAME` to leave some out, other flags ignored. A failing test
//! panics and so fails the process.
#![allow(dead_code)] // each test binary uses a subset

/// Runs `tests` (name, function) in order; see the module docs.
pub fn run(tests: &[(&str, fn())]) {
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            skips.extend(args.next());
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    let selected = |name: &str| {
        (filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
            && !skips.iter().any(|s| name.contains(s.as_str()))
    };
    let (mut passed, mut filtered) = (0, 0);
    for &(name, test) in tests {
        if !selected(name) {
            filtered += 1;
            continue;
        }
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    println!("\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; {filtered} filtered out\n");
}
