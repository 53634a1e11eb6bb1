//! The C ABI called from Rust: every function against the edge values C can
//! pass (NULL, NaN, infinities, 0, negatives, INT64_MIN/MAX, huge n). Each
//! test here is one row of the README's "Bad input" table.

use rsem::ffi::*;
use rsem::status::*;
use std::ptr::null_mut;

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// A fresh semaphore; freed by the caller.
fn new(value: i64, max: i64, flags: u32) -> *mut rsem::Semaphore {
    let s = unsafe { sem_new_ex(value, max, flags) };
    assert!(!s.is_null());
    s
}

#[test]
fn new_functions() {
    unsafe {
        for bad in [-1, i64::MIN, SEM_COUNT_MAX + 1, i64::MAX] {
            assert!(sem_new(bad).is_null());
            assert_eq!(errno(), libc::EINVAL);
            assert!(sem_new_bounded(bad).is_null());
            assert_eq!(errno(), libc::EINVAL);
            assert!(sem_new_ex(bad, SEM_COUNT_MAX, 0).is_null());
            assert_eq!(errno(), libc::EINVAL);
            assert!(sem_new_ex(0, bad, 0).is_null());
            assert_eq!(errno(), libc::EINVAL);
        }
        for flags in [2, 4, SEM_FIFO | 2, u32::MAX] {
            assert!(sem_new_ex(0, 1, flags).is_null());
            assert_eq!(errno(), libc::EINVAL);
        }
        assert!(sem_new_ex(2, 1, 0).is_null());
        for (value, max) in [(0, 0), (0, SEM_COUNT_MAX), (SEM_COUNT_MAX, SEM_COUNT_MAX)] {
            let s = new(value, max, SEM_FIFO);
            assert_eq!(sem_value(s), value);
            assert_eq!(sem_max(s), max);
            sem_free(s);
        }
        let s = sem_new(0);
        assert_eq!(sem_max(s), SEM_COUNT_MAX);
        sem_free(s);
        let s = sem_new_bounded(4);
        assert_eq!((sem_value(s), sem_max(s)), (4, 4));
        sem_free(s);
        sem_free(null_mut());
    }
}

#[test]
fn every_function_refuses_null() {
    unsafe {
        let null = null_mut();
        assert_eq!(sem_acquire(null), SEM_EINVAL);
        assert_eq!(sem_try_acquire(null), SEM_EINVAL);
        for t in [0.0, 1.0, NAN, INF, -INF] {
            assert_eq!(sem_acquire_timed(null, t), SEM_EINVAL);
            assert_eq!(sem_acquire_many(null, 1, t), SEM_EINVAL);
        }
        assert_eq!(sem_acquire_until(null, 1, i64::MAX), SEM_EINVAL);
        assert_eq!(sem_release(null), SEM_EINVAL);
        assert_eq!(sem_release_n(null, 1), SEM_EINVAL);
        assert_eq!(sem_value(null), i64::from(SEM_EINVAL));
        assert_eq!(sem_max(null), i64::from(SEM_EINVAL));
        assert_eq!(sem_waiters(null), i64::from(SEM_EINVAL));
        assert_eq!(sem_drain(null), i64::from(SEM_EINVAL));
        assert_eq!(sem_shutdown(null), SEM_EINVAL);
        sem_free(null);
    }
}

#[test]
fn acquire_timed_edge_timeouts() {
    unsafe {
        let s = new(0, 10, 0);
        for t in [NAN, -NAN] {
            assert_eq!(sem_acquire_timed(s, t), SEM_EINVAL);
        }
        for t in [0.0, -0.0, -1.0, -INF, f64::MIN, -f64::MIN_POSITIVE] {
            assert_eq!(sem_acquire_timed(s, t), SEM_TIMEDOUT, "{t}");
        }
        assert_eq!(sem_acquire_timed(s, f64::MIN_POSITIVE), SEM_TIMEDOUT);
        assert_eq!(sem_release_n(s, 4), SEM_OK);
        assert_eq!(sem_acquire_timed(s, NAN), SEM_EINVAL);
        for t in [INF, f64::MAX, 1e20, 0.0] {
            assert_eq!(sem_acquire_timed(s, t), SEM_OK, "{t}");
        }
        assert_eq!(sem_value(s), 0);
        sem_free(s);
    }
}

#[test]
fn acquire_many_edge_counts() {
    unsafe {
        let s = new(3, 5, 0);
        for n in [0, -1, i64::MIN, 6, i64::MAX, SEM_COUNT_MAX] {
            assert_eq!(sem_acquire_many(s, n, 0.0), SEM_EINVAL, "{n}");
            assert_eq!(sem_acquire_many(s, n, INF), SEM_EINVAL, "{n}");
        }
        assert_eq!(sem_acquire_many(s, 1, NAN), SEM_EINVAL);
        assert_eq!(sem_acquire_many(s, 5, 0.0), SEM_TIMEDOUT);
        assert_eq!(sem_acquire_many(s, 3, -INF), SEM_OK);
        assert_eq!(sem_value(s), 0);
        sem_free(s);
    }
}

#[test]
fn acquire_until_edge_deadlines() {
    unsafe {
        let s = new(0, 5, 0);
        for n in [0, -1, i64::MIN, 6, i64::MAX] {
            assert_eq!(sem_acquire_until(s, n, i64::MAX), SEM_EINVAL, "{n}");
        }
        for d in [i64::MIN, -1, 0, sem_clock_ns()] {
            assert_eq!(sem_acquire_until(s, 1, d), SEM_TIMEDOUT, "{d}");
        }
        let near = sem_clock_ns() + 1_000_000;
        assert_eq!(sem_acquire_until(s, 1, near), SEM_TIMEDOUT);
        assert!(sem_clock_ns() >= near);
        assert_eq!(sem_release_n(s, 2), SEM_OK);
        assert_eq!(sem_acquire_until(s, 1, i64::MIN), SEM_OK);
        assert_eq!(sem_acquire_until(s, 1, i64::MAX), SEM_OK);
        sem_free(s);
    }
}

#[test]
fn release_edge_counts() {
    unsafe {
        let s = new(1, 3, 0);
        for n in [0, -1, i64::MIN] {
            assert_eq!(sem_release_n(s, n), SEM_EINVAL, "{n}");
        }
        for n in [3, i64::MAX, SEM_COUNT_MAX, SEM_COUNT_MAX + 1] {
            assert_eq!(sem_release_n(s, n), SEM_EOVERFLOW, "{n}");
        }
        assert_eq!(sem_value(s), 1);
        assert_eq!(sem_release_n(s, 2), SEM_OK);
        assert_eq!(sem_release(s), SEM_EOVERFLOW);
        assert_eq!(sem_value(s), 3);
        sem_free(s);

        let s = new(0, SEM_COUNT_MAX, 0);
        assert_eq!(sem_release_n(s, SEM_COUNT_MAX), SEM_OK);
        assert_eq!(sem_release(s), SEM_EOVERFLOW);
        assert_eq!(sem_release_n(s, i64::MAX), SEM_EOVERFLOW);
        assert_eq!(sem_value(s), SEM_COUNT_MAX);
        assert_eq!(sem_drain(s), SEM_COUNT_MAX);
        sem_free(s);
    }
}

#[test]
fn shutdown_drain_and_introspection() {
    unsafe {
        let s = new(5, 10, 0);
        assert_eq!(sem_waiters(s), 0);
        assert_eq!(sem_drain(s), 5);
        assert_eq!(sem_drain(s), 0);
        assert_eq!(sem_release_n(s, 2), SEM_OK);
        assert_eq!(sem_shutdown(s), SEM_OK);
        assert_eq!(sem_shutdown(s), SEM_OK);
        assert_eq!(sem_acquire(s), SEM_ECLOSED);
        assert_eq!(sem_try_acquire(s), SEM_ECLOSED);
        assert_eq!(sem_acquire_timed(s, INF), SEM_ECLOSED);
        assert_eq!(sem_acquire_timed(s, NAN), SEM_EINVAL);
        assert_eq!(sem_acquire_many(s, 2, 0.0), SEM_ECLOSED);
        assert_eq!(sem_acquire_until(s, 1, i64::MAX), SEM_ECLOSED);
        assert_eq!(sem_release(s), SEM_OK);
        assert_eq!(sem_value(s), 3);
        assert_eq!(sem_drain(s), 3);
        sem_free(s);
    }
}

#[test]
fn clock_is_monotonic() {
    unsafe {
        let mut last = sem_clock_ns();
        assert!(last >= 0);
        for _ in 0..1000 {
            let now = sem_clock_ns();
            assert!(now >= last);
            last = now;
        }
    }
}
