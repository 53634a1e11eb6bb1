//! Build script: for builds that are to be installed, sets the shared
//! library's SONAME on Linux; tells the C test harness the target triple.
//!
//! The C header is not generated here (that would compile cbindgen and
//! about 35 crates into every build): `include/rsem.h` is committed, and
//! `tests/header.rs` regenerates it with cbindgen and fails if it differs
//! (`RSEM_WRITE_HEADER=1 cargo test --test header` rewrites it).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target triple, for the test harness that compiles the C tests.
    let target = env::var("TARGET").expect("TARGET");
    println!("cargo:rustc-env=RSEM_TARGET={target}");

    // The SONAME, for the *target* (build scripts run on the host), only
    // when the builder asks for it (`RSEM_SONAME=librsem.so.0`: CMake does,
    // for what it installs). A plain `cargo build` leaves it out, so that a
    // program linked with `-Ltarget/release -lrsem` records `librsem.so`,
    // the file that is there, and starts (with `-Wl,-rpath` to it): with a
    // SONAME it would look for `librsem.so.0`, which only an install makes.
    println!("cargo:rerun-if-env-changed=RSEM_SONAME");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if let Ok(soname) = env::var("RSEM_SONAME")
        && (target_os == "linux" || target_os == "android")
    {
        assert!(
            soname.starts_with("librsem.so.") && !soname.contains(char::is_whitespace),
            "RSEM_SONAME must look like librsem.so.N, not {soname:?}"
        );
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
}
