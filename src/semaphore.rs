//! The semaphore's state machine: one atomic word, fast paths on it, and the
//! park/unpark slow paths. Bounded, FIFO and multi-permit semaphores are all
//! this one machine with different parameters (`max`, `fifo`, `n`); which
//! queued waiters a release serves is decided by the pure policy in
//! `policy.rs`.
//!
//! # The state word
//!
//! | bits   | name      | meaning                                                        |
//! |--------|-----------|----------------------------------------------------------------|
//! | 0..=59 | count     | free permits, `0..=max` (`max <= COUNT_MAX = 2^60 - 1`)        |
//! | 60     | `PARKED`  | threads may be queued on this semaphore's key                  |
//! | 61     | `HANDOFF` | queued waiters come first: no acquire may take from the count  |
//! | 62     | `CLOSED`  | shut down: every acquire fails with `Closed`                   |
//! | 63     | -         | always zero                                                    |
//!
//! Beside the word (on their own cache line): `promised`, the permits that
//! woken threads were told they may find (a hint for how many threads to
//! wake, never a reservation); `hold_until` and `next_fair`, the times of
//! the default mode's fairness; `timekeepers`, the queued threads that sleep
//! with the current hold's deadline; `waiters`, a statistic.
//!
//! # Rules
//!
//! - `PARKED` is set by a thread about to queue itself (in `park`'s validate
//!   callback, under the bucket lock) and cleared only under the bucket lock
//!   when the queue has become empty. So, under the bucket lock, `PARKED` is
//!   set exactly when threads are queued, and no release can add permits
//!   without taking the lock while it is set.
//! - `HANDOFF` is only changed under the bucket lock: in FIFO mode it is set
//!   whenever threads are queued; in the default mode while a hold is in
//!   force (see `policy.rs`).
//! - Acquire is one compare-and-swap that subtracts from the count when the
//!   count is large enough and `HANDOFF` is clear (the fast path). Otherwise,
//!   while nobody is queued, it spins for at most [`SPIN_FOR`] watching the
//!   word (a handoff between running threads then costs a cache-line
//!   transfer, not a sleep), then parks.
//! - While `PARKED` is clear, `release` is one compare-and-swap that adds to
//!   the count (the fast path). While it is set, `release` takes the bucket
//!   lock, adds its permits to the count, and walks the queue in arrival
//!   order with a `policy::Walk`, which decides for each waiter: *hand* it
//!   its permits (take them from the count on its behalf, so it owns them),
//!   *wake* it to compete for permits promised to it (if it loses, it passes
//!   the wake-up on and queues again), wake it as a *timekeeper* of a hold,
//!   skip it, or stop.
//! - Every way a waiter leaves the queue that may leave others unserved walks
//!   the queue again: a timeout (`Entry::Leave`), a woken waiter that lost
//!   its permits (`Entry::Lost`), a timekeeper whose hold deadline passed
//!   (`Entry::HoldTimer`). A waiter dequeued by a timeout was dequeued under
//!   the lock before anyone could hand it anything, so it never swallows a
//!   permit.
//! - A release never touches the semaphore after its permits can be taken by
//!   a thread that may then free it: the fast path's compare-and-swap is its
//!   last access, and the slow path makes all its changes under the bucket
//!   lock while waiters are still queued (those waiters keep the semaphore
//!   alive: freeing it while they wait is undefined), waking the chosen
//!   threads only after the lock's callback ran.
//!
//! # Memory orderings
//!
//! Every decision about the count and the flags is a compare-and-swap on the
//! one state word, so the word's modification order alone keeps them
//! consistent (a flag set after a fast path read the word makes that fast
//! path's CAS fail). Orderings are only about what the *other* memory shows:
//! - a release's CAS is `Release` and an acquire's is `Acquire` (at least),
//!   so what a thread did before releasing is visible to the thread that
//!   takes the permit, as a mutex would guarantee;
//! - the CASes made under the bucket lock (`publish`, `take_for_waiter`,
//!   `set_queue_flags`) are `AcqRel`: they carry the releaser's writes on to
//!   a waiter that is handed the permits, which reads its record's `woken`
//!   with `Acquire` after the dispatcher stored it with `Release`;
//! - `promised` is `Relaxed`, and correct because the acquire CAS that
//!   follows a woken waiter's decrement is `AcqRel` (see `try_acquire`);
//! - the records' other fields and the slow counters are read and written
//!   under the bucket lock, which orders them (`Relaxed`), except `waiters`,
//!   a statistic.

use core::cell::{Cell, RefCell};
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
// Under `--cfg loom` the state machine's atomics are loom's, so that the model
// checker sees (and reorders) every access to them.
#[cfg(not(loom))]
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};
#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::deadline::{self, Wait};
use crate::oracle::{Snapshot, Waiting};
use crate::parking::{self, FilterOp, ParkResult, ParkToken, UnparkResult, UnparkToken};
use crate::policy::{Decision, Entry, Fairness, Mark, Start, Verdict, Waiter, Walk};
use crate::status::{AcquireError, ReleaseError};

/// The largest count and maximum a semaphore can hold.
pub const COUNT_MAX: u64 = crate::status::SEM_COUNT_MAX as u64;
const COUNT_MASK: u64 = COUNT_MAX;
const PARKED: u64 = 1 << 60;
const HANDOFF: u64 = 1 << 61;
const CLOSED: u64 = 1 << 62;

/// Whether, in state `s`, an acquirer may take `n` permits itself: enough
/// are free and no queued waiter has priority. (`CLOSED` is checked apart,
/// because it ends the acquire instead of making it wait.)
#[inline]
fn may_take(s: u64, n: u64) -> bool {
    s & HANDOFF == 0 && s & COUNT_MASK >= n
}

/// How long an acquirer spins, while nobody is queued, before it parks.
#[cfg(not(loom))]
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(4);
/// Loom models do not spin.
#[cfg(loom)]
pub(crate) const SPIN_FOR: Duration = Duration::ZERO;

/// Given to waiters woken by a walk: look at your record's `woken`.
const TOKEN_WOKEN: UnparkToken = UnparkToken(1);
/// Given to waiters woken by `shutdown`.
const TOKEN_CLOSED: UnparkToken = UnparkToken(2);

/// `WaitRecord::woken`: not woken by a walk (yet).
const WOKEN_NOT: u8 = 0;
/// Woken with a promise: compete for the permits.
const WOKEN_PROMISED: u8 = 1;
/// Handed the permits: they are the waiter's.
const WOKEN_HANDED: u8 = 2;
/// Woken as a hold's timekeeper: nothing for it; wait again.
const WOKEN_TIMEKEEPER: u8 = 3;

/// What a queued thread asks for; lives on that thread's stack while it is
/// queued, and its address is the thread's `ParkToken`. Every field but `n`
/// is written only under the bucket lock (or by its owner while it is not
/// queued).
struct WaitRecord {
    /// Permits wanted, `1..=max`.
    n: u64,
    /// When (ns on `deadline::nanos`) it may become starving once overtaken:
    /// first queue time plus `fair_after`, pushed back when its hold lapses.
    fair_at: AtomicU64,
    /// Set once this waiter was overtaken: a release found the permits too
    /// few for it, or it was woken and a running thread took them first.
    passed_over: AtomicBool,
    /// It is the held waiter of the default mode's current hold.
    held: AtomicBool,
    /// How many of its holds lapsed.
    lapses: AtomicU32,
    /// It sleeps with the current hold's deadline (counted in
    /// `SlowCounters::timekeepers`).
    keeps_time: AtomicBool,
    /// How a walk woke it (`WOKEN_*`), stored before it is woken.
    woken: AtomicU8,
}

impl WaitRecord {
    /// What the policy needs to know about this waiter.
    fn view(&self) -> Waiter {
        Waiter {
            n: self.n,
            passed_over: self.passed_over.load(Relaxed),
            fair_at: self.fair_at.load(Relaxed),
            held: self.held.load(Relaxed),
            lapses: self.lapses.load(Relaxed),
            keeps_time: self.keeps_time.load(Relaxed),
        }
    }

    /// Stores the policy's marks.
    fn apply(&self, mark: &Mark) {
        if mark.passed_over {
            self.passed_over.store(true, Relaxed);
        }
        if mark.hold {
            self.held.store(true, Relaxed);
        }
        if mark.unhold {
            self.held.store(false, Relaxed);
        }
        if let Some(at) = mark.lapse_until {
            self.lapses.fetch_add(1, Relaxed);
            self.fair_at.store(at, Relaxed);
        }
    }
}

/// A counting semaphore.
///
/// The count is always the initial value plus the permits released minus the
/// permits acquired; it never exceeds `max`.
//
// (Not in the header, which cbindgen writes from the doc comment above.)
// Three cache lines: the state word alone (every fast path writes it), the
// read-only parameters (so that reading `max` in `release` never waits for
// the contended state line a second time: measured 150-180 ns against 133 ns
// per operation with 2 threads on 4 permits), and the slow paths' counters
// (so that parking threads invalidate neither of the others).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Semaphore {
    /// The state word (table above).
    state: AtomicU64,
    params: Params,
    slow: SlowCounters,
}

/// A semaphore's parameters, fixed at creation (see `Semaphore`).
#[repr(align(64))]
#[derive(Debug)]
struct Params {
    /// The largest count this semaphore accepts.
    max: u64,
    /// Serve blocked acquirers strictly in arrival order.
    fifo: bool,
    /// The default mode's fairness thresholds.
    fairness: Fairness,
}

/// The slow paths' counters (see `Semaphore::slow`). All but `waiters` are
/// read and written under the bucket lock.
#[repr(align(64))]
#[derive(Debug)]
struct SlowCounters {
    /// Threads queued in an acquire right now (a statistic, not a lock word).
    waiters: AtomicU64,
    /// Permits that woken, not yet running waiters were told they may find:
    /// added under the bucket lock when waking, subtracted by each woken
    /// thread when it runs. A walk wakes no more threads than the count
    /// minus this can satisfy.
    promised: AtomicU64,
    /// Default mode: the earliest time (ns on `deadline::nanos`) at which
    /// the next fairness handoff may happen.
    next_fair: AtomicU64,
    /// Default mode, while `HANDOFF` is set: when the hold lapses (ns).
    hold_until: AtomicU64,
    /// Queued threads sleeping with the hold's deadline.
    timekeepers: AtomicU64,
}

impl Semaphore {
    /// A semaphore holding `value` permits that refuses releases past `max`.
    /// With `fifo`, blocked acquirers are served strictly in arrival order.
    ///
    /// Returns `None` unless `value <= max <= COUNT_MAX`.
    pub fn new(value: u64, max: u64, fifo: bool) -> Option<Self> {
        Self::with_policy(value, max, fifo, Fairness::library())
    }

    /// As `new`, with the default mode's fairness thresholds given: after
    /// how long an overtaken waiter is starving, the least time between two
    /// fairness handoffs, and how long a hold lasts without a release
    /// (`Duration::MAX`: never). Tests and loom models use this to reach the
    /// fairness paths deterministically; it is not part of the C API.
    #[doc(hidden)]
    pub fn with_fairness(
        value: u64,
        max: u64,
        fifo: bool,
        fair_after: Duration,
        fair_interval: Duration,
        hold_for: Duration,
    ) -> Option<Self> {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self::with_policy(
            value,
            max,
            fifo,
            Fairness {
                fair_after: ns(fair_after),
                fair_interval: ns(fair_interval),
                hold_for: ns(hold_for),
            },
        )
    }

    fn with_policy(value: u64, max: u64, fifo: bool, fairness: Fairness) -> Option<Self> {
        if value > max || max > COUNT_MAX {
            return None;
        }
        Some(Semaphore {
            state: AtomicU64::new(value),
            params: Params {
                max,
                fifo,
                fairness,
            },
            slow: SlowCounters {
                waiters: AtomicU64::new(0),
                promised: AtomicU64::new(0),
                next_fair: AtomicU64::new(0),
                hold_until: AtomicU64::new(0),
                timekeepers: AtomicU64::new(0),
            },
        })
    }

    /// The free permits right now (a snapshot).
    pub fn value(&self) -> u64 {
        self.state.load(Relaxed) & COUNT_MASK
    }

    /// The largest count this semaphore accepts.
    pub fn max(&self) -> u64 {
        self.params.max
    }

    /// Whether blocked acquirers are served strictly in arrival order.
    pub fn is_fifo(&self) -> bool {
        self.params.fifo
    }

    /// Threads blocked in an acquire right now (a snapshot).
    pub fn waiters(&self) -> u64 {
        self.slow.waiters.load(Relaxed)
    }

    /// The parking key: this semaphore's address.
    #[inline]
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Takes `n` permits if they are free right now and no queued waiter has
    /// priority; never blocks.
    #[inline]
    pub fn try_acquire(&self, n: u64) -> Result<(), AcquireError> {
        debug_assert!(n >= 1);
        let mut s = self.state.load(Relaxed);
        loop {
            // One test for the common case: open, nobody has priority, and
            // enough permits.
            if s & (CLOSED | HANDOFF) != 0 || s & COUNT_MASK < n {
                return Err(if s & CLOSED != 0 {
                    AcquireError::Closed
                } else {
                    AcquireError::TimedOut
                });
            }
            // AcqRel, not just Acquire: a woken waiter subtracts its promise
            // before this; the release half makes that subtraction visible
            // to the next dispatcher, whose `publish` reads this word, so it
            // never counts a promise that was already used (which would
            // leave a fitting waiter asleep). Free on x86; loom found it.
            match self.state.compare_exchange_weak(s, s - n, AcqRel, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// Takes `n` permits, waiting as `wait` allows.
    ///
    /// `n` must be in `1..=max` (a larger request could never be met).
    #[inline]
    pub fn acquire(&self, n: u64, wait: Wait) -> Result<(), AcquireError> {
        match self.try_acquire(n) {
            Err(AcquireError::TimedOut) if wait != Wait::Never => self.acquire_slow(n, wait),
            result => result,
        }
    }

    /// The blocking part of `acquire`, for callers that already tried
    /// `try_acquire` and found it `TimedOut`.
    #[cold]
    pub fn acquire_slow(&self, n: u64, wait: Wait) -> Result<(), AcquireError> {
        debug_assert!(n <= self.params.max);
        let deadline = match wait {
            Wait::Never => return self.try_acquire(n),
            Wait::Until(at) => Some(at),
            Wait::Forever => None,
        };
        let record = WaitRecord {
            n,
            fair_at: AtomicU64::new(
                deadline::nanos(Instant::now()).saturating_add(self.params.fairness.fair_after),
            ),
            passed_over: AtomicBool::new(false),
            held: AtomicBool::new(false),
            lapses: AtomicU32::new(0),
            keeps_time: AtomicBool::new(false),
            woken: AtomicU8::new(WOKEN_NOT),
        };
        let mut may_spin = true;
        loop {
            let s = self.state.load(Relaxed);
            if s & CLOSED != 0 {
                return Err(AcquireError::Closed);
            }
            if may_take(s, n) {
                match self.try_acquire(n) {
                    Err(AcquireError::TimedOut) => continue,
                    result => return result,
                }
            }
            // Spin once per acquire, and only while nobody is queued: a
            // queued waiter would be woken for the next permit anyway.
            if s & PARKED == 0 && may_spin {
                may_spin = false;
                if self.spin_until_free(n) {
                    continue;
                }
            }

            // In the default mode, a thread held back by a hold sleeps no
            // longer than the hold may last, so that it can end a lapsed one.
            let hold_until = (!self.params.fifo && s & HANDOFF != 0)
                .then(|| self.slow.hold_until.load(Relaxed))
                .filter(|&at| at != u64::MAX);
            let park_deadline = match hold_until.and_then(deadline::instant) {
                Some(at) => Some(deadline.map_or(at, |d| d.min(at))),
                None => deadline,
            };
            let mut closed = false;
            let validate = || self.may_park(&record, hold_until, &mut closed);
            let timed_out = |_key: usize, last: bool| self.leave_on_timeout(&record, last);
            record.woken.store(WOKEN_NOT, Relaxed);
            let token = ParkToken((&record as *const WaitRecord).expose_provenance());
            // SAFETY: `park` needs (1) a key no other primitive uses: the key
            // is this semaphore's address, which nothing else parks on;
            // (2) `validate` and `timed_out` that neither panic nor call into
            // the parking lot: they only do atomic operations on `self` and
            // `record`; (3) a `before_sleep` that does not park or unwind: it
            // is empty. The token points to `record`, which outlives the call
            // (see `walk` for how it is read).
            let result = unsafe {
                parking::park(self.key(), validate, || {}, timed_out, token, park_deadline)
            };
            match result {
                ParkResult::Unparked(TOKEN_CLOSED) => {
                    self.slow.waiters.fetch_sub(1, Relaxed);
                    return Err(AcquireError::Closed);
                }
                ParkResult::Unparked(_) => {
                    self.slow.waiters.fetch_sub(1, Relaxed);
                    match record.woken.load(Acquire) {
                        WOKEN_HANDED => return Ok(()),
                        WOKEN_PROMISED => {
                            self.slow.promised.fetch_sub(n, Relaxed);
                            match self.try_acquire(n) {
                                Err(AcquireError::TimedOut) => {
                                    // A running thread was faster (or a hold
                                    // began). Pass the wake-up on if permits
                                    // are left for others, then queue again
                                    // (the deadline still holds).
                                    record.passed_over.store(true, Relaxed);
                                    if self.value() > 0 {
                                        // Releasing nothing cannot overflow.
                                        let _ = self.dispatch(Entry::Lost);
                                    }
                                }
                                result => return result,
                            }
                        }
                        // A timekeeper: look again, and sleep with the hold's
                        // (possibly new) deadline.
                        _ => {}
                    }
                }
                ParkResult::Invalid if closed => return Err(AcquireError::Closed),
                // The permits became free before we could queue, or the hold
                // changed: retry.
                ParkResult::Invalid => {}
                ParkResult::TimedOut => {
                    self.slow.waiters.fetch_sub(1, Relaxed);
                    let own = deadline.is_some_and(|d| Instant::now() >= d);
                    // Waiters behind us may fit now that we no longer hold
                    // them back (FIFO head, held waiter), or the hold we kept
                    // time for has lapsed (end it even with no permit free,
                    // or we would sleep with its past deadline again): walk.
                    if !own {
                        // Releasing nothing cannot overflow.
                        let _ = self.dispatch(Entry::HoldTimer);
                    } else if self.value() > 0 {
                        let _ = self.dispatch(Entry::Leave);
                    }
                    if own {
                        return Err(AcquireError::TimedOut);
                    }
                }
            }
        }
    }

    /// Spins for at most [`SPIN_FOR`] while nobody is queued, watching for
    /// `n` permits to come free (or a shutdown). Returns whether it is worth
    /// trying to take them; false means park.
    fn spin_until_free(&self, n: u64) -> bool {
        if SPIN_FOR.is_zero() {
            return false;
        }
        let start = Instant::now();
        loop {
            // Check the clock only every few dozen spins.
            for _ in 0..32 {
                let s = self.state.load(Relaxed);
                if s & CLOSED != 0 || may_take(s, n) {
                    return true;
                }
                if s & PARKED != 0 {
                    return false;
                }
                core::hint::spin_loop();
            }
            if start.elapsed() >= SPIN_FOR {
                return false;
            }
        }
    }

    /// `park`'s validate step, under the bucket lock: decides whether the
    /// thread should sleep, and if so marks the semaphore as having waiters.
    /// `hold_until` is the hold deadline the thread will sleep with, if any;
    /// a thread that would be held back longer than it plans to sleep (a
    /// hold began or was extended since it looked) does not sleep but looks
    /// again.
    fn may_park(&self, record: &WaitRecord, hold_until: Option<u64>, closed: &mut bool) -> bool {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                *closed = true;
                return false;
            }
            if may_take(s, record.n) {
                return false;
            }
            let held_back = !self.params.fifo && s & HANDOFF != 0;
            let hold_until_now = self.slow.hold_until.load(Relaxed);
            let endless = hold_until_now == u64::MAX;
            if held_back && !endless && hold_until.is_none_or(|at| at > hold_until_now) {
                return false;
            }
            let flags = if self.params.fifo {
                PARKED | HANDOFF
            } else {
                PARKED
            };
            if s & flags == flags {
                break;
            }
            // Relaxed: only the word's own modification order matters here
            // (see the module docs); the lock orders everything else.
            match self
                .state
                .compare_exchange_weak(s, s | flags, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if hold_until.is_some() {
            record.keeps_time.store(true, Relaxed);
            self.slow.timekeepers.fetch_add(1, Relaxed);
        }
        self.slow.waiters.fetch_add(1, Relaxed);
        true
    }

    /// Under the bucket lock, when `record` leaves the queue (woken or timed
    /// out): it no longer keeps time.
    fn dequeued(&self, record: &WaitRecord) {
        if record.keeps_time.swap(false, Relaxed) {
            self.slow.timekeepers.fetch_sub(1, Relaxed);
        }
    }

    /// `park`'s timed-out step, under the bucket lock: `record` left the
    /// queue (`last`: it was the last one). A held waiter that leaves ends
    /// its hold.
    fn leave_on_timeout(&self, record: &WaitRecord, last: bool) {
        self.dequeued(record);
        if last {
            self.set_queue_flags(false, false);
        } else if record.held.swap(false, Relaxed) {
            self.set_queue_flags(true, false);
        }
    }

    /// Returns `n` permits; hands them to blocked waiters that fit.
    ///
    /// `n` must be at least 1. All or nothing: on `Overflow` nothing changed.
    #[inline]
    pub fn release(&self, n: u64) -> Result<(), ReleaseError> {
        debug_assert!(n >= 1);
        // Past `COUNT_MAX` a request overflows anyway; clamping keeps the
        // sum below from wrapping (it stays under 2^62).
        let n = n.min(COUNT_MAX + 1);
        let s = self.state.load(Relaxed);
        // One test for the common case, nobody queued and room for `n`
        // (`PARKED` lies above every count, so a set `PARKED` fails it as an
        // overflow does), then one compare-and-swap.
        if (s & (PARKED | COUNT_MASK)) + n > self.params.max {
            return self.release_slow(n, s);
        }
        match self.state.compare_exchange_weak(s, s + n, Release, Relaxed) {
            Ok(_) => Ok(()),
            // Carry on from the value the CAS saw: loading the contended
            // word again would cost another cache miss.
            Err(now) => self.release_slow(n, now),
        }
    }

    /// The rest of `release`, from state `s`: threads are queued (dispatch
    /// to them), the count has no room for `n`, or the word changed under
    /// the fast path.
    #[cold]
    fn release_slow(&self, n: u64, mut s: u64) -> Result<(), ReleaseError> {
        loop {
            if s & PARKED != 0 {
                // Checks the room for `n` itself, under the bucket lock.
                return self.dispatch(Entry::Release(n));
            }
            // `count <= max` always holds, so this cannot underflow.
            if n > self.params.max - (s & COUNT_MASK) {
                return Err(ReleaseError::Overflow);
            }
            match self.state.compare_exchange_weak(s, s + n, Release, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// The slow path of `release` and of a waiter that leaves the queue:
    /// under the bucket lock, adds the released permits to the count, then
    /// walks the queued waiters as the policy says (see `policy.rs`).
    #[cold]
    fn dispatch(&self, entry: Entry) -> Result<(), ReleaseError> {
        let released = match entry {
            Entry::Release(n) => n,
            _ => 0,
        };
        let now = deadline::nanos(Instant::now());
        // Shared by the filter and the callback (both run under the lock).
        let result = Cell::new(Ok(()));
        let walk: RefCell<Option<Walk>> = RefCell::new(None);

        let filter = |token: ParkToken| {
            // SAFETY: every token on this key was made by `acquire_slow` from
            // a `WaitRecord` on the stack of the queued thread. That thread is
            // blocked inside `park` until it is dequeued, and dequeuing (by an
            // unparker or by its own timeout) needs the bucket lock that is
            // held while this filter runs, so the record is alive; its
            // mutable parts are atomics, written under this same lock (and by
            // the owner only while it is not queued).
            let record = unsafe { &*core::ptr::with_exposed_provenance::<WaitRecord>(token.0) };
            let mut walk = walk.borrow_mut();
            if walk.is_none() {
                // The first waiter: publish the release, then start.
                match self.publish(released) {
                    Ok(count) => *walk = Some(Walk::new(self.start(entry, now, count))),
                    Err(e) => {
                        result.set(Err(e));
                        return FilterOp::Stop;
                    }
                }
            }
            let Some(walk) = walk.as_mut() else {
                return FilterOp::Stop;
            };
            let waiter = record.view();
            let decision = loop {
                let decision = walk.decide(&waiter, self.value());
                // A hand-over fails only if running threads took permits
                // since the count was read: decide again on the new count.
                if decision.verdict != Verdict::Hand || self.take_for_waiter(waiter.n).is_ok() {
                    break decision;
                }
            };
            walk.commit(&waiter, &decision);
            record.apply(&decision.mark);
            self.carry_out(record, &decision)
        };
        let callback = |unparked: UnparkResult| {
            let walk = walk.borrow();
            match (result.get(), walk.as_ref()) {
                // The release overflowed at the first waiter: nothing changed.
                (Err(_), _) => {}
                // Nobody was queued after all: release into the count and
                // clear the queue flags (we hold the lock and the queue is
                // empty).
                (Ok(()), None) => result.set(self.publish_unqueued(released)),
                (Ok(()), Some(walk)) => {
                    // A held waiter never leaves the queue with its hold on:
                    // it is handed its permits (which ends the hold), or its
                    // hold lapses, or it times out and `leave_on_timeout`
                    // ends the hold under this lock. So the walk always meets
                    // it.
                    debug_assert!(!walk.lost_hold(), "a hold outlived its waiter");
                    let more = unparked.have_more_threads;
                    let finish = walk.finish(more);
                    self.set_queue_flags(more, finish.handoff);
                    self.slow.hold_until.store(finish.hold_until, Relaxed);
                    self.slow.next_fair.store(finish.next_fair, Relaxed);
                }
            }
            TOKEN_WOKEN
        };
        // SAFETY: `unpark_filter` needs (1) a key no other primitive uses: our
        // address; (2) `filter` and `callback` that neither panic nor call
        // into the parking lot: they only read wait records and do atomic
        // operations (`publish` and friends return errors instead of
        // panicking; the `RefCell` is borrowed by one of them at a time).
        unsafe { parking::unpark_filter(self.key(), filter, callback) };
        result.get()
    }

    /// The inputs of a walk, read under the bucket lock.
    fn start(&self, entry: Entry, now: u64, count: u64) -> Start {
        Start {
            fifo: self.params.fifo,
            fairness: self.params.fairness,
            entry,
            now,
            count,
            promised: self.slow.promised.load(Relaxed),
            handoff: self.state.load(Relaxed) & HANDOFF != 0,
            hold_until: self.slow.hold_until.load(Relaxed),
            next_fair: self.slow.next_fair.load(Relaxed),
            timekeepers: self.slow.timekeepers.load(Relaxed),
        }
    }

    /// Under the bucket lock: carries out a decision about `record` (its
    /// permits, if handed, are already taken) and tells the parking lot.
    fn carry_out(&self, record: &WaitRecord, decision: &Decision) -> FilterOp {
        let woken = match decision.verdict {
            Verdict::Skip => return FilterOp::Skip,
            Verdict::Stop => return FilterOp::Stop,
            Verdict::Hand => WOKEN_HANDED,
            Verdict::Wake => {
                self.slow.promised.fetch_add(record.n, Relaxed);
                WOKEN_PROMISED
            }
            Verdict::Watch => WOKEN_TIMEKEEPER,
        };
        self.dequeued(record);
        record.woken.store(woken, Release);
        FilterOp::Unpark
    }

    /// Under the bucket lock: adds `n` permits to the count, unless that
    /// would pass `max`. Returns the new count.
    fn publish(&self, n: u64) -> Result<u64, ReleaseError> {
        let mut s = self.state.load(Relaxed);
        loop {
            if n > self.params.max - (s & COUNT_MASK) {
                return Err(ReleaseError::Overflow);
            }
            match self.state.compare_exchange_weak(s, s + n, AcqRel, Relaxed) {
                Ok(_) => return Ok((s & COUNT_MASK) + n),
                Err(now) => s = now,
            }
        }
    }

    /// Under the bucket lock, with no thread queued: adds `n` permits and
    /// clears the queue flags in one step.
    fn publish_unqueued(&self, n: u64) -> Result<(), ReleaseError> {
        let mut s = self.state.load(Relaxed);
        loop {
            if n > self.params.max - (s & COUNT_MASK) {
                return Err(ReleaseError::Overflow);
            }
            let new = (s + n) & !(PARKED | HANDOFF);
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// Under the bucket lock: takes `n` permits on behalf of a queued waiter
    /// (ignoring `HANDOFF`, which exists for exactly this). On failure,
    /// returns the count that was left.
    fn take_for_waiter(&self, n: u64) -> Result<(), u64> {
        let mut s = self.state.load(Relaxed);
        loop {
            let count = s & COUNT_MASK;
            if count < n {
                return Err(count);
            }
            match self.state.compare_exchange_weak(s, s - n, AcqRel, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// Under the bucket lock: sets `PARKED` and `HANDOFF` to the given values.
    fn set_queue_flags(&self, parked: bool, handoff: bool) {
        let set = if parked { PARKED } else { 0 } | if handoff { HANDOFF } else { 0 };
        let mut s = self.state.load(Relaxed);
        loop {
            let new = (s & !(PARKED | HANDOFF)) | set;
            if new == s {
                return;
            }
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// Takes every permit an acquire could take right now; returns how many.
    /// Takes none while queued waiters have priority (`HANDOFF`).
    pub fn drain(&self) -> u64 {
        let mut s = self.state.load(Relaxed);
        loop {
            let count = s & COUNT_MASK;
            if count == 0 || s & HANDOFF != 0 {
                return 0;
            }
            // Acquire, as any acquire: the permits' releasers' writes become
            // visible to the drainer.
            match self
                .state
                .compare_exchange_weak(s, s - count, Acquire, Relaxed)
            {
                Ok(_) => return count,
                Err(now) => s = now,
            }
        }
    }

    /// Shuts the semaphore down: every blocked acquirer returns `Closed`, and
    /// so does every later acquire. Releases keep counting. Idempotent.
    pub fn shutdown(&self) {
        let filter = |token: ParkToken| {
            // SAFETY: as in `walk`: the token is a live record of a thread
            // queued on this key, read under the bucket lock.
            let record = unsafe { &*core::ptr::with_exposed_provenance::<WaitRecord>(token.0) };
            self.dequeued(record);
            FilterOp::Unpark
        };
        let callback = |_: UnparkResult| {
            let mut s = self.state.load(Relaxed);
            loop {
                let new = (s | CLOSED) & !(PARKED | HANDOFF);
                match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            TOKEN_CLOSED
        };
        // SAFETY: as in `walk`: our own address as the key, and callbacks
        // that only do atomic operations on `self` and live records.
        unsafe { parking::unpark_filter(self.key(), filter, callback) };
    }

    /// What is queued right now, read under the bucket lock without waking
    /// anyone: the input of the liveness oracle (`oracle.rs`).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let queue = RefCell::new(Vec::new());
        let filter = |token: ParkToken| {
            // SAFETY: as in `walk`: the token is a live record of a thread
            // queued on this key, read under the bucket lock.
            let record = unsafe { &*core::ptr::with_exposed_provenance::<WaitRecord>(token.0) };
            queue.borrow_mut().push(Waiting {
                waiter: record.view(),
            });
            FilterOp::Skip
        };
        let state = Cell::new(0);
        let counters = Cell::new((0, 0));
        let callback = |_: UnparkResult| {
            state.set(self.state.load(Relaxed));
            counters.set((
                self.slow.promised.load(Relaxed),
                self.slow.timekeepers.load(Relaxed),
            ));
            TOKEN_WOKEN
        };
        // SAFETY: as in `walk`; the filter skips every thread, so nobody is
        // woken and nothing changes.
        unsafe { parking::unpark_filter(self.key(), filter, callback) };
        let s = state.get();
        Snapshot {
            fifo: self.params.fifo,
            endless_holds: self.params.fairness.hold_for == u64::MAX,
            count: s & COUNT_MASK,
            parked: s & PARKED != 0,
            handoff: s & HANDOFF != 0,
            closed: s & CLOSED != 0,
            promised: counters.get().0,
            timekeepers: counters.get().1,
            queue: queue.into_inner(),
        }
    }

    /// Checks the liveness property of `oracle.rs` on one snapshot of the
    /// queue. Returns how many threads were queued in that snapshot, and
    /// what is wrong if the property fails. It is only meaningful when the
    /// semaphore was quiescent at that moment (no acquire or release in
    /// progress except threads asleep in the queue); a test knows that when
    /// the count returned is every thread it has not seen return. For tests.
    #[doc(hidden)]
    pub fn liveness(&self) -> (usize, Result<(), String>) {
        let snapshot = self.snapshot();
        (snapshot.queue.len(), crate::oracle::check(&snapshot))
    }

    /// How many threads are queued right now (read under the bucket lock).
    /// For tests.
    #[doc(hidden)]
    pub fn queued(&self) -> usize {
        self.snapshot().queue.len()
    }

    /// Loom models only: makes every timed waiter on this semaphore time out.
    #[cfg(loom)]
    pub fn fire_timeouts(&self) {
        crate::parking::fire_timeouts(self.key());
    }

    /// Whether `shutdown` was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Relaxed) & CLOSED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;
    use std::thread;

    fn sem(value: u64) -> Semaphore {
        Semaphore::new(value, COUNT_MAX, false).unwrap()
    }

    fn in_ms(ms: u64) -> Wait {
        Wait::Until(Instant::now() + Duration::from_millis(ms))
    }

    /// Waits (yielding) until `cond` holds; fails the test after 10 s.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
            thread::yield_now();
        }
    }

    #[test]
    fn state_parameters_and_slow_counters_have_a_cache_line_each() {
        // See `Semaphore`: the fast paths' write to `state` must not evict
        // `params`, which `release` reads between its load and its CAS.
        assert_eq!(core::mem::offset_of!(Semaphore, state), 0);
        assert_eq!(core::mem::offset_of!(Semaphore, params), 64);
        assert_eq!(core::mem::offset_of!(Semaphore, slow), 128);
        assert_eq!(core::mem::align_of::<Semaphore>(), 64);
    }

    #[test]
    fn new_validates() {
        assert!(Semaphore::new(0, 0, false).is_some());
        assert!(Semaphore::new(COUNT_MAX, COUNT_MAX, true).is_some());
        assert!(Semaphore::new(2, 1, false).is_none());
        assert!(Semaphore::new(0, COUNT_MAX + 1, false).is_none());
    }

    #[test]
    fn counts_like_python() {
        let s = sem(2);
        assert_eq!(s.try_acquire(1), Ok(()));
        assert_eq!(s.try_acquire(1), Ok(()));
        assert_eq!(s.try_acquire(1), Err(AcquireError::TimedOut));
        assert_eq!(s.value(), 0);
        assert_eq!(s.release(3), Ok(()));
        assert_eq!(s.value(), 3);
        assert_eq!(s.try_acquire(2), Ok(()));
        assert_eq!(s.try_acquire(2), Err(AcquireError::TimedOut));
        assert_eq!(s.value(), 1);
    }

    #[test]
    fn bounded_refuses_over_release_all_or_nothing() {
        let s = Semaphore::new(1, 3, false).unwrap();
        assert_eq!(s.release(3), Err(ReleaseError::Overflow));
        assert_eq!(s.value(), 1);
        assert_eq!(s.release(2), Ok(()));
        assert_eq!(s.release(1), Err(ReleaseError::Overflow));
        assert_eq!(s.release(u64::MAX), Err(ReleaseError::Overflow));
        assert_eq!(s.value(), 3);
    }

    #[test]
    fn count_max_is_reachable_but_not_passable() {
        let s = sem(COUNT_MAX - 1);
        assert_eq!(s.release(1), Ok(()));
        assert_eq!(s.value(), COUNT_MAX);
        assert_eq!(s.release(1), Err(ReleaseError::Overflow));
        assert_eq!(s.try_acquire(COUNT_MAX), Ok(()));
        assert_eq!(s.value(), 0);
        // The flag bits were never touched by the arithmetic.
        assert!(!s.is_closed());
        assert_eq!(s.release(1 << 40), Ok(()));
        assert_eq!(s.value(), 1 << 40);
    }

    #[test]
    fn timed_acquire_times_out_after_the_deadline() {
        let s = sem(0);
        let start = Instant::now();
        assert_eq!(s.acquire(1, in_ms(30)), Err(AcquireError::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(s.waiters(), 0);
        assert_eq!(s.value(), 0);
        assert_eq!(s.acquire(1, Wait::Never), Err(AcquireError::TimedOut));
    }

    #[test]
    fn release_hands_the_permit_to_a_blocked_thread() {
        let s = Arc::new(sem(0));
        let t = {
            let s = s.clone();
            thread::spawn(move || s.acquire(1, Wait::Forever))
        };
        eventually("waiter queued", || s.waiters() == 1);
        assert_eq!(s.release(1), Ok(()));
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        assert_eq!(s.waiters(), 0);
    }

    #[test]
    fn release_wakes_exactly_the_waiters_that_fit() {
        // Waiters for 3, 1, 1 (queued in that order); releasing 2 serves the
        // two 1-permit waiters and leaves the 3-permit one queued.
        let s = Arc::new(sem(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (i, n) in [3u64, 1, 1].into_iter().enumerate() {
            let (s2, done2) = (s.clone(), done.clone());
            threads.push(thread::spawn(move || {
                let r = s2.acquire(n, Wait::Forever);
                // SeqCst, so that seeing `done` also shows what the waiter
                // did to the semaphore before (its `waiters` decrement).
                done2.fetch_add(1, SeqCst);
                r
            }));
            eventually("queued", || s.waiters() == i as u64 + 1);
        }
        assert_eq!(s.release(2), Ok(()));
        eventually("two served", || done.load(SeqCst) == 2);
        assert_eq!(s.value(), 0);
        assert_eq!(s.waiters(), 1);
        assert_eq!(s.release(3), Ok(()));
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0);
    }

    #[test]
    fn fifo_head_holds_back_later_waiters_until_it_leaves() {
        let s = Arc::new(Semaphore::new(0, 10, true).unwrap());
        let big = {
            let s = s.clone();
            thread::spawn(move || s.acquire(3, in_ms(100)))
        };
        eventually("big queued", || s.waiters() == 1);
        let small = {
            let s = s.clone();
            thread::spawn(move || s.acquire(1, Wait::Forever))
        };
        eventually("small queued", || s.waiters() == 2);
        assert_eq!(s.release(2), Ok(()));
        // The head needs 3: nobody is served and nobody may barge.
        assert_eq!(s.try_acquire(1), Err(AcquireError::TimedOut));
        assert_eq!(s.value(), 2);
        // The head times out; the waiter behind it fits and is served.
        assert_eq!(big.join().unwrap(), Err(AcquireError::TimedOut));
        assert_eq!(small.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 1);
        assert_eq!(s.try_acquire(1), Ok(()));
    }

    #[test]
    fn shutdown_wakes_waiters_and_refuses_acquires() {
        let s = Arc::new(sem(0));
        let threads: Vec<_> = (0..3u64)
            .map(|n| {
                let s = s.clone();
                thread::spawn(move || s.acquire(n + 1, Wait::Forever))
            })
            .collect();
        eventually("all queued", || s.waiters() == 3);
        s.shutdown();
        for t in threads {
            assert_eq!(t.join().unwrap(), Err(AcquireError::Closed));
        }
        assert_eq!(s.release(2), Ok(()));
        assert_eq!(s.value(), 2);
        assert_eq!(s.try_acquire(1), Err(AcquireError::Closed));
        assert_eq!(s.acquire(1, Wait::Forever), Err(AcquireError::Closed));
        s.shutdown();
        assert_eq!(s.drain(), 2);
    }

    #[test]
    fn held_waiter_timing_out_with_no_permit_free_ends_its_hold() {
        // White box (no public path empties the count during a hold without
        // real-time lapses): the held waiter leaves while the count is 0, so
        // no walk follows; its leaving alone must clear HANDOFF, or running
        // threads stay kept out for nobody.
        let s = Arc::new(
            Semaphore::with_fairness(
                0,
                COUNT_MAX,
                false,
                Duration::ZERO,
                Duration::ZERO,
                Duration::MAX,
            )
            .unwrap(),
        );
        let w1 = {
            let s = s.clone();
            thread::spawn(move || s.acquire(3, in_ms(200)))
        };
        eventually("W1 queued", || s.queued() == 1);
        assert_eq!(s.release(1), Ok(())); // W1 passed over.
        let w2 = {
            let s = s.clone();
            thread::spawn(move || s.acquire(5, Wait::Forever))
        };
        eventually("W2 queued", || s.queued() == 2);
        assert_eq!(s.release(1), Ok(())); // A hold for W1.
        assert_eq!(s.take_for_waiter(2), Ok(()));
        assert_eq!(w1.join().unwrap(), Err(AcquireError::TimedOut));
        assert_eq!(s.liveness(), (1, Ok(())));
        assert_eq!(s.release(5), Ok(()));
        assert_eq!(w2.join().unwrap(), Ok(()));
    }

    #[test]
    fn contended_permits_are_conserved() {
        let s = Arc::new(Semaphore::new(3, 3, false).unwrap());
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                thread::spawn(move || {
                    for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
                        s.acquire(1, Wait::Forever).unwrap();
                        assert!(inside.fetch_add(1, Relaxed) < 3);
                        inside.fetch_sub(1, Relaxed);
                        s.release(1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 3);
        assert_eq!(s.waiters(), 0);
    }
}
