//! Build script: generates the C header with cbindgen and, for builds that
//! are to be installed, sets the shared library's SONAME on Linux.
//!
//! The header is written to `$OUT_DIR/rsem.h`; `tests/header.rs` fails if the
//! committed `include/rsem.h` differs from it. To update the committed copy,
//! build with `RSEM_WRITE_HEADER=1`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=RSEM_WRITE_HEADER");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let generated = out_dir.join("rsem.h");
    let mut raw = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut raw);
    let header = String::from_utf8(raw).expect("cbindgen writes UTF-8");
    fs::write(&generated, tidy_header(&header)).expect("OUT_DIR is writable");

    if env::var_os("RSEM_WRITE_HEADER").is_some_and(|v| v == "1") {
        let committed = crate_dir.join("include").join("rsem.h");
        fs::copy(&generated, &committed).expect("include/rsem.h is writable");
    }

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

/// Makes cbindgen's output clean C89 and safe to use: negative integer
/// macros get parentheses (`#define SEM_EINVAL (-1)`, so that
/// `x-SEM_EINVAL` still parses), 64-bit constants get `INT64_C` so their
/// type is `int64_t` on every platform, and `//` comments on preprocessor
/// lines become `/* */`.
fn tidy_header(header: &str) -> String {
    const INT64_CONSTANTS: &[&str] = &["SEM_COUNT_MAX"];
    let mut out = String::with_capacity(header.len() + 64);
    for line in header.lines() {
        // cbindgen ends `#endif` lines with `// ...` comments, which C89
        // does not have (`-std=c89 -pedantic` warns): make them `/* */`.
        if let Some((directive, comment)) = line.split_once("//")
            && directive.starts_with('#')
        {
            out.push_str(&format!("{directive}/* {} */\n", comment.trim()));
            continue;
        }
        let mut words = line.splitn(3, ' ');
        let (Some("#define"), Some(name), Some(value)) = (words.next(), words.next(), words.next())
        else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let is_integer = value
            .strip_prefix('-')
            .unwrap_or(value)
            .bytes()
            .all(|b| b.is_ascii_digit());
        if is_integer && INT64_CONSTANTS.contains(&name) {
            out.push_str(&format!("#define {name} INT64_C({value})\n"));
        } else if is_integer && value.starts_with('-') {
            out.push_str(&format!("#define {name} ({value})\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
