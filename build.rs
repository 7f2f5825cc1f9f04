//! Builds the vendored, patched mimalloc v2.3.2 and renames its symbols.
//!
//! mimalloc is compiled as one unity translation unit (`src/static.c`). Every
//! global symbol the object defines is then renamed with the `gcm_` prefix
//! (`mi_malloc` -> `gcm_mi_malloc`, `_mi_page_free` -> `gcm__mi_page_free`)
//! by `objcopy --redefine-syms`. Renaming the compiled object, instead of
//! keeping a hand-written list of `#define`s, cannot miss a symbol: whatever
//! the patch series adds is renamed too. The result links into the same
//! binary as the `mimalloc` / `libmimalloc-sys` crates without clashing, and
//! neither copy can resolve a call to the other's functions.
//!
//! Symbols the C code only *references* (libc, and the `gcmalloc_*` hooks that
//! the Rust side of this crate defines) are left alone.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIX: &str = "gcm_";
const LIB: &str = "gcmalloc_mimalloc";

fn main() {
    let root = Path::new("vendor/mimalloc");
    println!("cargo:rerun-if-changed=vendor/mimalloc/src");
    println!("cargo:rerun-if-changed=vendor/mimalloc/include");
    println!("cargo:rerun-if-changed=build.rs");

    let mut build = cc::Build::new();
    build
        .file(root.join("src/static.c"))
        .include(root.join("include"))
        .include(root.join("src"))
        // The allocator is always optimized, also in `cargo test` builds, so
        // that tests exercise the code that ships and run in reasonable time.
        .opt_level(3)
        .flag_if_supported("-Wno-error=date-time")
        .flag_if_supported("-ftls-model=initial-exec")
        .warnings(false);

    if env::var_os("CARGO_FEATURE_DEBUG").is_some() {
        // Internal assertions (mi_assert_internal), not the expensive ones.
        build.define("MI_DEBUG", "2").define("MI_SHOW_ERRORS", "1");
    } else {
        build.define("MI_DEBUG", "0").define("MI_BUILD_RELEASE", None).define("NDEBUG", None);
    }
    build.compile(LIB);

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    rename_symbols(&out.join(format!("lib{LIB}.a")), &out.join("gcm_symbols.map"));
}

/// Prefixes every global symbol that `archive` defines.
fn rename_symbols(archive: &Path, map: &Path) {
    let nm = tool("NM", "nm");
    let listing = Command::new(&nm)
        .args(["-g", "--defined-only", "--format=posix"])
        .arg(archive)
        .output()
        .unwrap_or_else(|e| panic!("running {nm}: {e}"));
    assert!(listing.status.success(), "{nm} failed: {}", String::from_utf8_lossy(&listing.stderr));
    let mut pairs = String::new();
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        // posix format: "<name> <type> <value> <size>"; archive member
        // headers end with ':' and are skipped.
        let mut fields = line.split_whitespace();
        let (Some(name), Some(_kind)) = (fields.next(), fields.next()) else { continue };
        if name.ends_with(':') || name.starts_with(PREFIX) {
            continue;
        }
        pairs.push_str(&format!("{name} {PREFIX}{name}\n"));
    }
    assert!(pairs.contains("mi_malloc "), "no mimalloc symbols found in {}", archive.display());
    fs::write(map, pairs).expect("writing the symbol map");

    let objcopy = tool("OBJCOPY", "objcopy");
    let status = Command::new(&objcopy)
        .arg(format!("--redefine-syms={}", map.display()))
        .arg(archive)
        .status()
        .unwrap_or_else(|e| panic!("running {objcopy}: {e}"));
    assert!(status.success(), "{objcopy} failed to rename symbols");
}

/// The binutils tool to use: `$NM` / `$OBJCOPY` if set, else the plain name.
fn tool(var: &str, default: &str) -> String {
    println!("cargo:rerun-if-env-changed={var}");
    env::var(var).unwrap_or_else(|_| default.to_string())
}
