//! The panic boundary: no Rust panic may unwind into C.
//!
//! Nothing in the library is expected to panic (every integer from C is
//! validated and every arithmetic step is checked), so a panic means a bug.
//! There is no honest status code for "the library is broken", so instead of
//! returning something misleading the process is aborted with a message, the
//! same outcome as a failed `assert` in C. Release builds are compiled with
//! `panic = "abort"` as a second line of defence.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `body`; if it panics, prints a message and aborts the process.
#[inline(always)]
pub(crate) fn guard<R>(function: &'static str, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => abort(function),
    }
}

#[cold]
#[inline(never)]
fn abort(function: &str) -> ! {
    eprintln!("rsem: internal error (panic) in {function}; aborting");
    std::process::abort()
}
