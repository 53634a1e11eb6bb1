//! Where a blocked thread sleeps: one 32-bit word per waiter (its
//! [`Parker`]), 0 while it waits, set once by whoever wakes it to a value
//! that says why.
//!
//! - Linux: the word is a futex (`FUTEX_WAIT`/`FUTEX_WAKE`, private). Waking
//!   is one atomic store and one system call, both async-signal-safe, which
//!   is what makes `sem_release` safe to call from a signal handler.
//! - Other platforms: `parking_lot_core` parks the thread keyed on the
//!   word's address (Windows has no asynchronous signals; elsewhere waking
//!   from a signal handler is not claimed to be safe).
//! - Loom models: the sleeper spins, yielding to the model's scheduler, and a
//!   test thread plays the clock with [`Clock::fire`]: from then on every
//!   deadline on that semaphore has passed.
//!
//! A waker stores the value and then wakes by address, never touching the
//! parker again: the sleeper may see the value, return and free its stack
//! before the wake call is made (a wake of a dead address is harmless: the
//! futex or parking lot finds nobody, or wakes a stranger spuriously, and
//! every sleeper here re-checks its word).

#[cfg(not(loom))]
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
#[cfg(loom)]
use loom::sync::atomic::AtomicU32;
use std::time::Instant;

/// One waiter's wake-up word.
#[derive(Debug)]
pub(crate) struct Parker {
    word: AtomicU32,
    /// Loom: the owner, to unpark.
    #[cfg(loom)]
    owner: loom::thread::Thread,
}

/// What loom models need beside a semaphore: a clock, and a way to block
/// (not spin) while another thread holds the queue lock. Empty (and free) in
/// real builds.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// Every deadline has passed (loom only). Not a loom atomic: like the
    /// registries, it is the model's machinery, not the code under test,
    /// and a thread that registers after the clock fired must see it.
    #[cfg(loom)]
    fired: std::sync::atomic::AtomicBool,
    /// Threads waiting for the queue lock (loom only). A std mutex with no
    /// loom operation inside it: loom never switches threads while it is
    /// held.
    #[cfg(loom)]
    lock_waiters: std::sync::Mutex<Vec<loom::thread::Thread>>,
    /// Threads sleeping with a deadline (loom only), woken when it fires.
    #[cfg(loom)]
    sleepers: std::sync::Mutex<Vec<loom::thread::Thread>>,
}

#[cfg(loom)]
impl Clock {
    /// Loom models only: from now on every deadline has passed.
    pub(crate) fn fire(&self) {
        self.fired.store(true, Release);
        let sleepers = core::mem::take(&mut *self.sleepers.lock().unwrap());
        for t in sleepers {
            t.unpark();
        }
    }

    /// Whether the clock fired.
    fn passed(&self) -> bool {
        self.fired.load(Acquire)
    }

    /// Loom: sleeps until the queue lock is next released, unless
    /// `keep_waiting` (checked once registered) is false. Lock waiters wait
    /// for it to be free; models wait for the queue to settle (see
    /// `Semaphore::wait_queued`).
    pub(crate) fn wait_for_unlock(&self, keep_waiting: impl FnOnce() -> bool) {
        self.lock_waiters
            .lock()
            .unwrap()
            .push(loom::thread::current());
        if keep_waiting() {
            loom::thread::park();
        }
    }

    /// Loom: the queue lock was released; wake whoever waits for it.
    pub(crate) fn unlocked(&self) {
        let waiters = core::mem::take(&mut *self.lock_waiters.lock().unwrap());
        for t in waiters {
            t.unpark();
        }
    }
}

impl Parker {
    pub(crate) fn new() -> Self {
        Parker {
            word: AtomicU32::new(0),
            #[cfg(loom)]
            owner: loom::thread::current(),
        }
    }

    /// By its owner, while it is not queued: ready to sleep again.
    pub(crate) fn reset(&self) {
        self.word.store(0, Relaxed);
    }

    /// The wake value, 0 while nobody woke the owner. `Acquire`: what the
    /// waker did before its `Release` store is visible after a non-zero read.
    pub(crate) fn value(&self) -> u32 {
        // (Under loom too a plain load: loom's unpark passes the waker's
        // view of memory to the woken thread, so after a wake-up the load
        // sees the value. An RMW here would be wrong under loom: its stores
        // of 0 would race the waker's plain store, and loom 0.7 may then
        // order them after it.)
        self.word.load(Acquire)
    }

    /// Sleeps while the word is 0, until `deadline` at the latest. Returns
    /// false once the deadline has passed; true otherwise (woken, or
    /// spuriously: the caller re-reads [`Parker::value`]).
    #[cfg(not(loom))]
    pub(crate) fn sleep(&self, deadline: Option<Instant>, _clock: &Clock) -> bool {
        wait_while(&self.word, 0, deadline)
    }

    /// Loom: parks (the waker unparks the owner; the clock unparks timed
    /// sleepers when it fires). Loom must never have to deschedule a spinner.
    #[cfg(loom)]
    pub(crate) fn sleep(&self, deadline: Option<Instant>, clock: &Clock) -> bool {
        if deadline.is_some() {
            clock.sleepers.lock().unwrap().push(loom::thread::current());
            if clock.passed() {
                return false;
            }
        }
        if self.value() == 0 {
            loom::thread::park();
        }
        true
    }

    /// Stores `value` (non-zero) and wakes the parker's owner.
    ///
    /// # Safety
    /// `this` must point to a live parker whose owner cannot return before
    /// it sees a non-zero value (so it is live until the store); the parker
    /// is not dereferenced after the store.
    pub(crate) unsafe fn wake(this: *const Parker, value: u32) {
        debug_assert!(value != 0);
        // SAFETY: live until the store, by the caller's contract.
        let word = unsafe { &(*this).word };
        #[cfg(not(loom))]
        {
            let address = word.as_ptr();
            word.store(value, Release);
            wake_address(address);
        }
        #[cfg(loom)]
        {
            // SAFETY: live until the store, by the caller's contract.
            let owner = unsafe { (*this).owner.clone() };
            word.store(value, Release);
            owner.unpark();
        }
    }
}

/// Sleeps while `word` holds `expected`, until `deadline` at the latest (on
/// a futex on Linux, in parking_lot_core elsewhere). Returns false once the
/// deadline has passed; true otherwise (woken, or spuriously: the caller
/// checks again). For parkers, and for the timer thread (`timer.rs`).
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) fn wait_while(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let Some(left) = time_left(deadline) else {
        return false;
    };
    let timeout = left.map(|left| libc::timespec {
        tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: left.subsec_nanos().into(),
    });
    let ts = timeout
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the 32-bit word at the given address, which
    // is a live `AtomicU32` (same size and alignment as u32), and the
    // timespec (or NULL) that lives across the call. It only sleeps while
    // the word still holds `expected`; EINTR, EAGAIN and ETIMEDOUT all
    // return to the caller, who checks again.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts,
        );
    }
    true
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
pub(crate) fn wait_while(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    use parking_lot_core::{DEFAULT_PARK_TOKEN, ParkResult};
    let key = word.as_ptr() as usize;
    // SAFETY: `park` needs a key no other primitive uses while we sleep on
    // it: the address of a live word of our own; `validate` and `timed_out`
    // that neither panic nor park: an atomic load, nothing.
    let result = unsafe {
        parking_lot_core::park(
            key,
            || word.load(Acquire) == expected,
            || {},
            |_, _| {},
            DEFAULT_PARK_TOKEN,
            deadline,
        )
    };
    !matches!(result, ParkResult::TimedOut)
}

/// The time left until `deadline`: `None` once it has passed, `Some(None)`
/// for no deadline.
#[cfg(all(target_os = "linux", not(loom)))]
fn time_left(deadline: Option<Instant>) -> Option<Option<core::time::Duration>> {
    let Some(at) = deadline else {
        return Some(None);
    };
    let left = at.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(Some(left))
}

/// Sleeps while the 32-bit word at `address`, in memory that other processes
/// may map too, holds `expected`, until `deadline` at the latest (a shared
/// futex: the kernel keys it by the mapped object and offset, so a waiter
/// and a waker in different processes meet). Only wakes whose bitset shares
/// a bit with `bitset` reach it (`FUTEX_WAIT_BITSET`). Returns false once
/// the deadline has passed; true otherwise (woken, or spuriously: the
/// caller checks again).
///
/// # Safety
/// `address` must be valid for 32-bit reads, and 4-byte aligned, for the
/// whole call.
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) unsafe fn wait_shared(
    address: *const u32,
    expected: u32,
    deadline: Option<Instant>,
    bitset: u32,
) -> bool {
    let Some(left) = time_left(deadline) else {
        return false;
    };
    // FUTEX_WAIT_BITSET takes an absolute time on CLOCK_MONOTONIC, the
    // clock of `sem_clock_ns` (and of `Instant` on Linux).
    let at = left.map(|left| {
        let now = u64::try_from(crate::deadline::clock_ns()).unwrap_or(0);
        let at = now.saturating_add(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX));
        libc::timespec {
            tv_sec: libc::time_t::try_from(at / 1_000_000_000).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::try_from(at % 1_000_000_000).unwrap_or(0),
        }
    });
    let ts = at
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT_BITSET reads the word at `address`, valid and
    // aligned by this function's contract, and the timespec (or NULL) that
    // lives across the call; the fifth argument (uaddr2) is unused. Without
    // FUTEX_PRIVATE_FLAG the kernel keys the wait by the mapping, as a waker
    // in another process does. EINTR, EAGAIN and ETIMEDOUT all return to
    // the caller, who checks again.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            address,
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts,
            core::ptr::null::<u32>(),
            bitset,
        );
    }
    true
}

/// Wakes up to `count` threads, in any process, sleeping in `wait_shared`
/// on `address` with a bitset that shares a bit with `bitset`. Never
/// dereferences it: a release may call it after its permits were taken and
/// the mapping was unmapped (the kernel then finds no mapping, or another
/// object's waiters, who check again).
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) fn wake_shared(address: *const u32, count: i32, bitset: u32) {
    // SAFETY: FUTEX_WAKE_BITSET only looks the address up in this process's
    // mappings (EFAULT if there is none); it never accesses the memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            address,
            libc::FUTEX_WAKE_BITSET,
            count,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<u32>(),
            bitset,
        );
    }
}

/// Wakes one thread sleeping in `wait_while` on `address`, if any. Never
/// dereferences it.
#[cfg(not(loom))]
pub(crate) fn wake_one(address: *mut u32) {
    wake_address(address);
}

/// Wakes the sleeper on `address`, if any. Never dereferences it.
#[cfg(all(target_os = "linux", not(loom)))]
fn wake_address(address: *mut u32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key (no access to the
    // memory), so a stale address is harmless.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            address,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1i32,
        );
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
fn wake_address(address: *mut u32) {
    // SAFETY: the address is only a key here; the callback neither panics
    // nor parks.
    unsafe {
        parking_lot_core::unpark_one(address as usize, |_| parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}
