//! Runs the C programs in `c_tests/` against the real C ABI.
//!
//! `cargo test` builds this crate only as an rlib, so the harness first builds
//! `librsem.a` and `librsem.so` with a nested `cargo build --lib` (in its own
//! target directory), then compiles every C program with the C compiler the
//! `cc` crate finds, links it once against the static and once against the
//! shared library, and runs both. With `RSEM_VALGRIND=1` every program runs
//! under valgrind memcheck (and fails on any error it reports); with
//! `RSEM_C_SANITIZE=address` the programs are built with AddressSanitizer and
//! LeakSanitizer (the Rust side is not instrumented, but its heap is: a
//! double `sem_free` or a leaked handle is reported; use-after-free inside
//! the library is valgrind's part).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Every C program in `c_tests/`, each run by the test of the same name.
const PROGRAMS: &[&str] = &[
    "api_basic",
    "async_acquire",
    "cancel",
    "contention",
    "example_epoll_loop",
    "fifo",
    "fork",
    "free_after_acquire",
    "limits",
    "lost_wakeup",
    "mixed_shutdown",
    "posix_coexist",
    "recover",
    "shared",
    "shutdown",
    "signal_release",
    "starvation",
    "timed_race",
    "timeouts",
    "wakeups",
];

/// Every C++ program in `c_tests/cxx/` (tests of include/rsem.hpp, C++20).
const CXX_PROGRAMS: &[&str] = &["chrono_edges", "interface", "stress"];

/// What the static library needs from the system (from
/// `rustc --print native-static-libs` on Linux).
const STATIC_SYSTEM_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding freshly built `librsem.a` and `librsem.so`, built
/// once per test run.
fn library_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target_dir = root().join("target").join("c-abi");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // With the SONAME, as CMake builds what it installs.
        let status = Command::new(cargo)
            .current_dir(root())
            .env("RSEM_SONAME", "librsem.so.0")
            .args(["build", "--lib", "--target-dir"])
            .arg(&target_dir)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building librsem failed");
        let built = target_dir.join("debug");
        // Lay the libraries out as an install would: the shared library under
        // its SONAME, with the `librsem.so` link the linker looks for.
        let dir = root().join("target").join("c-tests").join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(built.join("librsem.a"), dir.join("librsem.a")).expect("librsem.a built");
        std::fs::copy(built.join("librsem.so"), dir.join("librsem.so.0"))
            .expect("librsem.so built");
        let link = dir.join("librsem.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("librsem.so.0", &link).unwrap();
        dir
    })
}

fn compiler(cpp: bool) -> cc::Tool {
    cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .target(env!("RSEM_TARGET"))
        .host(env!("RSEM_TARGET"))
        .opt_level(1)
        .debug(true)
        .cpp(cpp)
        .get_compiler()
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Static,
    Shared,
}

/// How a test program is compiled.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    /// `c_tests/<name>.c` as C.
    C,
    /// `c_tests/<name>.c` compiled as C++11 (the header's C++ guards).
    CAsCxx,
    /// `c_tests/cxx/<name>.cpp` as C++20.
    Cxx,
}

/// Compiles a test program and links it against one of the libraries.
fn compile(name: &str, link: Link, lang: Lang) -> PathBuf {
    let cpp = lang != Lang::C;
    let out_dir = root().join("target").join("c-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let sanitizer = std::env::var("RSEM_C_SANITIZE").unwrap_or_default();
    let exe = out_dir.join(format!(
        "{name}-{sanitizer}{}{}",
        match lang {
            Lang::C => "",
            Lang::CAsCxx => "as-cxx-",
            Lang::Cxx => "cxx-",
        },
        match link {
            Link::Static => "static",
            Link::Shared => "shared",
        }
    ));
    let lib_dir = library_dir();
    let mut cmd = compiler(cpp).to_command();
    let source = match lang {
        Lang::Cxx => root()
            .join("c_tests")
            .join("cxx")
            .join(format!("{name}.cpp")),
        _ => root().join("c_tests").join(format!("{name}.c")),
    };
    match lang {
        Lang::CAsCxx => cmd.args(["-x", "c++", "-std=c++11"]),
        Lang::Cxx => cmd.arg("-std=c++20"),
        Lang::C if name == "posix_coexist" => cmd.arg("-std=c99"),
        Lang::C => cmd.arg("-std=c11"),
    };
    if let Ok(sanitizer) = std::env::var("RSEM_C_SANITIZE") {
        cmd.arg(format!("-fsanitize={sanitizer}"))
            .arg("-fno-omit-frame-pointer");
    }
    cmd.args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(&exe);
    if lang == Lang::CAsCxx {
        // Back to linking objects/libraries as such after `-x c++`.
        cmd.args(["-x", "none"]);
    }
    match link {
        Link::Static => {
            cmd.arg(lib_dir.join("librsem.a")).args(STATIC_SYSTEM_LIBS);
        }
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir).arg("-lrsem");
            cmd.arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
    }
    cmd.arg("-lm");
    let output = cmd.output().expect("the C compiler runs");
    assert!(
        output.status.success(),
        "compiling {name} ({link:?}) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

fn run(exe: &Path) -> Output {
    let mut cmd = if std::env::var_os("RSEM_VALGRIND").is_some_and(|v| v == "1") {
        let mut c = Command::new("valgrind");
        c.args([
            "--tool=memcheck",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--fair-sched=yes",
            "-q",
        ]);
        // The one report that is by design (see the file).
        c.arg(format!(
            "--suppressions={}",
            root().join("c_tests").join("valgrind.supp").display()
        ));
        c.arg(exe).env("RSEM_TEST_SCALE", "20");
        c
    } else {
        Command::new(exe)
    };
    cmd.output()
        .unwrap_or_else(|e| panic!("running {} failed: {e}", exe.display()))
}

/// Compiles `name` against both libraries and checks that each run passes.
fn check(name: &str) {
    check_as(name, Lang::C);
}

fn check_as(name: &str, lang: Lang) {
    for link in [Link::Static, Link::Shared] {
        let exe = compile(name, link, lang);
        let output = run(&exe);
        let stdout = String::from_utf8_lossy(&output.stdout);
        print!("[{name} {link:?}] {stdout}");
        assert!(
            output.status.success(),
            "{name} ({link:?}) failed with {}:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("{name}: ok")),
            "{name} did not finish"
        );
    }
}

#[test]
fn every_c_program_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(root().join("c_tests"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "c").then(|| path.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    found.sort();
    assert_eq!(found, PROGRAMS);
    let mut found: Vec<String> = std::fs::read_dir(root().join("c_tests").join("cxx"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "cpp").then(|| path.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    found.sort();
    assert_eq!(found, CXX_PROGRAMS);
}

#[test]
fn cxx_chrono_edges() {
    check_as("chrono_edges", Lang::Cxx);
}

#[test]
fn cxx_interface() {
    check_as("interface", Lang::Cxx);
}

#[test]
fn cxx_stress() {
    check_as("stress", Lang::Cxx);
}

#[test]
fn api_basic() {
    check("api_basic");
}

#[test]
fn contention() {
    check("contention");
}

#[test]
fn example_epoll_loop() {
    check("example_epoll_loop");
}

#[test]
fn fifo() {
    check("fifo");
}

#[test]
fn fork() {
    check("fork");
}

#[test]
fn free_after_acquire() {
    check("free_after_acquire");
}

#[test]
fn limits() {
    check("limits");
}

#[test]
fn mixed_shutdown() {
    check("mixed_shutdown");
}

#[test]
fn posix_coexist() {
    check("posix_coexist");
}

#[test]
fn shared() {
    check("shared");
}

#[test]
fn recover() {
    check("recover");
}

#[test]
fn posix_coexist_as_cxx() {
    for link in [Link::Static, Link::Shared] {
        let exe = compile("posix_coexist", link, Lang::CAsCxx);
        let output = run(&exe);
        assert!(
            output.status.success(),
            "posix_coexist as C++ ({link:?}) failed"
        );
    }
}

#[test]
fn shutdown() {
    check("shutdown");
}

#[test]
fn async_acquire() {
    check("async_acquire");
}

#[test]
fn cancel() {
    check("cancel");
}

#[test]
fn lost_wakeup() {
    check("lost_wakeup");
}

#[test]
fn signal_release() {
    check("signal_release");
}

#[test]
fn starvation() {
    check("starvation");
}

#[test]
fn timed_race() {
    check("timed_race");
}

#[test]
fn timeouts() {
    check("timeouts");
}

#[test]
fn wakeups() {
    check("wakeups");
}

/// The function names the header declares.
fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(root().join("include").join("rsem.h")).unwrap();
    // cbindgen writes `RSEM_API int f(...)`, or `RSEM_API` on a line of its
    // own when the parameters take several lines.
    let lines: Vec<&str> = header.lines().collect();
    let mut names: Vec<String> = lines
        .iter()
        .zip(lines.iter().skip(1))
        .filter_map(|(l, next)| match l.strip_prefix("RSEM_API") {
            Some("") => Some(*next),
            Some(rest) if rest.starts_with(' ') => Some(rest),
            _ => None,
        })
        .map(|l| {
            let before_paren = &l[..l.find('(').expect("a declaration")];
            let name = before_paren.rsplit([' ', '*']).next().unwrap();
            name.to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn shared_library_exports_exactly_the_header_api() {
    let so = library_dir().join("librsem.so.0");
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm (binutils) runs");
    assert!(output.status.success());
    let mut exported: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    exported.sort();
    let declared = header_functions();
    assert!(declared.len() >= 17 && declared.iter().all(|n| n.starts_with("sem_")));
    assert_eq!(
        exported, declared,
        "exported symbols differ from the header's functions"
    );
}

/// The README's first command: `cc app.c -Iinclude -Ltarget/release -lrsem
/// -Wl,-rpath,...` against a plain `cargo build` (no SONAME asked for) links
/// and starts.
#[test]
fn plain_cargo_build_links_with_minus_l_and_starts() {
    let target_dir = root().join("target").join("c-abi-plain");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .env_remove("RSEM_SONAME")
        .args(["build", "--lib", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building librsem failed");
    let lib = target_dir.join("debug");
    let dir = root().join("target").join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("minus_l.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include \"rsem.h\"\nint main(void) {\n\
         rsem_semaphore *s = sem_new(1);\n\
         int ok = s && sem_try_acquire(s) == SEM_OK;\n\
         sem_free(s);\n\
         puts(ok ? \"started\" : \"broken\");\n\
         return !ok;\n}\n",
    )
    .unwrap();
    let exe = dir.join("minus_l");
    let status = Command::new("cc")
        .arg(&source)
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg("-lrsem")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc -lrsem failed");
    let output = Command::new(&exe).output().expect("the program starts");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout) == "started\n",
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn shared_library_soname_is_librsem_so_0() {
    let so = library_dir().join("librsem.so.0");
    let output = Command::new("readelf")
        .arg("-d")
        .arg(&so)
        .output()
        .expect("readelf (binutils) runs");
    let dynamic = String::from_utf8_lossy(&output.stdout);
    assert!(
        dynamic.contains("Library soname: [librsem.so.0]"),
        "no SONAME librsem.so.0 in:\n{dynamic}"
    );
}
