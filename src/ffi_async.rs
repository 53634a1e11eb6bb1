//! The `extern "C"` functions of async acquires: submit (`sem_acquire_async`
//! with a callback, `sem_acquire_notify` with a notifier), withdraw
//! (`sem_cancel`), and the notifier's life (`sem_notifier_*`). The same
//! checks and panic boundary as `ffi.rs`; the doc comments are copied into
//! `include/rsem.h` by cbindgen.
//!
//! The rules every function here keeps (stated in the header too):
//! - An acquire that returns `SEM_PENDING` gets exactly one completion,
//!   delivered by whichever state change dequeues it first: a grant (the
//!   permits are the caller's), its deadline, a shutdown (or `sem_free`),
//!   or `sem_cancel`. The others then find it gone.
//! - A completion is delivered with no rsem lock held, and rsem never
//!   touches the ticket or `ctx` after it.
//! - Any other return: nothing is queued and no completion comes.

use core::ffi::{c_int, c_void};
use core::ptr;

use crate::completion::{Callback, Completion, How, Ticket};
use crate::deadline::{self, Wait};
use crate::ffi::{permits_to_acquire, with};
use crate::notifier::{Done, Notifier};
use crate::panic::guard;
use crate::semaphore::{Semaphore, Submitted};
use crate::status::{
    SEM_EBUSY, SEM_EINVAL, SEM_ENOMEM, SEM_ENOTPENDING, SEM_ENOTSUP, SEM_OK, SEM_PENDING,
    acquire_code,
};

/// Registers `s` with the timer thread (starting it if need be) before an
/// acquire that may wait: every semaphore with async waiters is swept by it,
/// for deadlines, and for holds that only async waiters are behind. False if
/// the thread could not be started.
#[cfg(not(loom))]
fn timer_keeps(s: &Semaphore, wait: Wait) -> bool {
    wait == Wait::Never || crate::timer::register(s)
}

/// Loom models have no timer thread (they call `expire` themselves).
#[cfg(loom)]
fn timer_keeps(_s: &Semaphore, _wait: Wait) -> bool {
    true
}

/// Submits an async acquire (both front ends): validates, registers a
/// deadline with the timer thread, queues.
///
/// # Safety
/// `ticket` is NULL or valid for writes of a `Ticket` (and stays so while
/// pending, by the caller's contract).
unsafe fn submit(
    s: &Semaphore,
    n: i64,
    deadline_ns: i64,
    how: How,
    ctx: *mut c_void,
    ticket: *mut Ticket,
) -> c_int {
    let Some(n) = permits_to_acquire(s, n) else {
        return SEM_EINVAL;
    };
    // A shared semaphore has no queue for records of one process.
    if s.is_shared() {
        return SEM_ENOTSUP;
    }
    let wait = deadline::from_deadline_ns(deadline_ns);
    // Free now: no timer needed.
    if s.try_acquire(n).is_ok() {
        return SEM_OK;
    }
    if !timer_keeps(s, wait) {
        return SEM_ENOMEM;
    }
    let completion = Completion::new(how, ctx, ticket);
    // SAFETY: `ticket` is non-null (checked by the callers) and valid for a
    // `Ticket`, which holds a `WaitRecord` at `Ticket::record` (asserted in
    // `completion.rs`); while pending the caller keeps it live and
    // untouched.
    match unsafe { s.acquire_async(n, wait, Ticket::record(ticket), completion) } {
        Ok(Submitted::Acquired) => SEM_OK,
        Ok(Submitted::Pending) => SEM_PENDING,
        Err(e) => acquire_code(Err(e)),
    }
}

/// Acquires `n` permits without blocking the calling thread: if they are
/// free (and no queued waiter comes first), takes them and returns `SEM_OK`
/// at once, with no callback. Otherwise queues the request in `ticket` and
/// returns `SEM_PENDING`; later `callback(ctx, ticket, status)` is called
/// exactly once, with `status`:
/// - `SEM_OK`: the `n` permits were handed to this request: they are the
///   caller's (release them when done);
/// - `SEM_TIMEDOUT`: `deadline_ns` passed first (on the clock of
///   `sem_clock_ns()`; `INT64_MAX`: no deadline);
/// - `SEM_ECLOSED`: the semaphore was shut down, or freed, first;
/// - `SEM_CANCELLED`: `sem_cancel` withdrew it first.
///
/// Async and blocked waiters share one queue in arrival order: in FIFO mode
/// each is served in turn, with the same head-of-line rule for multi-permit
/// requests; in the default mode an async waiter that fits is handed its
/// permits directly by the release that frees them (it cannot race running
/// threads for them). A deadline at or before now makes this a non-blocking
/// attempt (`SEM_TIMEDOUT` at once, no callback).
///
/// Returns `SEM_OK` (acquired now), `SEM_PENDING` (queued; the callback
/// will come), `SEM_TIMEDOUT` (deadline already passed), `SEM_ECLOSED`
/// (shut down), `SEM_EINVAL` (NULL `sem`, `callback` or `ticket`; `n` below
/// 1 or above `sem_max(sem)`), or `SEM_ENOMEM` (the request had to wait and
/// rsem's timer thread, which the first such request in the process starts,
/// could not be started; nothing was queued). Only `SEM_PENDING` is followed
/// by a callback.
///
/// The callback runs on the thread that completed the request, after rsem
/// released its locks, inside whichever rsem call on this semaphore served
/// or ended it: a release, `sem_shutdown`, `sem_cancel`, `sem_free`, but
/// also any call that takes the semaphore's queue lock while a release
/// leaves it permits (a release that finds the lock taken only deposits
/// them, and the holder serves them): acquires of any kind, including
/// another `sem_acquire_async`; or rsem's timer thread (deadlines). So do
/// not hold a lock of your own around rsem calls that a callback also takes,
/// and do not block in a callback: on the timer thread that would hold up
/// the deadlines of every semaphore. Completions made by one call are
/// delivered in the order they were dequeued.
/// The callback may call any rsem function, and free the ticket, but must
/// not block for long: it holds up that thread. From a release made in a
/// signal handler, it runs in that handler. Event loops that must not be
/// called from other threads use `sem_acquire_notify` instead.
///
/// Ownership: `ticket` is caller memory; it must stay valid and untouched
/// from this call until its callback starts (not needed after any other
/// return). rsem never touches the ticket or `ctx` once the callback
/// started. A ticket may be reused after that.
///
/// Thread-safety: may be called from any thread, not from a signal handler
/// (it may wait for the queue lock). It never blocks otherwise, but it may
/// run other requests' callbacks (above). This request's callback may even
/// run, on another thread, before this call returns `SEM_PENDING`, never
/// inside it.
///
/// # Safety
/// `sem` must be NULL or a live handle; `ticket` NULL or valid for writes of
/// a `rsem_ticket` and not pending already; `callback` NULL or a function
/// of this type.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_async(
    sem: *mut Semaphore,
    n: i64,
    deadline_ns: i64,
    callback: Callback,
    ctx: *mut c_void,
    ticket: *mut Ticket,
) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract; `ticket` is
    // checked for NULL before `submit` writes it.
    unsafe {
        with("sem_acquire_async", sem, SEM_EINVAL, |s| {
            match (callback, ticket.is_null()) {
                (Some(cb), false) => submit(s, n, deadline_ns, How::Callback(cb), ctx, ticket),
                _ => SEM_EINVAL,
            }
        })
    }
}

/// As `sem_acquire_async`, but the completion is queued on `notifier`
/// instead of calling a callback: for an event loop that must not be called
/// from other threads. The loop polls `sem_notifier_fd(notifier)` and calls
/// `sem_notifier_drain`, which returns `{ticket, ctx, status}` with the
/// statuses of `sem_acquire_async`'s callback.
///
/// Returns the codes of `sem_acquire_async` (`SEM_EINVAL` for a NULL
/// `notifier` in place of a NULL callback). Only `SEM_PENDING` is followed
/// by a completion.
///
/// Ownership: as `sem_acquire_async`, until `sem_notifier_drain` returned
/// the completion. Completing is async-signal-safe here on Linux (a
/// compare-and-swap and a `write`), so a release in a signal handler may
/// complete it.
///
/// Thread-safety: as `sem_acquire_async`.
///
/// # Safety
/// As `sem_acquire_async`; `notifier` NULL or a live notifier.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_notify(
    sem: *mut Semaphore,
    n: i64,
    deadline_ns: i64,
    notifier: *mut Notifier,
    ctx: *mut c_void,
    ticket: *mut Ticket,
) -> c_int {
    // SAFETY: `sem` and `notifier` are NULL or live, by the caller's
    // contract; both NULLs are refused before use.
    unsafe {
        with("sem_acquire_notify", sem, SEM_EINVAL, |s| {
            let Some(nt) = notifier.as_ref().filter(|_| !ticket.is_null()) else {
                return SEM_EINVAL;
            };
            // Counted before it can complete, so that a drain never sees
            // more completions than submissions.
            nt.submitted();
            let status = submit(s, n, deadline_ns, How::Notify(nt), ctx, ticket);
            if status != SEM_PENDING {
                nt.withdrawn();
            }
            status
        })
    }
}

/// Withdraws a pending async acquire. If it is still queued on `sem`, it is
/// dequeued, its completion is delivered with `SEM_CANCELLED` (the callback
/// has run, or the completion is queued on the notifier) before this
/// returns `SEM_OK`, and nothing was taken.
///
/// Returns `SEM_OK` (withdrawn); `SEM_ENOTPENDING` if it is not queued on
/// `sem`: it was granted, timed out or shut down first, and its completion
/// was delivered or is being delivered (by another thread, or by this one
/// once the callback it is running returns: do not wait for it there; for a
/// grant, the permits are the caller's: release them), or it was never
/// submitted there; `SEM_EINVAL` if `sem` or `ticket` is NULL.
///
/// `ticket` is only compared with the queue's entries, never read, so it is
/// safe to call after the completion (the ticket memory may even be freed).
/// Takes time proportional to the number of queued waiters.
///
/// Thread-safety: may be called from any thread, not from a signal handler
/// (it takes the queue lock). It may be called from the ticket's own
/// callback (it then finds nothing).
///
/// # Safety
/// `sem` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_cancel(sem: *mut Semaphore, ticket: *const Ticket) -> c_int {
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe {
        with("sem_cancel", sem, SEM_EINVAL, |s| {
            if ticket.is_null() {
                SEM_EINVAL
            } else if s.is_shared() {
                // Nothing is ever queued there (and its queue lock must not
                // be taken: a process killed holding it would stop others).
                SEM_ENOTPENDING
            } else if s.cancel(Ticket::record(ticket)) {
                SEM_OK
            } else {
                SEM_ENOTPENDING
            }
        })
    }
}

/// Creates a notifier: a queue of completed async acquires
/// (`sem_acquire_notify`) with a file descriptor that is readable while
/// completions wait to be drained (an `eventfd` on Linux, the read end of a
/// pipe on other Unix systems; see `sem_notifier_fd`).
///
/// Returns a new notifier, owned by the caller and freed with
/// `sem_notifier_free`; or NULL with errno set (`EMFILE`, `ENFILE`, ...) if
/// the descriptor could not be made.
///
/// Thread-safety: may be called from any thread. A notifier belongs to the
/// process that made it: do not use it in a `fork()`ed child.
///
/// # Safety
/// None: there are no arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_notifier_new() -> *mut Notifier {
    guard("sem_notifier_new", || match Notifier::new() {
        Some(n) => Box::into_raw(Box::new(n)),
        None => ptr::null_mut(),
    })
}

/// The descriptor to poll for reading (`epoll`, `poll`, libuv's `uv_poll`,
/// asyncio's `add_reader`): readable while completions wait; drain with
/// `sem_notifier_drain`. Owned by the notifier: do not close or read it.
///
/// Returns the descriptor; -1 if `notifier` is NULL, and on Windows, where a
/// notifier has none (drain it on the loop's own schedule, or use
/// callbacks).
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `notifier` must be NULL or a live notifier.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_notifier_fd(notifier: *const Notifier) -> c_int {
    // SAFETY: NULL or live, by the caller's contract.
    match unsafe { notifier.as_ref() } {
        Some(n) => n.fd(),
        None => -1,
    }
}

/// Moves up to `capacity` completed async acquires, oldest first, into
/// `out`, and returns how many (0 if none). Each is `{ticket, ctx, status}`
/// with the statuses of `sem_acquire_async`'s callback; from then on the
/// ticket and ctx are the caller's, and rsem never touches them again. If
/// more are waiting, the descriptor stays readable.
///
/// Returns the number moved, or `SEM_EINVAL` (-1) if `notifier` is NULL,
/// `out` is NULL with `capacity` above 0, or `capacity` is negative.
///
/// Thread-safety: may be called from any thread; concurrent drains of one
/// notifier are serialized. Not from a signal handler.
///
/// # Safety
/// `notifier` must be NULL or a live notifier; `out` valid for writes of
/// `capacity` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_notifier_drain(
    notifier: *mut Notifier,
    out: *mut Done,
    capacity: i64,
) -> i64 {
    // SAFETY: NULL or live, by the caller's contract.
    let Some(n) = (unsafe { notifier.as_ref() }) else {
        return SEM_EINVAL.into();
    };
    let Ok(capacity) = usize::try_from(capacity) else {
        return SEM_EINVAL.into();
    };
    if out.is_null() && capacity > 0 {
        return SEM_EINVAL.into();
    }
    let out = if capacity == 0 {
        &mut [][..]
    } else {
        // SAFETY: non-null and valid for `capacity` writes, by the caller's
        // contract; `Done` is plain data, so any bytes there may be
        // overwritten.
        unsafe { core::slice::from_raw_parts_mut(out, capacity) }
    };
    guard("sem_notifier_drain", || n.drain(out) as i64)
}

/// Makes completions skip the descriptor while the calling event loop
/// releases on its own thread and then drains at once (`quiet` non-zero),
/// and ends that (`quiet` zero): completions made meanwhile, on any thread,
/// are queued without a `write` and without waking the loop later, so a
/// release handed to a waiter of the same loop costs no system call. Calls
/// nest (they are counted). Ending it does not signal: call
/// `sem_notifier_drain` right after, which takes what was queued.
///
/// Returns `SEM_OK`, or `SEM_EINVAL` if `notifier` is NULL.
///
/// Thread-safety: may be called from any thread; meant for the thread that
/// drains.
///
/// # Safety
/// `notifier` must be NULL or a live notifier.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_notifier_quiet(notifier: *mut Notifier, quiet: c_int) -> c_int {
    // SAFETY: NULL or live, by the caller's contract.
    match unsafe { notifier.as_ref() } {
        Some(n) => {
            n.set_quiet(quiet != 0);
            SEM_OK
        }
        None => SEM_EINVAL,
    }
}

/// Frees a notifier and closes its descriptor.
///
/// Returns `SEM_OK`; `SEM_EBUSY` if acquires submitted with it are still
/// queued or have completions not yet drained, or a thread is still
/// finishing queuing one (for a moment after the drain that took it);
/// nothing is freed: cancel or drain, then try again; `SEM_EINVAL` if
/// `notifier` is NULL.
///
/// Thread-safety: must not race other calls on the same notifier.
///
/// # Safety
/// `notifier` must be NULL or a notifier from `sem_notifier_new` that has
/// not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_notifier_free(notifier: *mut Notifier) -> c_int {
    if notifier.is_null() {
        return SEM_EINVAL;
    }
    // SAFETY: live and from `Box::into_raw` in `sem_notifier_new`, by the
    // caller's contract; freed once, only when nothing is pending.
    guard("sem_notifier_free", || unsafe {
        if (*notifier).busy() {
            SEM_EBUSY
        } else {
            drop(Box::from_raw(notifier));
            SEM_OK
        }
    })
}
