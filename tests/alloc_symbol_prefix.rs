//! The renaming in `build.rs`, proven for targets this machine cannot build
//! Rust for: the patched mimalloc is compiled with the C cross compilers
//! Debian ships (aarch64 Linux ELF, 64- and 32-bit Windows COFF, where 32-bit
//! names carry a leading underscore) and with clang, exactly as `build.rs`
//! does it — compile, list the defined globals with `build/symbols.rs`,
//! compile again through the generated header — and no global symbol may be
//! left without the `gcm_` prefix.
//!
//! A compiler that is not installed is skipped with a line saying so, unless
//! `GCMALLOC_REQUIRE_CROSS=1` (as `.ci/run` sets it, after installing them).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../build/symbols.rs"]
mod symbols;

const PREFIX: &str = "gcm_";

fn mimalloc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/mimalloc")
}

/// Compiles `source` with `cc` into `object`, as a release build of gcmalloc does.
fn compile(cc: &str, source: &Path, include: &Path, object: &Path) {
    let root = mimalloc();
    let output = Command::new(cc)
        .args(["-O1", "-c", "-w", "-DMI_DEBUG=0", "-DMI_BUILD_RELEASE", "-DNDEBUG"])
        .arg("-I")
        .arg(root.join("include"))
        .arg("-I")
        .arg(root.join("src"))
        .arg("-I")
        .arg(env!("CARGO_MANIFEST_DIR")) // gcmalloc's csrc/
        .arg("-I")
        .arg(include)
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        output.status.success(),
        "{cc} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn globals(object: &Path) -> Vec<String> {
    symbols::defined_globals(&std::fs::read(object).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", object.display()))
}

/// Renames mimalloc for the target of `cc` and checks the result.
fn renamed_with(cc: &str) {
    if Command::new(cc).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("GCMALLOC_REQUIRE_CROSS").is_none(),
            "{cc} is not installed, and GCMALLOC_REQUIRE_CROSS is set"
        );
        println!("skipped: {cc} is not installed");
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("symbol_prefix-{cc}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (dir.join("static.o"), dir.join("renamed.o"));
    compile(cc, &mimalloc().join("src/static.c"), &dir, &first);
    let names = globals(&first);
    assert!(names.iter().any(|n| n == "mi_malloc"), "{cc}: no mi_malloc among {names:?}");
    std::fs::write(dir.join("gcm_rename.h"), symbols::rename_header(&names, PREFIX)).unwrap();
    let wrapper = dir.join("gcm_static.c");
    std::fs::write(
        &wrapper,
        format!("#include \"gcm_rename.h\"\n#include \"{}\"\n", mimalloc().join("src/static.c").display()),
    )
    .unwrap();
    compile(cc, &wrapper, &dir, &second);
    let renamed = globals(&second);
    assert_eq!(symbols::unprefixed(&renamed, PREFIX), Vec::<&str>::new(), "{cc}: globals left without the prefix");
    assert_eq!(renamed.len(), names.len(), "{cc}: the renamed object defines other symbols");
    assert!(renamed.iter().any(|n| n == "gcm_mi_malloc"), "{cc}: no gcm_mi_malloc");
    println!("{cc}: {} global symbols, all renamed", names.len());
}

#[test]
fn renamed_for_aarch64_linux() {
    renamed_with("aarch64-linux-gnu-gcc");
}

#[test]
fn renamed_for_64_bit_windows() {
    renamed_with("x86_64-w64-mingw32-gcc");
}

#[test]
fn renamed_for_32_bit_windows_with_leading_underscores() {
    renamed_with("i686-w64-mingw32-gcc");
}

#[test]
fn renamed_with_clang() {
    renamed_with("clang");
}
