//! The `extern "C"` surface: argument checks, the panic boundary, and the
//! translation to and from the state machine in `semaphore.rs`.
//!
//! Every function checks its handle for NULL first, validates every integer
//! and float it is given, and never lets a panic cross into C. The doc
//! comments here are copied into `include/rsem.h` by cbindgen.
//!
//! Validation has one home per rule: this layer turns C's values into Rust
//! ones and refuses what has no Rust meaning (a negative count or request,
//! NaN, unknown flags: `SEM_EINVAL`) or no meaning for this semaphore (a
//! request for more than its maximum, which could never be met); the state
//! machine checks the rest (`value <= max <= COUNT_MAX` at creation, and
//! whether a release fits under the maximum: `SEM_EOVERFLOW`).

use core::ffi::c_int;
use core::ptr;
use std::alloc::{Layout, alloc};

use crate::deadline::{self, Wait};
use crate::errno::set_errno;
use crate::fork;
use crate::panic::guard;
use crate::semaphore::Semaphore;
use crate::status::{
    AcquireError, KNOWN_FLAGS, SEM_COUNT_MAX, SEM_EINVAL, SEM_FIFO, SEM_OK, acquire_code,
    release_code,
};

/// Allocates a semaphore; NULL with errno `ENOMEM` if memory ran out.
fn allocate(semaphore: Semaphore) -> *mut Semaphore {
    let layout = Layout::new::<Semaphore>();
    // SAFETY: `alloc` needs a layout of non-zero size; `Semaphore` is not
    // zero-sized (three cache lines: state, parameters, slow counters).
    let raw = unsafe { alloc(layout) }.cast::<Semaphore>();
    if raw.is_null() {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: `raw` is non-null, freshly allocated for `Semaphore`'s layout,
    // so it is valid for a write and suitably aligned; once written, it stays
    // at that address until `sem_free` unregisters and frees it.
    unsafe {
        raw.write(semaphore);
        fork::register(raw);
    }
    raw
}

/// Builds a semaphore from C's integers, or NULL with errno `EINVAL`.
fn create(value: i64, max: i64, flags: u32) -> *mut Semaphore {
    let fifo = flags & SEM_FIFO != 0;
    // Negative values and unknown flags have no meaning; the ranges
    // (`value <= max <= SEM_COUNT_MAX`) are `Semaphore::new`'s to check.
    let (Ok(value), Ok(max), 0) = (
        u64::try_from(value),
        u64::try_from(max),
        flags & !KNOWN_FLAGS,
    ) else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    match Semaphore::new(value, max, fifo) {
        Some(semaphore) => allocate(semaphore),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// Runs `body` on the semaphore behind `sem`, or returns `on_null` for NULL.
///
/// # Safety
/// `sem` must be NULL or a handle from `sem_new*` that has not been freed.
#[inline(always)]
pub(crate) unsafe fn with<R>(
    function: &'static str,
    sem: *const Semaphore,
    on_null: R,
    body: impl FnOnce(&Semaphore) -> R,
) -> R {
    // SAFETY: by this function's contract `sem` is NULL or points to a live
    // semaphore made by `allocate`; `as_ref` maps NULL to `None`. Shared
    // references are sound because the semaphore is only changed through
    // atomics.
    match unsafe { sem.as_ref() } {
        None => on_null,
        Some(semaphore) => guard(function, || body(semaphore)),
    }
}

/// Creates a semaphore holding `value` permits, like Python's
/// `threading.Semaphore(value)`. Its maximum is `SEM_COUNT_MAX`.
///
/// Returns a new handle, owned by the caller and freed with `sem_free`; or
/// NULL with errno `EINVAL` if `value` is negative or above `SEM_COUNT_MAX`,
/// or NULL with errno `ENOMEM` if memory ran out.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// None: any value of the arguments is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_new(value: i64) -> *mut Semaphore {
    guard("sem_new", || create(value, SEM_COUNT_MAX, 0))
}

/// Creates a bounded semaphore holding `value` permits, like Python's
/// `threading.BoundedSemaphore(value)`: a release that would raise the count
/// above `value` fails with `SEM_EOVERFLOW`.
///
/// Returns a new handle, owned by the caller and freed with `sem_free`; or
/// NULL with errno `EINVAL` if `value` is negative or above `SEM_COUNT_MAX`,
/// or NULL with errno `ENOMEM` if memory ran out.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// None: any value of the arguments is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_new_bounded(value: i64) -> *mut Semaphore {
    guard("sem_new_bounded", || create(value, value, 0))
}

/// Creates a semaphore holding `value` permits that refuses releases past
/// `max`, with `flags` 0 (default mode) or `SEM_FIFO` (blocked acquirers are
/// served strictly in arrival order). `sem_new(v)` is
/// `sem_new_ex(v, SEM_COUNT_MAX, 0)`; `sem_new_bounded(v)` is
/// `sem_new_ex(v, v, 0)`.
///
/// Returns a new handle, owned by the caller and freed with `sem_free`; or
/// NULL with errno `EINVAL` unless `0 <= value <= max <= SEM_COUNT_MAX` and
/// `flags` has no bit other than `SEM_FIFO`; or NULL with errno `ENOMEM` if
/// memory ran out.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// None: any value of the arguments is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_new_ex(value: i64, max: i64, flags: u32) -> *mut Semaphore {
    guard("sem_new_ex", || create(value, max, flags))
}

/// Frees a semaphore. NULL is a no-op.
///
/// Ownership: `sem` must come from `sem_new*` (or `sem_open_named`) and not
/// have been freed; it is invalid afterwards. For a process-shared
/// semaphore this unmaps this process's view only (see `sem_new_shared`).
/// A `SEM_RECOVER` handle gives back the net permits taken through it, as
/// its process's death would (see `sem_new_shared`).
///
/// Thread-safety: like POSIX `sem_destroy`, this must not race any other
/// call on the same handle. Freeing a semaphore while threads
/// are blocked on it is undefined behaviour; a thread whose acquire has
/// returned may free it at once, even while the release that woke it is still
/// returning (call `sem_shutdown` first to get blocked threads out).
/// Pending async acquires (`sem_acquire_async`, `sem_acquire_notify`) are
/// legal here: each is completed with `SEM_ECLOSED` before this returns
/// (callbacks run on this thread, inside this call; notifier completions
/// are queued, and their tickets stay rsem's until drained), except those
/// rsem's timer thread had already dequeued: their `SEM_TIMEDOUT`
/// completions are delivered on that thread, and this call waits for them.
/// Do not call it from a callback that the timer thread runs for another
/// semaphore while that callback waits for this thread.
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed, and no other call may be using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_free(sem: *mut Semaphore) {
    if sem.is_null() {
        return;
    }
    // SAFETY: by this function's contract nobody else uses `sem` any more,
    // and it came from `sem_new_shared`/`sem_open_named` (then `shm` mapped
    // it, and unmaps it) or from `allocate`, which registered it for
    // `fork()` and allocated it with the global allocator and
    // `Layout::new::<Semaphore>()` (the layout `Box` uses).
    guard("sem_free", || unsafe {
        // A shared semaphore: this process's view goes; the semaphore stays
        // for the other processes (`shm.rs`).
        #[cfg(all(target_os = "linux", not(loom)))]
        if (*sem).is_shared() {
            crate::shm::unmap(sem);
            return;
        }
        // Pending async acquires complete with `SEM_ECLOSED` now (blocked
        // threads cannot be queued: that would be the caller's bug); their
        // callbacks can no longer queue anything (`CLOSED`).
        if (*sem).waiters() > 0 {
            (*sem).shutdown();
        }
        // Then the timer thread: once unregistered it is not inside `sem`
        // and has delivered what it found there.
        #[cfg(not(loom))]
        crate::timer::unregister(&*sem);
        fork::unregister(sem);
        drop(Box::from_raw(sem));
    });
}

/// Acquires one permit, blocking until one is free, like Python's
/// `acquire()`.
///
/// Returns `SEM_OK` once a permit was taken; `SEM_ECLOSED` if the semaphore
/// is or gets shut down; `SEM_EINVAL` if `sem` is NULL or its maximum is 0
/// (it can never hold a permit, so waiting would never end).
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_RECOVERED` (acquired: the permits are the
/// caller's, and some came back from a process that died holding them) and
/// `SEM_EBUSY` (nothing taken: its lock is held by this thread, or the
/// handle has no slot); there the call takes the semaphore's lock (a
/// non-blocking one, or a timed one with less than 10 ms left, waits up to
/// 10 ms for it and then returns `SEM_TIMEDOUT`: a peer holds it that long
/// only while it is stopped or kept off the CPU inside a call; a timed one
/// waits for it until its deadline) and is not async-signal-safe.
///
/// Thread-safety: may be called from any thread at any time, but not from a
/// signal handler (it may wait for the semaphore's queue lock, which the
/// interrupted thread may hold).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire(sem: *mut Semaphore) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_acquire", sem, SEM_EINVAL, |s| {
            acquire_one(s, Wait::Forever)
        })
    }
}

/// Acquires one permit if one is free right now, never blocking, like
/// Python's `acquire(blocking=False)`.
///
/// Returns `SEM_OK` if a permit was taken; `SEM_TIMEDOUT` if none was free
/// (or, in FIFO mode, if blocked acquirers are queued ahead); `SEM_ECLOSED`
/// if the semaphore is shut down; `SEM_EINVAL` if `sem` is NULL or its
/// maximum is 0.
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_RECOVERED` (acquired: the permits are the
/// caller's, and some came back from a process that died holding them) and
/// `SEM_EBUSY` (nothing taken: its lock is held by this thread, or the
/// handle has no slot); there the call takes the semaphore's lock (a
/// non-blocking one, or a timed one with less than 10 ms left, waits up to
/// 10 ms for it and then returns `SEM_TIMEDOUT`: a peer holds it that long
/// only while it is stopped or kept off the CPU inside a call; a timed one
/// waits for it until its deadline) and is not async-signal-safe.
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: a few atomic instructions).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_try_acquire(sem: *mut Semaphore) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_try_acquire", sem, SEM_EINVAL, |s| {
            acquire_one(s, Wait::Never)
        })
    }
}

/// Acquires one permit, waiting at most `timeout_seconds`, like Python's
/// `acquire(timeout=t)`.
///
/// The wait is measured on a monotonic clock, never ends with `SEM_TIMEDOUT`
/// before `timeout_seconds` have passed, and is not cut short by signals or
/// spurious wake-ups. A timeout of zero or less (including -0.0 and
/// -infinity) is a non-blocking attempt; +infinity, or a timeout too large to
/// form a deadline, waits without limit.
///
/// Returns `SEM_OK` if a permit was taken; `SEM_TIMEDOUT` if none came in
/// time (nothing was taken); `SEM_ECLOSED` if the semaphore is or gets shut
/// down; `SEM_EINVAL` if `sem` is NULL, `timeout_seconds` is NaN, or the
/// semaphore's maximum is 0 (nothing was taken).
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_RECOVERED` (acquired: the permits are the
/// caller's, and some came back from a process that died holding them) and
/// `SEM_EBUSY` (nothing taken: its lock is held by this thread, or the
/// handle has no slot); there the call takes the semaphore's lock (a
/// non-blocking one, or a timed one with less than 10 ms left, waits up to
/// 10 ms for it and then returns `SEM_TIMEDOUT`: a peer holds it that long
/// only while it is stopped or kept off the CPU inside a call; a timed one
/// waits for it until its deadline) and is not async-signal-safe.
///
/// Thread-safety: may be called from any thread at any time, but not from a
/// signal handler (it may wait for the semaphore's queue lock, which the
/// interrupted thread may hold).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_timed(sem: *mut Semaphore, timeout_seconds: f64) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_acquire_timed", sem, SEM_EINVAL, |s| {
            match (
                permits_to_acquire(s, 1),
                deadline::from_timeout_seconds(timeout_seconds),
            ) {
                (Some(n), Some(wait)) => acquire_code(s.acquire(n, wait)),
                _ => SEM_EINVAL,
            }
        })
    }
}

/// Acquires `n` permits at once, or none, waiting at most `timeout_seconds`
/// (as in `sem_acquire_timed`: NaN is refused, zero or less is a
/// non-blocking attempt, +infinity waits without limit).
///
/// Returns `SEM_OK` if all `n` were taken; `SEM_TIMEDOUT` if they did not
/// come in time (none were taken); `SEM_ECLOSED` if the semaphore is or gets
/// shut down; `SEM_EINVAL` if `sem` is NULL, `timeout_seconds` is NaN, or `n`
/// is below 1 or above `sem_max(sem)` (a request that could never be met).
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_RECOVERED` (acquired: the permits are the
/// caller's, and some came back from a process that died holding them) and
/// `SEM_EBUSY` (nothing taken: its lock is held by this thread, or the
/// handle has no slot); there the call takes the semaphore's lock (a
/// non-blocking one, or a timed one with less than 10 ms left, waits up to
/// 10 ms for it and then returns `SEM_TIMEDOUT`: a peer holds it that long
/// only while it is stopped or kept off the CPU inside a call; a timed one
/// waits for it until its deadline) and is not async-signal-safe.
///
/// Thread-safety: may be called from any thread at any time, but not from a
/// signal handler (it may wait for the semaphore's queue lock, which the
/// interrupted thread may hold).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_many(
    sem: *mut Semaphore,
    n: i64,
    timeout_seconds: f64,
) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_acquire_many", sem, SEM_EINVAL, |s| {
            let (Some(n), Some(wait)) = (
                permits_to_acquire(s, n),
                deadline::from_timeout_seconds(timeout_seconds),
            ) else {
                return SEM_EINVAL;
            };
            acquire_code(s.acquire(n, wait))
        })
    }
}

/// Acquires `n` permits at once, or none, waiting until `deadline_ns` on the
/// clock of `sem_clock_ns()` at the latest (`CLOCK_MONOTONIC` nanoseconds on
/// POSIX systems), so a retry loop can keep one deadline (like C++'s
/// `try_acquire_until` or POSIX `sem_clockwait`). A
/// deadline at or before now is a non-blocking attempt; `INT64_MAX` waits
/// without limit.
///
/// Returns `SEM_OK` if all `n` were taken; `SEM_TIMEDOUT` if the deadline
/// passed first (none were taken); `SEM_ECLOSED` if the semaphore is or gets
/// shut down; `SEM_EINVAL` if `sem` is NULL or `n` is below 1 or above
/// `sem_max(sem)`.
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_RECOVERED` (acquired: the permits are the
/// caller's, and some came back from a process that died holding them) and
/// `SEM_EBUSY` (nothing taken: its lock is held by this thread, or the
/// handle has no slot); there the call takes the semaphore's lock (a
/// non-blocking one, or a timed one with less than 10 ms left, waits up to
/// 10 ms for it and then returns `SEM_TIMEDOUT`: a peer holds it that long
/// only while it is stopped or kept off the CPU inside a call; a timed one
/// waits for it until its deadline) and is not async-signal-safe.
///
/// Thread-safety: may be called from any thread at any time, but not from a
/// signal handler (it may wait for the semaphore's queue lock, which the
/// interrupted thread may hold).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_until(sem: *mut Semaphore, n: i64, deadline_ns: i64) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with(
            "sem_acquire_until",
            sem,
            SEM_EINVAL,
            |s| match permits_to_acquire(s, n) {
                Some(n) => acquire_code(s.acquire(n, deadline::from_deadline_ns(deadline_ns))),
                None => SEM_EINVAL,
            },
        )
    }
}

/// One permit, fast path first: the argument check (a semaphore whose
/// maximum is 0 can never hold a permit) is only needed when no permit was
/// free, since such a semaphore never has one.
#[inline(always)]
fn acquire_one(s: &Semaphore, wait: Wait) -> c_int {
    match s.try_acquire(1) {
        Ok(()) => SEM_OK,
        // (`max_is_zero`, not `max() == 0`: no shared-mapping lookup on a
        // failing try-acquire.)
        Err(_) if s.max_is_zero() => SEM_EINVAL,
        Err(AcquireError::TimedOut) if wait != Wait::Never => acquire_code(s.acquire_slow(1, wait)),
        Err(e) => e.code(),
    }
}

/// `n` as a permit request for `s`: `None` unless `1 <= n <= max`.
pub(crate) fn permits_to_acquire(s: &Semaphore, n: i64) -> Option<u64> {
    u64::try_from(n).ok().filter(|&n| n >= 1 && n <= s.max())
}

/// Releases one permit, like Python's `release()`: if threads are blocked,
/// it wakes at most one, and only one that the permits now free can satisfy
/// (in FIFO mode, or for a waiter that has been overtaken for over a
/// millisecond, the permits are handed to it directly). In the default mode
/// a woken thread may find its permit taken by a running thread; it then
/// passes the wake-up on and waits again, so no thread stays asleep while
/// the free permits could serve it.
///
/// Returns `SEM_OK`; `SEM_EOVERFLOW` if the count would pass the semaphore's
/// maximum (for a bounded semaphore its initial value, otherwise
/// `SEM_COUNT_MAX`), in which case nothing was released; `SEM_EINVAL` if
/// `sem` is NULL. Releases keep working after `sem_shutdown`.
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore (see
/// `sem_new_shared`) also `SEM_EBUSY` (nothing released: its lock is held
/// by this thread, or the handle has no slot); there this call takes the
/// semaphore's lock (and waits for it while another process holds it) and
/// is not async-signal-safe: the next paragraphs do not apply.
///
/// Thread-safety: may be called from any thread at any time; the caller need
/// not hold a permit. Once the permit can be taken, this call no longer
/// touches the semaphore, so the thread that takes it may free it at once
/// (provided no other thread is blocked on it).
///
/// A release that serves pending async acquires delivers their completions
/// before it returns (callbacks run on this thread; see
/// `sem_acquire_async`), unless another call holds the queue lock: then it
/// only adds its permits, and that call serves them and delivers.
///
/// Async-signal-safe on Linux, as POSIX `sem_post`: it may be called from a
/// signal handler, even one that interrupted an rsem call on the same
/// thread and the same semaphore. It never waits for a lock: if another call
/// holds the semaphore's queue lock, the permit is added to the count and
/// that call serves it before it lets go; a thread is woken with one futex
/// system call. (On other Unix systems waking a thread takes a lock of
/// parking_lot_core, so there it is not async-signal-safe.)
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_release(sem: *mut Semaphore) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_release", sem, SEM_EINVAL, |s| {
            release_code(s.release(1))
        })
    }
}

/// Releases `n` permits at once, like Python's `release(n)`: blocked threads
/// that the permits satisfy are woken (up to `n` of them), and no others.
/// All or nothing: either all `n` are added or none. Costs time in the number
/// of threads woken, never in `n`.
///
/// Returns `SEM_OK`; `SEM_EOVERFLOW` if the count would pass the semaphore's
/// maximum (nothing was released); `SEM_EINVAL` if `sem` is NULL or `n` is
/// below 1.
///
/// Thread-safety and async-signal-safety: as `sem_release`.
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_release_n(sem: *mut Semaphore, n: i64) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_release_n", sem, SEM_EINVAL, |s| {
            if n < 1 {
                return SEM_EINVAL;
            }
            // n >= 1; whether it fits is the state machine's to say.
            release_code(s.release(n as u64))
        })
    }
}

/// The number of free permits right now (a snapshot, like Python's
/// `_value`), or `SEM_EINVAL` (-1) if `sem` is NULL.
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: a few atomic instructions).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_value(sem: *const Semaphore) -> i64 {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe { with("sem_value", sem, SEM_EINVAL.into(), |s| s.value() as i64) }
}

/// The largest count the semaphore accepts (its initial value for
/// `sem_new_bounded`, `SEM_COUNT_MAX` for `sem_new`), or `SEM_EINVAL` (-1)
/// if `sem` is NULL.
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: a few atomic instructions).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_max(sem: *const Semaphore) -> i64 {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe { with("sem_max", sem, SEM_EINVAL.into(), |s| s.max() as i64) }
}

/// The number of waiters queued on `sem` right now (a snapshot): threads
/// blocked in an acquire and pending async acquires; or `SEM_EINVAL` (-1) if
/// `sem` is NULL. For a process-shared semaphore: the threads registered to
/// sleep, in every process, including registrations left by processes that
/// died while blocked (but for `SEM_RECOVER` and `SEM_FIFO` ones, which
/// clear those), and not threads polling past 65,535 sleepers.
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: a few atomic instructions).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_waiters(sem: *const Semaphore) -> i64 {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_waiters", sem, SEM_EINVAL.into(), |s| {
            s.waiters() as i64
        })
    }
}

/// Takes every permit that is free right now and returns how many (0 or
/// more), like Java's `drainPermits`; or `SEM_EINVAL` (-1) if `sem` is NULL.
/// Takes none while blocked acquirers have priority over the free permits
/// (FIFO mode with a waiter queued). Works after `sem_shutdown` too.
///
/// On a `SEM_RECOVER` or `SEM_FIFO` shared semaphore the permits count as
/// the caller's (see `sem_new_shared`), and the call takes the semaphore's
/// lock (waiting up to 10 ms for it, as `sem_try_acquire`) and is not
/// async-signal-safe; it returns 0 if it could not have that lock (held by
/// this thread in an interrupted call, or by a peer that is stopped or kept
/// off the CPU inside a call), or if the handle has no slot (see
/// `SEM_EBUSY`).
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: a few atomic instructions).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_drain(sem: *mut Semaphore) -> i64 {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe { with("sem_drain", sem, SEM_EINVAL.into(), |s| s.drain() as i64) }
}

/// Shuts the semaphore down: every thread blocked in an acquire returns
/// `SEM_ECLOSED` promptly, and every later acquire returns `SEM_ECLOSED` at
/// once even if permits are free. Releases, `sem_value` and `sem_drain` keep
/// working, so holders can still return their permits. Calling it again is
/// harmless.
///
/// Returns `SEM_OK`, or `SEM_EINVAL` if `sem` is NULL.
///
/// Thread-safety: may be called from any thread at any time, but not from a
/// signal handler (it may wait for the semaphore's queue lock, which the
/// interrupted thread may hold).
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_shutdown(sem: *mut Semaphore) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_shutdown", sem, SEM_EINVAL, |s| {
            s.shutdown();
            SEM_OK
        })
    }
}

/// The monotonic clock that `sem_acquire_until` deadlines are measured on,
/// in nanoseconds (never negative, never going back): the host's own, so a
/// deadline may come from it directly.
/// - POSIX systems: `CLOCK_MONOTONIC` (`clock_gettime`), the clock of
///   libuv's `uv_hrtime()`, Python's `time.monotonic()` and asyncio's
///   `loop.time()` (in seconds), and libstdc++'s and libc++'s
///   `std::chrono::steady_clock`.
/// - Windows: `QueryPerformanceCounter` in nanoseconds, the clock of
///   `steady_clock`, `uv_hrtime()` and `time.monotonic()` there.
///
/// Add a timeout to it to form a deadline.
///
/// Thread-safety: may be called from any thread at any time, and from a
/// signal handler (async-signal-safe: one `clock_gettime`).
///
/// # Safety
/// None: any value of the arguments is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_clock_ns() -> i64 {
    guard("sem_clock_ns", deadline::clock_ns)
}
