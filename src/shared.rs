//! The process-shared backend of the state machine: how a semaphore that
//! lives in memory shared between processes (`shm.rs`) waits and wakes.
//!
//! The in-process slow paths queue records on the waiters' stacks behind a
//! lock bit; neither works across processes (a record's address means
//! nothing in another process, and a process killed while it holds the lock
//! would stop every other). So a shared semaphore has no queue and no lock:
//! blocked threads, in any process, register in the state word itself and
//! sleep on a shared futex: the word's low 32 bits (the count and
//! `CLOSING`). The fast paths are
//! the in-process ones, unchanged (`semaphore.rs`); only their failure
//! branches come here.
//!
//! # The state word of a shared semaphore
//!
//! | bits    | name       | meaning                                                   |
//! |---------|------------|-----------------------------------------------------------|
//! | 0..=30  | count      | free permits, `0..=max` (`max <= SHARED_COUNT_MAX`)       |
//! | 31      | `CLOSING`  | set with `CLOSED`: a shutdown changes the futex word      |
//! | 32..=47 | sleepers   | threads registered to sleep (all processes)               |
//! | 48..=59 | multi      | those of them that want more than one permit              |
//! | 60      | `PARKED`   | unused (0)                                                |
//! | 61      | `HANDOFF`  | set exactly when `sleepers > 0`                           |
//! | 62      | `CLOSED`   | shut down: every acquire fails with `Closed`              |
//! | 63      | `LOCKED`   | unused (0)                                                |
//!
//! How the in-process fast paths stay right on this word:
//! - acquire (and `try_acquire`) subtract only while `HANDOFF` is clear, that
//!   is while `sleepers` and `multi` are 0, so the count is all there is
//!   below bit 60 (`CLOSING` comes with `CLOSED`, which they check first);
//!   with `HANDOFF` set they fail into `shared_try` and `shared_acquire`;
//! - release adds only while `(word & (PARKED | COUNT_MASK)) + n <= max`:
//!   a registered sleeper (or `CLOSING`) puts bit 31 or above into that
//!   sum, which is then above any shared `max`, so releases with sleepers
//!   (or after a shutdown) come to `shared_release`.
//!
//! # Rules
//!
//! - A blocked acquirer registers (`sleepers += 1`, `multi += 1` if it
//!   wants more than one permit, `HANDOFF` set) by a compare-and-swap from a
//!   word whose count is too small for it, then sleeps on the futex while
//!   the low 32 bits are unchanged. Each time it wakes it tries, in
//!   one compare-and-swap, to take its permits and deregister at once; it
//!   deregisters without permits only on timeout or shutdown.
//! - A release adds its permits by compare-and-swap; if the word it replaced
//!   had sleepers, it then wakes `n` of those that want one permit, or all
//!   of them if any wants more (a woken thread that cannot use what came
//!   free would otherwise leave a fitting one asleep). Futex bitsets keep
//!   "wake n" from reaching a thread that wants more than one permit, even
//!   one that registered after the release's compare-and-swap.
//! - No wake-up is lost: registering and releasing are read-modify-writes of
//!   the one word, so a release after a registration sees the sleeper and
//!   wakes it after its compare-and-swap; the sleeper's futex call compares
//!   the low 32 bits it registered with, so it returns at once if the
//!   release came first, or is queued in the kernel before the wake (the
//!   kernel orders the compare and the queueing against wakes). The low 32
//!   bits change with every release (`0 < n <= max < 2^31`, so the count
//!   changes) and with a shutdown (`CLOSING`): the two events a sleeper
//!   waits for.
//! - Before it registers, an acquirer spins for a few microseconds while
//!   nobody sleeps (`Semaphore::spin`, as in-process).
//! - The default mode only: a running thread may take permits that a
//!   release woke a sleeper for (as glibc's `sem_t`); the woken thread then
//!   sleeps again. (Fairness holds and FIFO need a queue; see the README.)
//! - A release's compare-and-swap is its last access to the memory; the
//!   futex wake after it uses the address only as a key. So a thread may
//!   free (unmap) its handle as soon as its acquire returns, even while the
//!   release that woke it is still returning (glibc bug 12674).
//! - A process killed while registered leaves its registration behind: the
//!   count stays right, but every later release makes a futex wake system
//!   call (a wake-all, if the dead thread wanted more than one permit) and
//!   acquires with too few permits take the slow branch, until the
//!   semaphore is made anew (as glibc's `sem_t` keeps a dead waiter's
//!   count). `sem_waiters` then counts it.
//! - A process killed between a release's compare-and-swap and its wake,
//!   or a woken thread's process killed before it takes its permit, loses
//!   that wake-up: a sleeper looks at the word again after `RECHECK` (1 s)
//!   at the latest, so such a death delays waiters by at most that.
//!
//! Memory orderings: every decision is a read-modify-write of the one word;
//! taking permits is `Acquire` and adding them `Release` (at least), as for
//! the in-process paths.

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::time::{Duration, Instant};

use crate::deadline::Wait;
use crate::parking::{wait_shared, wake_shared};
use crate::semaphore::{CLOSED, HANDOFF, Semaphore};
use crate::status::{AcquireError, ReleaseError};

/// The largest maximum (and count) of a shared semaphore: the count has
/// the low 31 bits of the word (the futex is its low 32 bits).
pub(crate) const SHARED_COUNT_MAX: u64 = (1 << 31) - 1;
pub(crate) const COUNT: u64 = SHARED_COUNT_MAX;
pub(crate) const CLOSING: u64 = 1 << 31;
pub(crate) const SLEEPER: u64 = 1 << 32;
pub(crate) const SLEEPERS: u64 = 0xFFFF << 32;
pub(crate) const MULTI: u64 = 1 << 48;
pub(crate) const MULTIS: u64 = 0xFFF << 48;

/// A thread that cannot register (65,535 sleepers, or 4,095 multi-permit
/// ones, already) polls instead, looking again this often.
pub(crate) const POLL: Duration = Duration::from_millis(1);

/// A sleeper looks at the word again after this long at the latest, even if
/// nobody woke it: a wake-up meant for it is lost if the releasing process
/// dies between its compare-and-swap and its wake, or if the thread woken
/// for a permit dies before it takes it.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// Futex bitsets: a thread that wants one permit waits with `ONE`, more
/// with `MANY`; "wake n" wakes `ONE`s only (a thread that wants more could
/// not use what a release of too few frees, and would swallow the wake-up),
/// "wake all" both.
const ONE: u32 = 1;
const MANY: u32 = 2;
const ANY: u32 = u32::MAX;

/// The bitset a thread that wants `n` permits waits with.
fn bitset(n: u64) -> u32 {
    if n > 1 { MANY } else { ONE }
}

/// `s` less one registration (of a thread wanting `n`), with `HANDOFF`
/// cleared if it was the last.
fn deregistered(s: u64, n: u64) -> u64 {
    // (Wrapping: only a peer that wrote the word could make it wrap, and
    // that must not abort this process.)
    let s = s
        .wrapping_sub(SLEEPER)
        .wrapping_sub(if n > 1 { MULTI } else { 0 });
    if s & SLEEPERS == 0 { s & !HANDOFF } else { s }
}

impl Semaphore {
    /// The futex: the low 32 bits of the state word.
    fn futex(&self) -> *const u32 {
        let word = self.state.as_ptr().cast::<u32>().cast_const();
        if cfg!(target_endian = "big") {
            word.wrapping_add(1)
        } else {
            word
        }
    }

    /// `value` of a shared semaphore.
    pub(crate) fn shared_value(&self) -> u64 {
        self.state.load(Relaxed) & COUNT
    }

    /// `waiters` of a shared semaphore: threads registered to sleep, in
    /// every process.
    pub(crate) fn shared_waiters(&self) -> u64 {
        (self.state.load(Relaxed) & SLEEPERS) >> 32
    }

    /// `try_acquire` of a shared semaphore whose word has sleepers: takes
    /// `n` permits if they are free (a running thread may take permits
    /// before the sleepers a release woke for them).
    #[cold]
    pub(crate) fn shared_try(&self, n: u64) -> Result<(), AcquireError> {
        if let Some(owner) = crate::shm::owner(self) {
            return self.recover_try(&owner, n);
        }
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                return Err(AcquireError::Closed);
            }
            if s & COUNT < n {
                return Err(AcquireError::TimedOut);
            }
            match self.state.compare_exchange_weak(s, s - n, Acquire, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// `acquire_slow` of a shared semaphore: registers and sleeps on the
    /// shared futex (see the rules above).
    #[cold]
    pub(crate) fn shared_acquire(&self, n: u64, wait: Wait) -> Result<(), AcquireError> {
        if let Some(owner) = crate::shm::owner(self) {
            return self.recover_acquire(&owner, n, wait);
        }
        let deadline = match wait {
            Wait::Never => return self.shared_try(n),
            Wait::Until(at) => Some(at),
            Wait::Forever => None,
        };
        let mut registered = false;
        self.spin_while_nobody_sleeps(n);
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED == 0 && s & COUNT >= n {
                // Take the permits and leave in one step.
                let left = if registered { deregistered(s, n) } else { s };
                match self
                    .state
                    .compare_exchange_weak(s, left - n, AcqRel, Relaxed)
                {
                    Ok(_) => return Ok(()),
                    Err(now) => s = now,
                }
                continue;
            }
            // Shut down, or out of time (checked after the count: permits
            // that came with the deadline are still taken): leave.
            if let Some(e) = gives_up(s, deadline) {
                if !registered {
                    return Err(e);
                }
                match self
                    .state
                    .compare_exchange_weak(s, deregistered(s, n), Relaxed, Relaxed)
                {
                    Ok(_) => return Err(e),
                    Err(now) => s = now,
                }
                continue;
            }
            if !registered {
                // With 65,535 sleepers (or 4,095 multi-permit ones) the
                // fields are full: poll instead of registering.
                let full = s & SLEEPERS == SLEEPERS || (n > 1 && s & MULTIS == MULTIS);
                if !full {
                    let new = (s + SLEEPER + if n > 1 { MULTI } else { 0 }) | HANDOFF;
                    match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                        Ok(_) => {
                            registered = true;
                            s = new;
                        }
                        Err(now) => {
                            s = now;
                            continue;
                        }
                    }
                }
            }
            let cap = if registered { RECHECK } else { POLL };
            self.sleep_on_word(s, n, cap, deadline);
            s = self.state.load(Relaxed);
        }
    }

    /// Spins first, as in-process acquirers do, while nobody sleeps, until
    /// `n` permits are free (or a shutdown): a permit passed between running
    /// processes then costs a cache-line transfer, not a futex wake-up.
    pub(crate) fn spin_while_nobody_sleeps(&self, n: u64) {
        self.spin(|s| {
            if s & CLOSED != 0 || s & COUNT >= n {
                Some(true)
            } else if s & SLEEPERS != 0 {
                Some(false)
            } else {
                None
            }
        });
    }

    /// The count (as of `s`) is too small for `n`: sleeps while the low 32
    /// bits are unchanged (`as u32` keeps them), until `deadline` and for
    /// at most `cap` (`RECHECK` when registered, `POLL` when polling).
    pub(crate) fn sleep_on_word(&self, s: u64, n: u64, cap: Duration, deadline: Option<Instant>) {
        let cap = Instant::now() + cap;
        let until = deadline.map_or(cap, |at| at.min(cap));
        // SAFETY: the futex is inside `self.state`, a live, aligned word
        // (`&self`).
        unsafe { wait_shared(self.futex(), s as u32, Some(until), bitset(n)) };
    }

    /// `release_slow` of a shared semaphore, from state `s`: adds the
    /// permits, then wakes sleepers for them.
    #[cold]
    pub(crate) fn shared_release(&self, n: u64, mut s: u64) -> Result<(), ReleaseError> {
        if let Some(owner) = crate::shm::owner(self) {
            return self.recover_release(&owner, n);
        }
        // Computed before the compare-and-swap, the last access.
        let futex = self.futex();
        // `max` is in the shared memory: clamped and subtracted with care,
        // so that a peer that wrote nonsense there breaks only the count.
        let max = self.params.max.min(SHARED_COUNT_MAX);
        loop {
            if n > max.saturating_sub(s & COUNT) {
                return Err(ReleaseError::Overflow);
            }
            match self.state.compare_exchange_weak(s, s + n, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & SLEEPERS != 0 {
            wake_for(futex, s, n);
        }
        Ok(())
    }

    /// After `n` permits were added to word `s` that had sleepers: wakes
    /// `n` of those that want one permit, or all if any wants more.
    pub(crate) fn wake_sleepers(&self, s: u64, n: u64) {
        wake_for(self.futex(), s, n);
    }

    /// Wakes every sleeper, in every process.
    pub(crate) fn wake_all_sleepers(&self) {
        wake_shared(self.futex(), i32::MAX, ANY);
    }

    /// `shutdown` of a shared semaphore: sets `CLOSED` and wakes every
    /// sleeper, in every process.
    pub(crate) fn shared_shutdown(&self) {
        let futex = self.futex();
        let owner = crate::shm::owner(self);
        let s = self.state.fetch_or(CLOSED | CLOSING, AcqRel);
        if s & SLEEPERS != 0 {
            wake_shared(futex, i32::MAX, ANY);
        }
        if let Some(owner) = owner {
            self.recover_shutdown(&owner);
        }
    }
}

/// Why an acquire that found too few permits in word `s` ends now, if it
/// does: shut down, or past its deadline.
pub(crate) fn gives_up(s: u64, deadline: Option<Instant>) -> Option<AcquireError> {
    if s & CLOSED != 0 {
        Some(AcquireError::Closed)
    } else if deadline.is_some_and(|at| Instant::now() >= at) {
        Some(AcquireError::TimedOut)
    } else {
        None
    }
}

/// `Semaphore::wake_sleepers` on futex `futex` (computed before the word's
/// last access).
fn wake_for(futex: *const u32, s: u64, n: u64) {
    match s & MULTIS {
        0 => wake_shared(futex, i32::try_from(n).unwrap_or(i32::MAX), ONE),
        _ => wake_shared(futex, i32::MAX, ANY),
    }
}
