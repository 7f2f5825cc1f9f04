//! Real programs: crates.io libraries whose allocation patterns are real,
//! with drivers and data of our own.

use std::path::{Path, PathBuf};

use super::{Ctx, Rng};

/// Rust sources of the local cargo registry, sorted by path, up to `bytes`.
fn registry_sources(bytes: usize) -> Vec<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let mut files = Vec::new();
    let mut dirs = vec![home.join("registry").join("src")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut total = 0;
    let mut sources = Vec::new();
    for path in files {
        if total >= bytes {
            break;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            total += text.len();
            sources.push(text);
        }
    }
    sources
}

/// `syn` parsing the Rust sources of the local cargo registry (8 MB at scale
/// 1), the files dealt round-robin to the threads; every thread parses its
/// share twice.
pub fn syn_parse(ctx: &Ctx) -> u64 {
    let sources = registry_sources(ctx.ops(8 << 20));
    assert!(!sources.is_empty(), "no Rust sources under $CARGO_HOME/registry/src: run `cargo fetch` first");
    ctx.parallel(|t| {
        let mut items = 0u64;
        for _ in 0..2 {
            for src in sources.iter().skip(t).step_by(ctx.threads) {
                // Files syn cannot parse (newer syntax, build-script
                // templates) count nothing.
                if let Ok(file) = syn::parse_file(src) {
                    items += file.items.len() as u64;
                }
                (ctx.hooks.tick)();
            }
        }
        items
    })
}

/// A `serde_json` round trip of a generated document (records with strings,
/// numbers and nested arrays; about 6 MB of JSON at scale 1 per thread):
/// build, serialize, parse into `Value`, serialize again.
pub fn json_round_trip(ctx: &Ctx) -> u64 {
    let records = ctx.ops(40_000);
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 99);
        let doc: Vec<serde_json::Value> = (0..records)
            .map(|i| {
                let tags: Vec<String> =
                    (0..rng.range(0, 6)).map(|k| format!("tag-{}-{k}", rng.next_u64() % 1000)).collect();
                serde_json::json!({
                    "id": i,
                    "name": format!("record number {i} of thread {t}"),
                    "score": (rng.next_u64() % 10_000) as f64 / 7.0,
                    "tags": tags,
                    "nested": { "a": [1, 2, 3, rng.next_u64() % 100], "b": null, "c": i % 2 == 0 },
                })
            })
            .collect();
        let text = serde_json::to_string(&doc).expect("serializes");
        let back: serde_json::Value = serde_json::from_str(&text).expect("parses");
        let again = serde_json::to_string(&back).expect("serializes");
        (ctx.hooks.tick)();
        (text.len() ^ again.len()) as u64 + back.as_array().map_or(0, |a| a.len() as u64)
    })
}

/// JavaScript on the boa_engine interpreter: object graphs, arrays, string
/// building and a splay-like tree, run by each thread in its own context.
#[cfg(feature = "js")]
pub fn js(ctx: &Ctx) -> u64 {
    const SCRIPT: &str = r#"
        function Node(key, left, right) { this.key = key; this.left = left; this.right = right; this.payload = [key, "v" + key]; }
        function insert(t, k) {
            if (t === null) return new Node(k, null, null);
            if (k < t.key) t.left = insert(t.left, k); else t.right = insert(t.right, k);
            return t;
        }
        function count(t) { return t === null ? 0 : 1 + count(t.left) + count(t.right); }
        function run(rounds) {
            var total = 0;
            for (var r = 0; r < rounds; r++) {
                var tree = null, seed = r + 1;
                for (var i = 0; i < 800; i++) { seed = (seed * 1103515245 + 12345) % 2147483648; tree = insert(tree, seed % 100000); }
                var parts = [];
                for (var j = 0; j < 200; j++) { parts.push({ index: j, text: "item " + j + " of " + r }); }
                var s = parts.map(function (p) { return p.text; }).join(",");
                total += count(tree) + s.length;
            }
            return total;
        }
    "#;
    let rounds = ctx.ops(60);
    ctx.parallel(|_| {
        use boa_engine::{Context, Source};
        let mut context = Context::default();
        context.eval(Source::from_bytes(SCRIPT)).expect("the script loads");
        let result = context.eval(Source::from_bytes(&format!("run({rounds})"))).expect("the script runs");
        (ctx.hooks.tick)();
        result.as_number().unwrap_or(0.0) as u64
    })
}
