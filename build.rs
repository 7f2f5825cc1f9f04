//! Builds the vendored, patched mimalloc v2.5.2 under gcmalloc's own names.
//!
//! mimalloc is compiled as one unity translation unit (`src/static.c`), twice:
//!
//! 1. as it is; the `object` crate lists the global symbols the object
//!    defines (ELF, Mach-O or COFF; the platform's leading underscore and
//!    emulated-TLS names are handled in `build/symbols.rs`);
//! 2. through a wrapper that first includes a generated header of
//!    `#define mi_malloc gcm_mi_malloc` lines, one per symbol — jemalloc's
//!    private-namespace approach. The second object is checked: the build
//!    fails, naming the symbol, if any global it defines lacks the prefix.
//!
//! The list comes from the build being made (same flags and features: a
//! debug build defines symbols a release build does not), so whatever the
//! patch series adds is renamed too, and no external tool (`nm`, `objcopy`)
//! is needed. The result links into the same binary as the `mimalloc` /
//! `libmimalloc-sys` / `libmimalloc-sys2` crates without clashing, and neither copy can resolve a
//! call to the other's functions. Symbols the C code only *references*
//! (libc, the OS) are left alone.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "build/symbols.rs"]
mod symbols;

const PREFIX: &str = "gcm_";
const LIB: &str = "gcmalloc_mimalloc";

fn main() {
    let root = Path::new("vendor/mimalloc");
    println!("cargo:rerun-if-changed=vendor/mimalloc/src");
    println!("cargo:rerun-if-changed=vendor/mimalloc/include");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/symbols.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();

    let mut build = cc::Build::new();
    build
        .include(root.join("include"))
        .include(root.join("src"))
        // gcmalloc's own C (`csrc/`), included by `static.c` as `csrc/...`.
        .include(".")
        // The allocator is always optimized, also in `cargo test` builds, so
        // that tests exercise the code that ships and run in reasonable time.
        .opt_level(3)
        .flag_if_supported("-Wno-error=date-time")
        // `GcHeap::visit_blocks` walks abandoned pages too; mimalloc allows it
        // only with this set from the start (reclaim then takes a lock).
        .define("MI_VISIT_ABANDONED", "1")
        .warnings(false);
    configure_target(&mut build, &target_os, &target_env);
    if env::var_os("CARGO_FEATURE_DEBUG").is_some() {
        // Internal assertions (mi_assert_internal), not the expensive ones.
        build.define("MI_DEBUG", "2").define("MI_SHOW_ERRORS", "1");
    } else {
        build.define("MI_DEBUG", "0").define("MI_BUILD_RELEASE", None).define("NDEBUG", None);
    }

    // Under `-Zsanitizer=address` (nightly) mimalloc is instrumented too and
    // tells AddressSanitizer which blocks are live (MI_TRACK_ASAN): a use of
    // a freed block is reported, not just a use of freed OS memory.
    let sanitize = env::var("CARGO_CFG_SANITIZE").unwrap_or_default();
    if sanitize.split(',').any(|s| s == "address") {
        build.define("MI_TRACK_ASAN", "1").flag("-fsanitize=address");
    }
    // `GCMALLOC_TRACK_VALGRIND=1`: the same for valgrind's memcheck (needs its
    // headers, Debian's `valgrind` package).
    println!("cargo:rerun-if-env-changed=GCMALLOC_TRACK_VALGRIND");
    if env::var_os("GCMALLOC_TRACK_VALGRIND").is_some_and(|v| v == "1") {
        build.define("MI_TRACK_VALGRIND", "1");
    }

    // 1. Compile as is and list the globals it defines.
    let objects = build.clone().file(root.join("src/static.c")).compile_intermediates();
    let mut names = Vec::new();
    for object in &objects {
        names.extend(read_globals(object));
    }
    if !names.iter().any(|n| n == "mi_malloc") {
        fail(&format!("no `mi_malloc` among the {} symbols read from {}", names.len(), objects[0].display()));
    }

    // 2. Compile again through the renaming header, and check the result.
    fs::write(out.join("gcm_rename.h"), symbols::rename_header(&names, PREFIX)).expect("writing gcm_rename.h");
    let static_c = fs::canonicalize(root.join("src/static.c")).expect("vendor/mimalloc/src/static.c");
    let wrapper = out.join("gcm_static.c");
    let unity = format!("#include \"gcm_rename.h\"\n#include \"{}\"\n", static_c.display()).replace('\\', "/");
    fs::write(&wrapper, unity).expect("writing gcm_static.c");
    build.file(&wrapper).include(&out).compile(LIB);
    let archive = out.join(if target_env == "msvc" { format!("{LIB}.lib") } else { format!("lib{LIB}.a") });
    let renamed = read_globals(&archive);
    let left = symbols::unprefixed(&renamed, PREFIX);
    if !left.is_empty() {
        fail(&format!(
            "{} global symbol(s) of mimalloc kept their name after renaming, so they could clash with another \
             mimalloc in the same binary: {}",
            left.len(),
            left.join(", ")
        ));
    }

    if target_os == "windows" {
        // What mimalloc calls on Windows (as `libmimalloc-sys` links).
        for lib in ["psapi", "shell32", "user32", "advapi32", "bcrypt"] {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
}

/// Target-specific settings, after mimalloc's own CMake build.
fn configure_target(build: &mut cc::Build, target_os: &str, target_env: &str) {
    // Thread-local model: initial-exec is fastest, but a library loaded at
    // run time (`dlopen`: a Python or Node extension, a plugin) needs
    // local-dynamic, and so does static musl (as mimalloc's CMake sets it).
    let local_dynamic = env::var_os("CARGO_FEATURE_LOCAL_DYNAMIC_TLS").is_some() || target_env == "musl";
    if target_os != "windows" {
        build.flag_if_supported(if local_dynamic { "-ftls-model=local-dynamic" } else { "-ftls-model=initial-exec" });
    }
    if target_env == "musl" {
        build.define("MI_LIBC_MUSL", "1");
    }
    // MSVC compiles mimalloc as C, as mimalloc's own CMake build does by
    // default (`atomic.h` has an MSVC path); `libmimalloc-sys` compiles it as
    // C++ there, which would give the internal functions C++-mangled names.
}

/// The C names of the globals `path` defines; fails the build with a hint if
/// it cannot be read.
fn read_globals(path: &Path) -> Vec<String> {
    let data = fs::read(path).unwrap_or_else(|e| fail(&format!("reading {}: {e}", path.display())));
    symbols::defined_globals(&data).unwrap_or_else(|e| {
        fail(&format!(
            "{}: {e}. The C compiler made an object the `object` crate cannot read; set CC to a compiler \
             for this target (see README, Supported platforms).",
            path.display()
        ))
    })
}

fn fail(message: &str) -> ! {
    eprintln!("error: gcmalloc: {message}");
    panic!("gcmalloc: {message}");
}
