//! cyclotron's report, from the outside: the binary on `--json` files this
//! test writes (`--from-json`), and one short run of rust-cc.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// One run's figures, as `--json` writes them.
fn run(policy: &str, extra: u64, peak_rss_mib: u64, pause_max_ms: f64) -> Value {
    json!({
        "runtime": "rust-cc", "workload": "chain", "cycle": 10, "extra": extra, "live": 10000,
        "cyclic_fraction": 1.0, "threads": 1, "total": 100000, "policy": policy,
        "time_s": 1.0, "peak_rss_bytes": peak_rss_mib * MIB, "anon_huge_bytes": 64 * MIB,
        "mean_rss_bytes": peak_rss_mib * MIB / 2, "gc_time_s": 0.1, "gc_share": 0.1,
        "max_trash": 10000, "pause_p50_ms": pause_max_ms, "pause_p99_ms": pause_max_ms,
        "pause_max_ms": pause_max_ms, "collections": 10, "stable": true, "trash_slope": 0.0
    })
}

/// Writes `runs` to a file of its own and runs cyclotron on it.
fn report(name: &str, runs: &[Value], flags: &[&str]) -> Output {
    let path: PathBuf = std::env::temp_dir().join(format!("cyclotron-test-{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(runs).unwrap()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cyclotron"))
        .arg("--from-json")
        .arg(&path)
        .args(flags)
        .output()
        .expect("cyclotron runs");
    let _ = std::fs::remove_file(&path);
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The columns of the row of `policy` in the first per-point table.
fn row<'a>(text: &'a str, policy: &str) -> Vec<&'a str> {
    let line = text.lines().find(|l| l.starts_with(&format!("{policy} "))).expect("a row per policy");
    line.split_whitespace().collect()
}

#[test]
fn a_ratio_to_a_base_that_prints_as_zero_is_a_dash() {
    let out = report("dash", &[run("own", 0, 10, 0.0), run("estimate", 0, 10, 5.0)], &[]);
    let text = stdout(&out);
    let header = row(&text, "policy");
    let estimate = row(&text, "estimate");
    let at = |name| header.iter().position(|h| *h == name).expect("the column exists");
    assert_eq!(estimate[at("r-p")], "–", "a pause ratio to a base of 0.00 ms:\n{text}");
    assert_eq!(estimate[at("r-rss")], "1.00", "a ratio to a base above zero:\n{text}");
    assert_eq!(estimate[at("hugeMiB")], "64", "AnonHugePages beside the peak RSS:\n{text}");
}

#[test]
fn check_exits_with_1_on_a_failed_verdict() {
    // estimate's peak RSS 2x own's on a row: the peak-RSS verdict fails.
    let failing = [run("own", 0, 100, 1.0), run("estimate", 0, 200, 1.0)];
    let passing = [run("own", 0, 100, 1.0), run("estimate", 0, 100, 1.0)];
    let out = report("fail-check", &failing, &["--check"]);
    assert!(stdout(&out).contains("FAIL"), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(1), "--check and a FAIL:\n{}", stdout(&out));
    assert_eq!(report("fail", &failing, &[]).status.code(), Some(0), "a FAIL without --check");
    let out = report("pass-check", &passing, &["--check"]);
    assert_eq!(out.status.code(), Some(0), "--check and no FAIL:\n{}", stdout(&out));
}

#[test]
fn the_report_opens_with_its_question_and_one_table_per_point() {
    let runs = [run("own", 0, 10, 1.0), run("estimate", 0, 9, 1.0), run("own", 100_000, 90, 1.0)];
    let runs = [&runs[..], &[run("estimate", 100_000, 80, 1.0)]].concat();
    let text = stdout(&report("points", &runs, &[]));
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("each policy decides when to collect"), "first line: {first}");
    let tables: Vec<&str> = text.lines().filter(|l| l.starts_with("chain cycle=10 extra=")).collect();
    assert_eq!(tables.len(), 2, "a table per point:\n{text}");
    // Each point's table holds both policies, one row each, right below it.
    for table in text.split("\nchain cycle=10 extra=").skip(1) {
        let rows: Vec<&str> =
            table.lines().skip(2).take_while(|l| !l.is_empty()).map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(rows, ["own", "estimate"], "{table}");
    }
    let text = stdout(&report("policies", &runs, &["--by", "policy"]));
    assert!(text.contains("\npolicy=own (base)\n") && text.contains("\npolicy=estimate vs base=own\n"), "{text}");
}

/// A short run of each kind: rust-cc's own collection, and a trigger's
/// with rust-cc's automatic collection off.
#[test]
fn rust_cc_collects_when_the_trigger_says_so_and_only_then() {
    let path = std::env::temp_dir().join(format!("cyclotron-test-{}-rust-cc.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_cyclotron"))
        .args(["--runtime", "rust-cc", "--cycle", "10", "--extra", "0", "--live", "1k", "--total", "20000"])
        .args(["--policies", "own,count:2000", "--json"])
        .arg(&path)
        .output()
        .expect("cyclotron runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let collections =
        |policy: &str| runs.iter().find(|r| r["policy"] == policy).unwrap()["collections"].as_u64().unwrap();
    // rust-cc's own threshold follows its live boxes: more often than
    // every 2,000 allocations here.
    assert!(collections("own") > 10, "{runs:?}");
    // A trigger of 2,000 allocations over 20,000: ten at most, and no more
    // from rust-cc's own threshold.
    assert!((5..=10).contains(&collections("count:2000")), "{runs:?}");
    if std::path::Path::new("/proc/self/smaps_rollup").exists() {
        assert!(runs.iter().all(|r| r["anon_huge_bytes"].is_u64()), "AnonHugePages read: {runs:?}");
    }
}
