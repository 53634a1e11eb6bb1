//! The timer thread: ends async acquires whose deadline passed, and holds
//! (see `policy.rs`) that no queued thread keeps the time of. An async
//! waiter has no thread of its own to wake at its deadline, so one thread
//! per process, started by the first async acquire with a deadline, does it
//! for every semaphore.
//!
//! Each semaphore keeps `timer_at`, a lower bound of the earliest time it
//! needs the timer (ns on `deadline::nanos`; `u64::MAX`: never), lowered
//! under its queue lock. The thread sweeps the semaphores registered here:
//! each one whose `timer_at` has come is expired under its queue lock
//! (`Semaphore::expire`), which also computes its next `timer_at`; then it
//! sleeps until the earliest of them.
//!
//! Rules:
//! - A sweep visits one due semaphore at a time: under the registry's lock
//!   it checks that the semaphore is still registered and names it in
//!   `SWEEPING`; then, without that lock, it expires it and delivers the
//!   completions found (no rsem lock held), and clears `SWEEPING`.
//! - `sem_free` unregisters a semaphore under the registry's lock and then
//!   waits while `SWEEPING` names it, so when `sem_free` returns, every
//!   completion of that semaphore has been delivered and the thread never
//!   touches it again. (A callback on this thread that frees the semaphore
//!   being swept does not wait for itself: the rest of that delivery only
//!   touches tickets.) Lock order: registry, then a queue lock; nothing
//!   takes them the other way round.
//! - Every semaphore with async waiters is registered (`submit`), so the
//!   thread runs whenever a hold may need it.
//! - No wake-up is lost: whoever lowers a `timer_at` below what the thread
//!   sleeps until bumps `EPOCH` and wakes it (`poke`); the thread publishes
//!   `SLEEP_UNTIL = 0` before it reads `EPOCH` and sweeps, and sleeps only
//!   while `EPOCH` is unchanged, so a lowering it may have missed in a sweep
//!   either happened after its `0` was visible (then the poke bumps `EPOCH`
//!   and the sleep does not start) or before the sweep (then the sweep saw
//!   it).
//! - `fork()`: the prepare handler takes the registry's lock; in the child
//!   the thread does not exist: the child handler frees the lock and marks
//!   the thread as not running, and the next async acquire with a deadline
//!   starts a new one.

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};
use std::cell::UnsafeCell;
use std::time::Instant;

use crate::deadline;
use crate::parking;
use crate::semaphore::{Semaphore, Wakeups};
use crate::spin::SpinLock;

/// The registry's lock (see `spin.rs`).
static LOCKED: SpinLock = SpinLock::new();
/// Whether the thread runs.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Bumped by every poke; the thread sleeps on it (a futex on Linux).
static EPOCH: AtomicU32 = AtomicU32::new(0);
/// What the thread sleeps until (0 while it sweeps).
static SLEEP_UNTIL: AtomicU64 = AtomicU64::new(0);
/// The semaphore the thread is expiring or delivering completions of.
static SWEEPING: AtomicPtr<Semaphore> = AtomicPtr::new(core::ptr::null_mut());

std::thread_local! {
    /// Set on the timer thread (whose callbacks may call `sem_free`).
    static ON_TIMER: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// The registered semaphores (under `LOCKED`).
struct Registry(UnsafeCell<Vec<SemPtr>>);
// SAFETY: only touched under `LOCKED`.
unsafe impl Sync for Registry {}
static REGISTRY: Registry = Registry(UnsafeCell::new(Vec::new()));

#[derive(Clone, Copy, PartialEq, Eq)]
struct SemPtr(*const Semaphore);
// SAFETY: semaphores are Sync; a registered one is live until `unregister`.
unsafe impl Send for SemPtr {}

fn lock() {
    LOCKED.lock();
}

fn unlock() {
    LOCKED.unlock();
}

/// Runs `f` on the registry under its lock.
fn with_registry<R>(f: impl FnOnce(&mut Vec<SemPtr>) -> R) -> R {
    lock();
    // SAFETY: the lock gives this thread the only access.
    let r = f(unsafe { &mut *REGISTRY.0.get() });
    unlock();
    r
}

/// Makes sure `sem` is swept (and the thread runs). Returns false if the
/// thread could not be started: nothing would ever time out.
///
/// `sem` must stay live until `unregister(sem)`.
pub(crate) fn register(sem: &Semaphore) -> bool {
    if !sem.timer_registered().load(Acquire) {
        with_registry(|list| {
            if !sem.timer_registered().load(Relaxed) {
                list.push(SemPtr(sem));
                sem.timer_registered().store(true, Release);
            }
        });
    }
    start()
}

/// Stops sweeping `sem` (from `sem_free`); once it returns, the thread is
/// not inside `sem` and has delivered every completion it found there.
pub(crate) fn unregister(sem: &Semaphore) {
    if !sem.timer_registered().load(Acquire) {
        return;
    }
    with_registry(|list| list.retain(|&p| p != SemPtr(sem)));
    let me = core::ptr::from_ref(sem).cast_mut();
    if ON_TIMER.with(|on| on.get()) {
        return; // a callback of the sweep itself: see the module docs
    }
    while SWEEPING.load(Acquire) == me {
        std::thread::yield_now();
    }
}

/// A semaphore's `timer_at` was lowered to `at`: wake the thread if it
/// sleeps past it. Async-signal-safe (atomics and a futex wake).
pub(crate) fn poke(at: u64) {
    if at < SLEEP_UNTIL.load(SeqCst) || SLEEP_UNTIL.load(SeqCst) == 0 {
        EPOCH.fetch_add(1, SeqCst);
        wake();
    }
}

/// Starts the thread unless it runs.
fn start() -> bool {
    if RUNNING.load(Acquire) || RUNNING.swap(true, AcqRel) {
        return true;
    }
    let started = std::thread::Builder::new()
        .name("rsem-timer".into())
        .spawn(run)
        .is_ok();
    if !started {
        RUNNING.store(false, Release);
    }
    started
}

/// The thread's body: sweep, deliver, sleep; for ever.
fn run() {
    ON_TIMER.with(|on| on.set(true));
    loop {
        SLEEP_UNTIL.store(0, SeqCst);
        let epoch = EPOCH.load(SeqCst);
        let now = deadline::nanos(Instant::now());
        // SAFETY (both closures): registered semaphores are live, since
        // `sem_free` unregisters under this lock before it frees.
        let due: Vec<SemPtr> = with_registry(|list| {
            list.iter()
                .copied()
                .filter(|&SemPtr(p)| unsafe { &*p }.timer_at() <= now)
                .collect()
        });
        for SemPtr(p) in due {
            let still = with_registry(|list| {
                let still = list.contains(&SemPtr(p));
                if still {
                    SWEEPING.store(p.cast_mut(), Release);
                }
                still
            });
            if !still {
                continue;
            }
            let mut done = Wakeups::new();
            // SAFETY: named in `SWEEPING`, so `sem_free` waits for us.
            unsafe { &*p }.expire(now, &mut done);
            // Deliver with no rsem lock held (callbacks may call rsem).
            done.wake_all();
            SWEEPING.store(core::ptr::null_mut(), Release);
        }
        let next = with_registry(|list| {
            list.iter()
                .map(|&SemPtr(p)| unsafe { &*p }.timer_at())
                .min()
                .unwrap_or(u64::MAX)
        });
        SLEEP_UNTIL.store(next.max(1), SeqCst);
        sleep(epoch, next);
    }
}

/// Sleeps while `EPOCH == epoch`, until `until` (ns on `deadline::nanos`).
fn sleep(epoch: u32, until: u64) {
    let deadline = (until != u64::MAX)
        .then(|| deadline::instant(until))
        .flatten();
    parking::wait_while(&EPOCH, epoch, deadline);
}

/// Wakes the thread if it sleeps.
fn wake() {
    parking::wake_one(EPOCH.as_ptr());
}

/// `pthread_atfork` prepare handler: the registry is whole at the fork.
#[cfg(unix)]
pub(crate) fn before_fork() {
    lock();
}

/// `pthread_atfork` parent handler.
#[cfg(unix)]
pub(crate) fn after_fork_in_parent() {
    unlock();
}

/// `pthread_atfork` child handler: the thread is gone.
#[cfg(unix)]
pub(crate) fn after_fork_in_child() {
    RUNNING.store(false, Relaxed);
    SWEEPING.store(core::ptr::null_mut(), Relaxed);
    SLEEP_UNTIL.store(0, Relaxed);
    unlock();
}
