//! Whether the machine has more runnable threads than CPUs, for the spin of
//! `Semaphore::spin`: spinning for a permit pays only while the thread that
//! will release it is running. When every CPU is busy it may be waiting for
//! the very CPU the spinner holds (a loaded ping-pong round trip took 2.2-2.7x
//! glibc's, which sleeps at once), so then acquirers park without spinning.
//!
//! The kernel's count of runnable threads is the fourth field of
//! `/proc/loadavg` ("running/total"), read at most once per [`SAMPLE_EVERY`]
//! by whichever spinner finds the last sample old (three system calls, a few
//! microseconds, on a path that was about to spin for up to 4 µs anyway).
//! The reader counts itself; the machine is loaded when the count exceeds
//! the online CPUs (counted once). Where `/proc/loadavg` cannot be opened
//! (no `/proc`, a sandbox), the answer is "not loaded" for good: spin as
//! before, and never try again.

use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::deadline;

/// How old a sample may be.
const SAMPLE_EVERY: u64 = 10_000_000; // ns

/// When the last sample was taken (`deadline::nanos`; 0: never; `NEVER`:
/// `/proc/loadavg` could not be opened, do not try again), and what it
/// said. Relaxed: a stale answer only makes one spin more or less.
static SAMPLED_AT: AtomicU64 = AtomicU64::new(0);
static LOADED: AtomicBool = AtomicBool::new(false);
const NEVER: u64 = u64::MAX;
/// The online CPUs, counted at the first sample (0: not yet).
static CPUS: AtomicU64 = AtomicU64::new(0);

/// Whether the last sample (taken now if it is older than [`SAMPLE_EVERY`])
/// saw more runnable threads than online CPUs.
#[inline]
pub(crate) fn loaded(now: Instant) -> bool {
    let now = deadline::nanos(now).max(1);
    let at = SAMPLED_AT.load(Relaxed);
    if at != NEVER
        && (at == 0 || now.saturating_sub(at) >= SAMPLE_EVERY)
        && SAMPLED_AT
            .compare_exchange(at, now, Relaxed, Relaxed)
            .is_ok()
    {
        match sample() {
            Sample::Loaded(yes) => LOADED.store(yes, Relaxed),
            Sample::Unreadable => LOADED.store(false, Relaxed),
            Sample::Unavailable => {
                LOADED.store(false, Relaxed);
                SAMPLED_AT.store(NEVER, Relaxed);
            }
        }
    }
    LOADED.load(Relaxed)
}

/// What a look at `/proc/loadavg` found.
enum Sample {
    /// Whether runnable threads exceed online CPUs.
    Loaded(bool),
    /// Opened, but the read or its text failed: try again next time.
    Unreadable,
    /// It cannot be opened: never try again.
    Unavailable,
}

/// Reads `/proc/loadavg` and compares its runnable count with the online
/// CPUs.
#[cold]
#[inline(never)]
fn sample() -> Sample {
    let mut buf = [0u8; 128];
    // SAFETY: the path is a NUL-terminated literal; `open` has no other
    // requirement.
    let fd = unsafe { libc::open(c"/proc/loadavg".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Sample::Unavailable;
    }
    // SAFETY: `buf` is valid for writes of its length; `fd` is the
    // descriptor just opened, closed right after and nowhere else.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let Some(runnable) = usize::try_from(n).ok().and_then(|n| runnable_of(&buf[..n])) else {
        return Sample::Unreadable;
    };
    let mut cpus = CPUS.load(Relaxed);
    if cpus == 0 {
        // SAFETY: `sysconf` has no memory-safety requirement.
        cpus = u64::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) })
            .unwrap_or(0)
            .max(1);
        CPUS.store(cpus, Relaxed);
    }
    Sample::Loaded(runnable > cpus)
}

/// The runnable count of `/proc/loadavg`'s text ("0.50 0.40 0.30 3/250
/// 1234"): the number before the `/` of the fourth field.
fn runnable_of(text: &[u8]) -> Option<u64> {
    let field = text.split(|&b| b == b' ').nth(3)?;
    let slash = field.iter().position(|&b| b == b'/')?;
    let digits = &field[..slash];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runnable_count() {
        assert_eq!(runnable_of(b"4.70 4.07 3.08 5/86 30567\n"), Some(5));
        assert_eq!(runnable_of(b"0.00 0.00 0.00 1/1 1"), Some(1));
        assert_eq!(runnable_of(b"0.00 0.00 0.00 /86 1"), None);
        assert_eq!(runnable_of(b"0.00 0.00"), None);
        assert_eq!(runnable_of(b"a b c x5/86 1"), None);
        // Cut short before the slash.
        assert_eq!(runnable_of(b"0.00 0.00 0.00 12"), None);
    }

    #[test]
    fn samples_this_machine() {
        if !std::path::Path::new("/proc/loadavg").exists() {
            eprintln!("no /proc/loadavg here: nothing to sample");
            return;
        }
        assert!(
            matches!(sample(), Sample::Loaded(_)),
            "/proc/loadavg unreadable"
        );
    }
}
