//! Turning the caller's timeouts and deadlines into something to wait for.
//!
//! Every deadline is on the monotonic clock (`std::time::Instant`), so wall
//! clock steps never stretch or shorten a wait. Conversions round *up*, so a
//! wait never ends before the time the caller asked for, and saturate: a
//! timeout too large to form an `Instant` means "no limit", never a panic or
//! a wrapped value.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long an acquire may wait for its permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Do not block: take the permits if they are free right now.
    Never,
    /// Block until this instant at the latest.
    Until(Instant),
    /// Block as long as it takes.
    Forever,
}

/// Converts a relative timeout in seconds, as C passes it.
///
/// Returns `None` for NaN (the caller reports `SEM_EINVAL`). Zero, negative
/// values, `-0.0` and `-inf` mean a non-blocking attempt; `+inf` and values
/// too large to form a deadline mean no limit.
pub fn from_timeout_seconds(seconds: f64) -> Option<Wait> {
    if seconds.is_nan() {
        return None;
    }
    if seconds <= 0.0 {
        return Some(Wait::Never);
    }
    Some(match duration_ceil(seconds) {
        Some(d) => match Instant::now().checked_add(d) {
            Some(at) => Wait::Until(at),
            None => Wait::Forever,
        },
        None => Wait::Forever,
    })
}

/// `seconds` (finite or not, > 0) as a `Duration`, rounded up to the next
/// nanosecond; `None` when it does not fit in a `Duration`.
fn duration_ceil(seconds: f64) -> Option<Duration> {
    // 2^64 seconds and beyond (and +inf) cannot be a Duration.
    if seconds >= 18_446_744_073_709_551_616.0 {
        return None;
    }
    let whole = seconds.trunc();
    // `whole` is an integer below 2^64, so the cast is exact.
    let whole_secs = whole as u64;
    // The fraction is in [0, 1); its nanoseconds, rounded up, are in [0, 1e9].
    let nanos = ((seconds - whole) * 1e9).ceil() as u32;
    if nanos >= 1_000_000_000 {
        whole_secs.checked_add(1).map(|s| Duration::new(s, 0))
    } else {
        Some(Duration::new(whole_secs, nanos))
    }
}

/// The origin of `nanos`: the first time the library needed it (a semaphore
/// fixes it when it is created).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The clock that absolute deadlines (`sem_acquire_until`) are on, in
/// nanoseconds: the one hosts already have, so that a deadline computed from
/// `uv_hrtime()`, asyncio's `loop.time()` or C++'s `steady_clock` means
/// what it says.
/// - Unix: `CLOCK_MONOTONIC` (on Linux the clock of `std::time::Instant`).
/// - Windows: `QueryPerformanceCounter`, in nanoseconds (the clock of
///   `std::time::Instant` and of MSVC's and MinGW's `steady_clock`).
///
/// Async-signal-safe (`clock_gettime` is).
pub fn clock_ns() -> i64 {
    platform_clock_ns()
}

#[cfg(unix)]
// `time_t` and `c_long` are i32 on some 32-bit targets.
#[allow(clippy::useless_conversion)]
fn platform_clock_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes the timespec it is given, which lives
    // across the call; CLOCK_MONOTONIC exists on every supported Unix, so
    // it cannot fail (it would leave the zeros, an early time, never UB).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i64::from(ts.tv_sec)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.tv_nsec))
}

#[cfg(windows)]
fn platform_clock_ns() -> i64 {
    unsafe extern "system" {
        fn QueryPerformanceCounter(count: *mut i64) -> i32;
        fn QueryPerformanceFrequency(frequency: *mut i64) -> i32;
    }
    let (mut count, mut frequency) = (0i64, 0i64);
    // SAFETY: both write one i64 through a pointer to a live local; they
    // cannot fail on Windows XP and later.
    unsafe {
        QueryPerformanceCounter(&mut count);
        QueryPerformanceFrequency(&mut frequency);
    }
    if frequency <= 0 {
        return 0;
    }
    // count * 1e9 / frequency without overflow: whole seconds, then the rest.
    let (secs, rest) = (count / frequency, count % frequency);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(rest.saturating_mul(1_000_000_000) / frequency)
}

/// Elsewhere: nanoseconds since the library's own origin.
#[cfg(not(any(unix, windows)))]
fn platform_clock_ns() -> i64 {
    i64::try_from(nanos(Instant::now())).unwrap_or(i64::MAX)
}

/// `at` in nanoseconds since the library's private origin (0 before it):
/// the times of the fairness policy, which only compares them.
pub(crate) fn nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `ns` nanoseconds after the origin of `nanos`; `None` when it
/// is too far away to form an `Instant` (then it never comes).
pub(crate) fn instant(ns: u64) -> Option<Instant> {
    epoch().checked_add(Duration::from_nanos(ns))
}

/// Converts an absolute deadline on `clock_ns`.
///
/// A deadline at or before now is a non-blocking attempt; `i64::MAX`, or a
/// deadline too far away to form an `Instant`, means no limit. The clock is
/// read before `Instant::now()`, so the wait is measured from a moment no
/// earlier than the one the deadline was compared with: it never ends early.
pub fn from_deadline_ns(deadline_ns: i64) -> Wait {
    if deadline_ns == i64::MAX {
        return Wait::Forever;
    }
    let now_ns = clock_ns();
    if deadline_ns <= now_ns {
        return Wait::Never;
    }
    // deadline_ns > now_ns, so the difference is positive (and fits in u64).
    let left = Duration::from_nanos(deadline_ns.abs_diff(now_ns));
    match Instant::now().checked_add(left) {
        Some(at) => Wait::Until(at),
        None => Wait::Forever,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_refused() {
        assert_eq!(from_timeout_seconds(f64::NAN), None);
        assert_eq!(from_timeout_seconds(-f64::NAN), None);
    }

    #[test]
    fn non_positive_means_do_not_block() {
        for t in [
            0.0,
            -0.0,
            -1.0,
            -1e300,
            f64::NEG_INFINITY,
            -f64::MIN_POSITIVE,
        ] {
            assert_eq!(from_timeout_seconds(t), Some(Wait::Never), "{t}");
        }
    }

    #[test]
    fn huge_means_forever() {
        for t in [f64::INFINITY, f64::MAX, 1e20, 18_446_744_073_709_551_616.0] {
            assert_eq!(from_timeout_seconds(t), Some(Wait::Forever), "{t}");
        }
    }

    #[test]
    fn durations_round_up() {
        assert_eq!(duration_ceil(1e-300), Some(Duration::from_nanos(1)));
        assert_eq!(duration_ceil(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(duration_ceil(0.999_999_999_9), Some(Duration::from_secs(1)));
        // The largest f64 below 2^64 still fits.
        let below = 18_446_744_073_709_549_568.0;
        assert_eq!(
            duration_ceil(below),
            Some(Duration::from_secs(below as u64))
        );
    }

    #[test]
    fn finite_timeout_is_in_the_future() {
        let before = Instant::now();
        match from_timeout_seconds(0.25) {
            Some(Wait::Until(at)) => assert!(at >= before + Duration::from_millis(250)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn deadlines() {
        assert_eq!(from_deadline_ns(i64::MAX), Wait::Forever);
        assert_eq!(from_deadline_ns(i64::MIN), Wait::Never);
        assert_eq!(from_deadline_ns(-1), Wait::Never);
        assert_eq!(from_deadline_ns(clock_ns()), Wait::Never);
        let before = Instant::now();
        let later = clock_ns() + 1_000_000_000;
        match from_deadline_ns(later) {
            // At least the second asked for, and not much more: the two
            // clocks are read a few instructions apart.
            Wait::Until(at) => {
                assert!(at >= before + Duration::from_secs(1));
                assert!(at <= Instant::now() + Duration::from_secs(1));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(from_deadline_ns(i64::MAX - 1) != Wait::Never);
    }

    /// The clock is the host's: CLOCK_MONOTONIC, read around it.
    #[cfg(unix)]
    #[test]
    #[allow(clippy::useless_conversion)] // i32 fields on some targets
    fn clock_is_clock_monotonic() {
        let read = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: writes the live local timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_nsec)
        };
        let a = read();
        let ours = clock_ns();
        let b = read();
        assert!(a <= ours && ours <= b, "{a} <= {ours} <= {b}");
    }

    #[test]
    fn clock_is_monotonic_and_non_negative() {
        let a = clock_ns();
        let b = clock_ns();
        assert!(a >= 0 && b >= a);
    }
}
