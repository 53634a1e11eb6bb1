//! The committed header must be exactly what cbindgen generates from the
//! sources. It is generated here, not by build.rs, so that ordinary builds
//! do not compile cbindgen; `RSEM_WRITE_HEADER=1 cargo test --test header`
//! rewrites `include/rsem.h`.

use std::path::Path;

/// What cbindgen makes of the sources, tidied (see `tidy_header`).
fn generated_header() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let mut raw = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut raw);
    tidy_header(&String::from_utf8(raw).expect("cbindgen writes UTF-8"))
}

#[test]
fn committed_header_matches_cbindgen() {
    let generated = generated_header();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/rsem.h");
    if std::env::var_os("RSEM_WRITE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(path, &generated).expect("include/rsem.h is writable");
    }
    let committed = std::fs::read_to_string(path).expect("include/rsem.h exists");
    assert!(
        committed == generated,
        "include/rsem.h is out of date: regenerate it with \
         `RSEM_WRITE_HEADER=1 cargo test --test header` and commit the result"
    );
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

/// The header without its comments (which may mention POSIX names).
fn code_of(header: &str) -> String {
    let mut code = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("comment is closed");
        rest = &rest[start + end + 2..];
    }
    code.push_str(rest);
    code.lines()
        .map(|line| line.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn header_names_do_not_clash_with_posix() {
    let header = code_of(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/rsem.h"
    )));
    assert!(
        header.contains("sem_new"),
        "comment stripping kept the code"
    );
    for posix in [
        "sem_t",
        "sem_init",
        "sem_destroy",
        "sem_open",
        "sem_close",
        "sem_unlink",
        "sem_wait",
        "sem_trywait",
        "sem_timedwait",
        "sem_clockwait",
        "sem_post",
        "sem_getvalue",
        "SEM_VALUE_MAX",
        "SEM_NSEMS_MAX",
        "SEM_FAILED",
    ] {
        let clash = header
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == posix);
        assert!(!clash, "include/rsem.h declares or uses {posix}");
    }
}

/// Compiles `source` with `compiler` as `language` under `standard`, with
/// every warning an error; fails the test with the compiler's output.
fn compiles_cleanly(compiler: &str, language: &str, standard: &str, source: &std::path::Path) {
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let output = std::process::Command::new(compiler)
        .args(["-x", language, &format!("-std={standard}")])
        .args(["-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
        .arg(format!("-I{include}"))
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} cannot run: {e}"));
    assert!(
        output.status.success(),
        "{} under {standard}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The header compiles without a warning as strict C89, C99, C11 and C++11
/// (`-pedantic -Wall -Wextra -Werror`), as users include it; so does the C++
/// wrapper as C++11 (the oldest the README promises), C++17 and C++20.
#[test]
fn header_is_warning_free_in_every_c_and_cxx_standard() {
    let dir = std::env::temp_dir().join(format!("rsem-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("use.c");
    std::fs::write(&c, "#include \"rsem.h\"\nint main(void) { return 0; }\n").unwrap();
    for standard in ["c89", "c99", "c11"] {
        compiles_cleanly("cc", "c", standard, &c);
    }
    compiles_cleanly("c++", "c++", "c++11", &c);
    let cxx = dir.join("use.cpp");
    std::fs::write(
        &cxx,
        "#include \"rsem.hpp\"\nint main() { rsem::counting_semaphore<8> s(1); \
         s.acquire(); s.release(); return 0; }\n",
    )
    .unwrap();
    for standard in ["c++11", "c++17", "c++20"] {
        compiles_cleanly("c++", "c++", standard, &cxx);
    }
    std::fs::remove_dir_all(&dir).ok();
}
