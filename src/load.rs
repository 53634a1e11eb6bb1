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
//! the online CPUs. Where `/proc` cannot be read, the answer is "not loaded":
//! spin as before.

use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::deadline;

/// How old a sample may be.
const SAMPLE_EVERY: u64 = 10_000_000; // ns

/// When the last sample was taken (`deadline::nanos`; 0: never), and what it
/// said. Relaxed: a stale answer only makes one spin more or less.
static SAMPLED_AT: AtomicU64 = AtomicU64::new(0);
static LOADED: AtomicBool = AtomicBool::new(false);

/// Whether the last sample (taken now if it is older than [`SAMPLE_EVERY`])
/// saw more runnable threads than online CPUs.
pub(crate) fn loaded(now: Instant) -> bool {
    let now = deadline::nanos(now).max(1);
    let at = SAMPLED_AT.load(Relaxed);
    if now.saturating_sub(at) >= SAMPLE_EVERY
        && SAMPLED_AT
            .compare_exchange(at, now, Relaxed, Relaxed)
            .is_ok()
    {
        LOADED.store(sample().unwrap_or(false), Relaxed);
    }
    LOADED.load(Relaxed)
}

/// Reads `/proc/loadavg`: `Some(runnable > online CPUs)`, or `None` if it
/// cannot be read or parsed.
fn sample() -> Option<bool> {
    let mut buf = [0u8; 128];
    // SAFETY: the path is a NUL-terminated literal; `open` has no other
    // requirement.
    let fd = unsafe { libc::open(c"/proc/loadavg".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `buf` is valid for writes of its length; `fd` is the
    // descriptor just opened, closed right after and nowhere else.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let text = buf.get(..usize::try_from(n).ok()?)?;
    let runnable = runnable_of(text)?;
    // SAFETY: `sysconf` has no memory-safety requirement.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    Some(cpus > 0 && runnable > cpus as u64)
}

/// The runnable count of `/proc/loadavg`'s text ("0.50 0.40 0.30 3/250
/// 1234"): the number before the `/` of the fourth field.
fn runnable_of(text: &[u8]) -> Option<u64> {
    let field = text.split(|&b| b == b' ').nth(3)?;
    let digits = field.split(|&b| b == b'/').next()?;
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
    }

    #[test]
    fn samples_this_machine() {
        // This test's own thread is runnable.
        assert!(sample().is_some(), "/proc/loadavg unreadable");
    }
}
