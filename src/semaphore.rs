//! The semaphore's state machine: one atomic word, fast paths on it, and
//! slow paths around a wait queue of its own. Bounded, FIFO and multi-permit
//! semaphores are all this one machine with different parameters (`max`,
//! `fifo`, `n`); which queued waiters a release serves is decided by the
//! pure policy in `policy.rs`; blocked threads sleep in `parking.rs`.
//!
//! # The state word
//!
//! | bits   | name      | meaning                                                        |
//! |--------|-----------|----------------------------------------------------------------|
//! | 0..=59 | count     | free permits, `0..=max` (`max <= COUNT_MAX = 2^60 - 1`)        |
//! | 60     | `PARKED`  | threads are queued                                             |
//! | 61     | `HANDOFF` | queued waiters come first: no acquire may take from the count  |
//! | 62     | `CLOSED`  | shut down: every acquire fails with `Closed`                   |
//! | 63     | `LOCKED`  | a thread holds the queue lock                                  |
//!
//! Beside the word (on their own cache line): the queue (`head`, `tail`: an
//! intrusive list of records on the waiters' stacks); `promised`, the permits that woken threads were told they
//! may find (a hint for how many threads to wake, never a reservation);
//! `hold_until` and `next_fair`, the times of the default mode's fairness;
//! `timekeepers`, the queued threads that sleep with the current hold's
//! deadline; `waiters`, how many records are queued.
//!
//! # Rules
//!
//! - The queue, its records and the slow counters change only under the
//!   queue lock (`LOCKED`). Critical sections are short and never sleep.
//! - `PARKED` is set by a thread about to queue itself and cleared when the
//!   queue becomes empty, both under the lock: under the lock, `PARKED` is
//!   set exactly when threads are queued.
//! - `HANDOFF` is only changed under the lock: in FIFO mode it is set
//!   whenever threads are queued; in the default mode while a hold is in
//!   force (see `policy.rs`).
//! - Acquire is one compare-and-swap that subtracts from the count when the
//!   count is large enough and `HANDOFF` is clear (the fast path). Otherwise,
//!   while nobody is queued and the machine has a CPU to spare (`load.rs`),
//!   it spins for at most [`SPIN_FOR`]: on a semaphore made with permits it
//!   leaves the word alone for [`SPIN_FIRST_LOOK`], then it watches it,
//!   pausing twice as long between reads each time up to [`SPIN_PAUSE_MAX`]
//!   `pause` instructions (a handoff between running threads then costs a
//!   cache-line transfer, not a sleep); then it takes the lock, queues its
//!   record and sleeps on the record's parker.
//! - While `PARKED` is clear, `release` is one compare-and-swap that adds to
//!   the count (the fast path). While it is set, the same compare-and-swap
//!   that adds the permits also takes the lock, if it is free; then the
//!   release walks the queue in arrival order with a `policy::Walk`, which
//!   decides for each waiter: *hand* it its permits (take them from the
//!   count on its behalf, so it owns them), *wake* it to compete for permits
//!   promised to it (if it loses, it passes the wake-up on and queues
//!   again), wake it as a *timekeeper* of a hold, skip it, or stop. If the
//!   lock is held, the release only adds its permits (a *deposit*), and the
//!   holder's `unlock` sees the budget (free permits not promised to woken
//!   threads) above what the queue was walked for and walks again before it
//!   lets go. So a release never waits for anyone: that is
//!   what makes it async-signal-safe, even in a handler that interrupted the
//!   lock holder on its own thread.
//! - Waiters are woken after the lock is released, by their parker: a store
//!   and a wake by address, the last access to their record.
//! - Every way a waiter leaves the queue that may leave others unserved walks
//!   the queue again: a timeout (`Entry::Leave`), a woken waiter that lost
//!   its permits (`Entry::Lost`), a timekeeper whose hold deadline passed
//!   (`Entry::HoldTimer`). A waiter that times out leaves under the lock,
//!   and only if no walk dequeued it first (then that walk's wake-up is
//!   on the way and it takes it), so it never swallows a permit.
//! - After `fork()`, the child handler of `fork.rs` resets every semaphore
//!   made through the C API: no queue, no lock, no `PARKED`/`HANDOFF`.
//! - A release never touches the semaphore after its permits can be taken by
//!   a thread that may then free it: the fast path's (or the deposit's)
//!   compare-and-swap is its last access, and the slow path makes all its
//!   changes under the lock while waiters are still queued or not yet woken
//!   (those waiters keep the semaphore alive: freeing it while threads are
//!   blocked on it is undefined), waking the chosen threads only after the
//!   lock is released.
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
//! - taking the lock is `Acquire` and releasing it `Release`, so each
//!   critical section sees the queue as the last one left it (the queue's
//!   links and the slow counters are then `Relaxed`);
//! - the CASes made under the lock (`take_for_waiter`, `set_queue_flags`)
//!   are `AcqRel`, and a parker's wake value is stored with `Release` and
//!   read with `Acquire`: a waiter that is handed permits sees what their
//!   releaser did;
//! - `promised` changes by RMWs (`Relaxed`) and a walk reads it with an
//!   `AcqRel` RMW, so it sees the latest value: a woken waiter's decrement
//!   comes before its `AcqRel` acquire CAS, which the walk's reads of the
//!   word follow (see `try_acquire` and `start`);
//! - `waiters` changes only under the lock, and is read anywhere as a
//!   snapshot (`Relaxed`).

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
// Under `--cfg loom` the state machine's atomics are loom's, so that the model
// checker sees (and reorders) every access to them.
#[cfg(not(loom))]
use core::sync::atomic::AtomicU64;
// What only changes under the queue lock uses core's atomics even under
// loom: the lock (a CAS on the loom-tracked state word) orders it, and loom
// then explores the lock's interleavings instead of every load inside it.
use core::sync::atomic::{
    AtomicBool as LockedBool, AtomicPtr as LockedPtr, AtomicU32 as LockedU32,
    AtomicU64 as LockedU64,
};
#[cfg(loom)]
use loom::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use core::ffi::c_int;

use crate::completion::Completion;
use crate::deadline::{self, Wait};
#[cfg(unix)]
use crate::fork;
use crate::oracle::{Snapshot, Waiting};
use crate::parking::{Clock, Parker};
use crate::policy::{Entry, Fairness, Mark, Start, Verdict, Waiter, Walk};
use crate::status::{AcquireError, ReleaseError, SEM_CANCELLED, SEM_ECLOSED, SEM_OK, SEM_TIMEDOUT};

/// The size of an async waiter's queue record (tests: see
/// `Semaphore::acquire_async_in`).
#[doc(hidden)]
pub const RECORD_SIZE: usize = core::mem::size_of::<WaitRecord>();

/// The largest count and maximum a semaphore can hold.
pub const COUNT_MAX: u64 = crate::status::SEM_COUNT_MAX as u64;
const COUNT_MASK: u64 = COUNT_MAX;
const PARKED: u64 = 1 << 60;
pub(crate) const HANDOFF: u64 = 1 << 61;
pub(crate) const CLOSED: u64 = 1 << 62;
const LOCKED: u64 = 1 << 63;

/// The layout of `Semaphore` as process-shared memory holds it (`shm.rs`
/// stores it beside the semaphore and refuses another): the sizes and
/// offsets that other builds of this library could place differently, the
/// pointer width and the byte order, folded into one number. (`Semaphore`
/// and its parts are `repr(C)`, so the same source lays them out the same.)
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) const SHARED_LAYOUT: u64 = {
    use core::mem::{offset_of, size_of};
    let parts = [
        1, // the shared state word's meaning (`shared.rs`): bump to change it
        size_of::<Semaphore>(),
        offset_of!(Semaphore, params),
        offset_of!(Semaphore, slow),
        offset_of!(Params, max),
        offset_of!(Params, fifo),
        offset_of!(Params, shared),
        offset_of!(Params, fairness),
        size_of::<usize>(),
        cfg!(target_endian = "big") as usize,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        h = (h ^ parts[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
};

/// Whether, in state `s`, an acquirer may take `n` permits itself: enough
/// are free and no queued waiter has priority. (`CLOSED` is checked apart,
/// because it ends the acquire instead of making it wait.)
#[inline]
fn may_take(s: u64, n: u64) -> bool {
    s & HANDOFF == 0 && s & COUNT_MASK >= n
}

/// How long an acquirer spins, while nobody is queued (and the machine is
/// not loaded, see `load.rs`), before it parks.
#[cfg(not(loom))]
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(4);
/// Loom models do not spin.
#[cfg(loom)]
pub(crate) const SPIN_FOR: Duration = Duration::ZERO;
/// How long a spinner on a semaphore made with permits (`Params::hold_off`)
/// waits before it first reads the state word. With 2 threads on 1 permit
/// and a critical section of 0-25 ns, a spinner that reads at once takes the
/// permit on nearly every release, and every operation then moves the
/// word's cache line between cores (1.3-1.8x slower than a mutex+condvar
/// semaphore, whose waiter sleeps while the other thread runs on alone);
/// waiting first lets the holder run a few operations on a line it owns
/// (`scripts/bench --sweep`, README). The cost, up to this much latency per
/// handoff, doubled the mean ping-pong round trip between two semaphores
/// made empty, which is why those look at once.
#[cfg(not(loom))]
const SPIN_FIRST_LOOK: Duration = Duration::from_nanos(300);
#[cfg(loom)]
const SPIN_FIRST_LOOK: Duration = Duration::ZERO;
/// A spinner reads the state word, then pauses for twice as many `pause`
/// instructions as last time, up to this many: fewer reads of a line the
/// permit holder is about to write.
const SPIN_PAUSE_MAX: u32 = 8;

/// Wake values (a `Parker`'s word): woken with a promise, compete for the
/// permits.
const WOKEN_PROMISED: u32 = 1;
/// Handed the permits: they are the waiter's.
const WOKEN_HANDED: u32 = 2;
/// Woken as a hold's timekeeper: nothing for it; wait again.
const WOKEN_TIMEKEEPER: u32 = 3;
/// Woken by `shutdown`.
const WOKEN_CLOSED: u32 = 4;
/// Async waiters only: the deadline passed (see `expire`).
const WOKEN_TIMEDOUT: u32 = 5;
/// Async waiters only: withdrawn by `cancel`.
const WOKEN_CANCELLED: u32 = 6;

/// The outcome an async waiter dequeued with wake value `value` is told.
fn async_status(value: u32) -> c_int {
    match value {
        WOKEN_HANDED => SEM_OK,
        WOKEN_CLOSED => SEM_ECLOSED,
        WOKEN_TIMEDOUT => SEM_TIMEDOUT,
        _ => SEM_CANCELLED,
    }
}

/// What an async acquire did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The permits were taken at once: no completion will come.
    Acquired,
    /// Queued: exactly one completion will be delivered.
    Pending,
}

/// What a queued waiter asks for, linked into the semaphore's queue: on a
/// blocked thread's stack, or in an async waiter's ticket (see
/// `completion.rs`). Every field but `n`, `parker` and `asynchronous` is
/// written only under the queue lock (or by its owner while it is not
/// queued).
pub(crate) struct WaitRecord {
    /// Permits wanted, `1..=max`.
    n: u64,
    /// Where the owner sleeps.
    parker: Parker,
    /// The queue's links.
    prev: LockedPtr<WaitRecord>,
    next: LockedPtr<WaitRecord>,
    /// It is in the queue (cleared by whoever unlinks it).
    queued: LockedBool,
    /// The wake value a walk chose, stored into the parker after the lock is
    /// released.
    wake_with: LockedU32,
    /// When (ns on `deadline::nanos`) it may become starving once overtaken:
    /// first queue time plus `fair_after`, pushed back when its hold lapses.
    fair_at: LockedU64,
    /// Set once this waiter was overtaken: a release found the permits too
    /// few for it, or it was woken and a running thread took them first.
    passed_over: LockedBool,
    /// It is the held waiter of the default mode's current hold.
    held: LockedBool,
    /// How many of its holds lapsed.
    lapses: LockedU32,
    /// It sleeps with the current hold's deadline (counted in
    /// `SlowCounters::timekeepers`).
    keeps_time: LockedBool,
    /// An async waiter's deadline and completion (`None`: a thread, which
    /// sleeps on `parker`).
    asynchronous: Option<AsyncPart>,
}

/// The part of a record only async waiters have.
struct AsyncPart {
    /// When it times out (ns on `deadline::nanos`; `u64::MAX`: never).
    deadline: u64,
    completion: Completion,
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
            handoff_only: self.asynchronous.is_some(),
        }
    }

    /// A record for `n` permits, not queued, first queued now.
    fn new(n: u64, fair_after: u64, asynchronous: Option<AsyncPart>) -> Self {
        WaitRecord {
            n,
            parker: Parker::new(),
            prev: LockedPtr::new(core::ptr::null_mut()),
            next: LockedPtr::new(core::ptr::null_mut()),
            queued: LockedBool::new(false),
            wake_with: LockedU32::new(0),
            fair_at: LockedU64::new(deadline::nanos(Instant::now()).saturating_add(fair_after)),
            passed_over: LockedBool::new(false),
            held: LockedBool::new(false),
            lapses: LockedU32::new(0),
            keeps_time: LockedBool::new(false),
            asynchronous,
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

/// Waiters a walk dequeued, to be woken (threads) or completed (async
/// waiters) once the queue lock is released, in the order they were
/// dequeued (arrival order within a walk); linked through their records'
/// `next`.
pub(crate) struct Wakeups {
    head: *const WaitRecord,
    tail: *const WaitRecord,
}

impl Wakeups {
    pub(crate) fn new() -> Self {
        Wakeups {
            head: core::ptr::null(),
            tail: core::ptr::null(),
        }
    }

    /// Under the queue lock: `record` (already unlinked) is to be woken with
    /// `value`, after those pushed before it.
    fn push(&mut self, record: &WaitRecord, value: u32) {
        record.wake_with.store(value, Relaxed);
        record.next.store(core::ptr::null_mut(), Relaxed);
        match self.tail.is_null() {
            true => self.head = record,
            // SAFETY: records on the list are live until woken.
            false => unsafe {
                (*self.tail)
                    .next
                    .store(core::ptr::from_ref(record).cast_mut(), Relaxed)
            },
        }
        self.tail = record;
    }

    /// Takes `record` off the list if it is on it; returns whether it was.
    fn remove(&mut self, record: &WaitRecord) -> bool {
        let mut link: *const WaitRecord = core::ptr::null();
        let mut p = self.head;
        while !p.is_null() {
            // SAFETY: records on the list are live until woken (below).
            let next = unsafe { (*p).next.load(Relaxed) };
            if core::ptr::eq(p, record) {
                match link.is_null() {
                    true => self.head = next,
                    // SAFETY: as above.
                    false => unsafe { (*link).next.store(next, Relaxed) },
                }
                if core::ptr::eq(self.tail, record) {
                    self.tail = link;
                }
                return true;
            }
            link = p;
            p = next;
        }
        false
    }

    /// After the queue lock is released: wakes them all, or delivers their
    /// completions. (Dropping the list does it too, so that no path that
    /// unlocked can lose a wake-up that `unlock` collected.)
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        let mut p = core::mem::replace(&mut self.head, core::ptr::null());
        self.tail = core::ptr::null();
        while !p.is_null() {
            // SAFETY: `p` is a record that a walk unlinked; a thread owner
            // cannot return before its parker holds a non-zero value (a
            // timed-out owner that finds itself unlinked waits for that
            // value), and an async owner's ticket is live until its
            // completion is delivered, so the record is live here; `next`,
            // the value and the completion's address are read before the
            // wake or the delivery, which is the last access.
            let (next, value, completion) = unsafe {
                let record = &*p;
                (
                    record.next.load(Relaxed),
                    record.wake_with.load(Relaxed),
                    record
                        .asynchronous
                        .as_ref()
                        .map(|a| core::ptr::from_ref(&a.completion)),
                )
            };
            match completion {
                // SAFETY: dequeued once (by the walk that pushed it here),
                // delivered once (now), with no lock held.
                Some(c) => unsafe { deliver(c, value) },
                // SAFETY: as above: live until the store inside `wake`.
                None => unsafe { Parker::wake(&(*p).parker, value) },
            }
            p = next;
        }
    }
}

/// Delivers an async waiter's completion (out of line: threads' wake-ups
/// stay short).
///
/// # Safety
/// As `Completion::deliver`.
#[cold]
#[inline(never)]
unsafe fn deliver(completion: *const Completion, value: u32) {
    // SAFETY: by this function's contract.
    unsafe { Completion::deliver(completion, async_status(value)) }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if !self.head.is_null() {
            self.wake_all();
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
// per operation with 2 threads on 4 permits), and the slow paths' data
// (so that parking threads invalidate neither of the others).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Semaphore {
    /// The state word (table above; a process-shared semaphore's in
    /// `shared.rs`).
    pub(crate) state: AtomicU64,
    pub(crate) params: Params,
    slow: SlowCounters,
}

/// A semaphore's parameters, fixed at creation (see `Semaphore`), and its
/// links in the registry of `fork.rs`, written only when a neighbour in it is
/// created or freed.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Params {
    /// The largest count this semaphore accepts.
    pub(crate) max: u64,
    /// Serve blocked acquirers strictly in arrival order.
    fifo: bool,
    /// Written `true` in a process-shared semaphore's memory, for the check
    /// of `is_shared_image` when another process opens it. Decisions never
    /// read it (other processes can write it): they ask `is_shared`. (Nor
    /// does any path of a shared semaphore read `fifo` or the slow line's
    /// `bool`s, which a peer could set to a byte that is no `bool`.)
    pub(crate) shared: bool,
    /// Nonzero if the semaphore was made in this process with permits (a
    /// pool or a lock, whose waiters compete with threads that release and
    /// soon take permits again): its spinners wait [`SPIN_FIRST_LOOK`]
    /// before their first read of the state word. Zero for one made empty
    /// (a signal, whose waiter waits for another thread's release): its
    /// spinners look at once. Process-shared semaphores keep 0 (not measured across
    /// processes; `SHARED_LAYOUT` leaves it out: a peer that writes it can
    /// only add or remove that wait). A byte, not a `bool`.
    hold_off: u8,
    /// The default mode's fairness thresholds.
    fairness: Fairness,
    /// Links in the registry of semaphores made through the C API, which
    /// the `fork()` child handler resets (`fork.rs`). Changed only under
    /// the registry's lock, when a neighbour is created or freed.
    #[cfg(unix)]
    links: fork::Links,
}

/// The slow paths' data (see `Semaphore::slow`). Read and written under the
/// queue lock (`waiters` and `promised` are also read, and `promised`
/// written, outside it).
#[repr(C, align(64))]
#[derive(Debug)]
struct SlowCounters {
    /// The wait queue, in arrival order (intrusive: records on the waiters'
    /// stacks).
    head: LockedPtr<WaitRecord>,
    tail: LockedPtr<WaitRecord>,
    /// Records in the queue: threads blocked in an acquire that no walk has
    /// dequeued yet. (Under loom a tracked atomic, so that a model polling
    /// `queued` lets the scheduler run the threads it waits for.)
    waiters: AtomicU64,
    /// Permits that woken, not yet running waiters were told they may find:
    /// added under the queue lock when waking, subtracted by each woken
    /// thread when it runs. A walk wakes no more threads than the count
    /// minus this can satisfy.
    promised: AtomicU64,
    /// Default mode: the earliest time (ns on `deadline::nanos`) at which
    /// the next fairness handoff may happen.
    next_fair: LockedU64,
    /// Default mode, while `HANDOFF` is set: when the hold lapses (ns).
    hold_until: LockedU64,
    /// Queued threads sleeping with the hold's deadline.
    timekeepers: LockedU64,
    /// Whether the policy wants `HANDOFF` set (FIFO with waiters queued, or
    /// a hold in force). The bit itself may also have been set by a deposit
    /// (see `release_slow`); this says which.
    handoff_wanted: LockedBool,
    /// A lower bound of when the timer thread must `expire` this semaphore
    /// (ns on `deadline::nanos`; `u64::MAX`: never): the earliest async
    /// deadline, or a hold's that no queued thread keeps the time of.
    /// Lowered under the lock; read by the timer without it.
    timer_at: LockedU64,
    /// Registered with the timer thread (`timer.rs`, under its lock).
    timer_registered: LockedBool,
    /// The loom models' clock (empty otherwise).
    clock: Clock,
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

    /// Makes a semaphore for memory shared between processes (see
    /// `shared.rs`; `recover.rs` if `recover`) in place at `p`: the default
    /// mode only. Writes field by
    /// field into memory that is all zeros (a new file's or anonymous
    /// pages), so that no padding byte of this process's stack reaches a
    /// file that other users may read; fields whose value is zero are left
    /// as they are. Returns false, writing nothing, unless `value <= max <=
    /// SHARED_COUNT_MAX`.
    ///
    /// # Safety
    /// `p` must be valid for writes of a `Semaphore`, aligned, all zeros,
    /// and seen by no other thread until this returns.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub(crate) unsafe fn init_shared(
        p: *mut Semaphore,
        value: u64,
        max: u64,
        recover: bool,
    ) -> bool {
        if value > max || max > crate::shared::SHARED_COUNT_MAX {
            return false;
        }
        // Fix the clock's origin now, as `with_policy` does.
        let _ = deadline::nanos(Instant::now());
        // SAFETY: `p` is valid, aligned and unshared by the contract; each
        // write is to one field, through a raw pointer (no reference to the
        // not yet valid whole). All-zero bytes are a valid value of every
        // field left alone (atomics, null pointers, `false`, the empty
        // `Clock`), so once these writes are done the whole is valid.
        unsafe {
            // A `SEM_RECOVER` word keeps `PARKED` and `HANDOFF` set, so
            // that every operation takes the slow paths (`recover.rs`).
            let flags = if recover { PARKED | HANDOFF } else { 0 };
            core::ptr::addr_of_mut!((*p).state).write(AtomicU64::new(value | flags));
            core::ptr::addr_of_mut!((*p).params.max).write(max);
            core::ptr::addr_of_mut!((*p).params.shared).write(true);
            core::ptr::addr_of_mut!((*p).params.fairness).write(Fairness::library());
            core::ptr::addr_of_mut!((*p).slow.timer_at).write(LockedU64::new(u64::MAX));
        }
        true
    }

    /// Whether the memory at `p`, mapped from a file another process
    /// wrote, holds what `new_shared` makes: its `bool` bytes are read as
    /// bytes first (any other value would make a reference to it undefined
    /// behaviour), then the maximum.
    ///
    /// # Safety
    /// `p` must be valid for reads of a `Semaphore` and aligned.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub(crate) unsafe fn is_shared_image(p: *const Semaphore) -> bool {
        // SAFETY: `p` is valid and aligned by this function's contract;
        // `bool` fields are read as the bytes they are, and `max` is a plain
        // integer, valid for any bytes (written once, by the creator).
        unsafe {
            let fifo = core::ptr::addr_of!((*p).params.fifo).cast::<u8>().read();
            let shared = core::ptr::addr_of!((*p).params.shared).cast::<u8>().read();
            let max = core::ptr::addr_of!((*p).params.max).read();
            fifo == 0 && shared == 1 && max <= crate::shared::SHARED_COUNT_MAX
        }
    }

    fn with_policy(value: u64, max: u64, fifo: bool, fairness: Fairness) -> Option<Self> {
        if value > max || max > COUNT_MAX {
            return None;
        }
        // Fix the clock's origin now: a release in a signal handler must not
        // be the first to initialize it.
        let _ = deadline::nanos(Instant::now());
        Some(Semaphore {
            state: AtomicU64::new(value),
            params: Params {
                max,
                fifo,
                shared: false,
                hold_off: (value > 0) as u8,
                fairness,
                #[cfg(unix)]
                links: fork::Links::default(),
            },
            slow: SlowCounters {
                head: LockedPtr::new(core::ptr::null_mut()),
                tail: LockedPtr::new(core::ptr::null_mut()),
                waiters: AtomicU64::new(0),
                promised: AtomicU64::new(0),
                next_fair: LockedU64::new(0),
                hold_until: LockedU64::new(0),
                timekeepers: LockedU64::new(0),
                handoff_wanted: LockedBool::new(false),
                timer_at: LockedU64::new(u64::MAX),
                timer_registered: LockedBool::new(false),
                clock: Clock::default(),
            },
        })
    }

    /// The free permits right now (a snapshot).
    pub fn value(&self) -> u64 {
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.shared_value();
        }
        self.state.load(Relaxed) & COUNT_MASK
    }

    /// Whether it lives in memory shared between processes (`shared.rs`):
    /// asked of this process's table of shared mappings (`shm.rs`), never of
    /// the shared memory, which other processes can write.
    pub fn is_shared(&self) -> bool {
        #[cfg(all(target_os = "linux", not(loom)))]
        return crate::shm::is_mapped(self);
        #[cfg(not(all(target_os = "linux", not(loom))))]
        return false;
    }

    /// The largest count this semaphore accepts (for a shared one, as its
    /// memory says, within `SHARED_COUNT_MAX`).
    pub fn max(&self) -> u64 {
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.params.max.min(crate::shared::SHARED_COUNT_MAX);
        }
        self.params.max
    }

    /// Whether `max()` is 0 (no acquire can ever succeed), without asking
    /// whether the semaphore is shared: `max()` clamps a shared one's maximum
    /// to `SHARED_COUNT_MAX`, which is 0 only when the maximum is.
    #[inline]
    pub(crate) fn max_is_zero(&self) -> bool {
        self.params.max == 0
    }

    /// Whether blocked acquirers are served strictly in arrival order.
    pub fn is_fifo(&self) -> bool {
        self.params.fifo
    }

    /// Waiters queued right now (a snapshot): threads blocked in an acquire
    /// and pending async acquires.
    pub fn waiters(&self) -> u64 {
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.shared_waiters();
        }
        self.slow.waiters.load(Relaxed)
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
                // A shared semaphore's `HANDOFF` says only that threads
                // sleep; its count then needs reading apart.
                #[cfg(all(target_os = "linux", not(loom)))]
                if s & HANDOFF != 0 && self.is_shared() {
                    return self.shared_try(n);
                }
                return Err(if s & CLOSED != 0 {
                    AcquireError::Closed
                } else {
                    AcquireError::TimedOut
                });
            }
            // AcqRel, not just Acquire: a woken waiter subtracts its promise
            // before this; the release half makes that subtraction visible
            // to the next walker, which reads this word, so it never counts a
            // promise that was already used (which would leave a fitting
            // waiter asleep). Free on x86; loom found it.
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
        // (A shared semaphore's `max` is in memory that peers can write.)
        debug_assert!(n <= self.params.max || self.is_shared());
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.shared_acquire(n, wait);
        }
        let deadline = match wait {
            Wait::Never => return self.try_acquire(n),
            Wait::Until(at) => Some(at),
            Wait::Forever => None,
        };
        let record = WaitRecord::new(n, self.params.fairness.fair_after, None);
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
            let park_deadline = match self.enqueue(&record, deadline)? {
                Queued::Sleep(at) => at,
                // The permits came free: try again. (`Handed` is for async
                // records only.)
                Queued::Not | Queued::Handed => continue,
            };
            match self.sleep(&record, deadline, park_deadline) {
                Slept::Woken(WOKEN_HANDED) => return Ok(()),
                Slept::Woken(WOKEN_CLOSED) => return Err(AcquireError::Closed),
                Slept::Woken(WOKEN_PROMISED) => {
                    self.slow.promised.fetch_sub(n, Relaxed);
                    match self.try_acquire(n) {
                        Err(AcquireError::TimedOut) => {
                            // A running thread was faster (or a hold began).
                            // Pass the wake-up on if permits are left for
                            // others, then queue again (the deadline still
                            // holds).
                            record.passed_over.store(true, Relaxed);
                            if self.value() > 0 {
                                self.walk_now(Entry::Lost);
                            }
                        }
                        result => return result,
                    }
                }
                // A timekeeper: look again, and sleep with the hold's (maybe
                // new) deadline.
                Slept::Woken(_) | Slept::HoldTimer => {}
                Slept::TimedOut => return Err(AcquireError::TimedOut),
            }
        }
    }

    /// Spins for at most [`SPIN_FOR`] while nobody is queued, watching for
    /// `n` permits to come free (or a shutdown). Returns whether it is worth
    /// trying to take them; false means park.
    fn spin_until_free(&self, n: u64) -> bool {
        self.spin(|s| {
            if s & CLOSED != 0 || may_take(s, n) {
                Some(true)
            } else if s & PARKED != 0 {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Spins for at most [`SPIN_FOR`], until `look` at the state word says
    /// what to do (`Some(true)`: try to take the permits; `Some(false)`:
    /// stop and sleep). It does not spin while the machine has more
    /// runnable threads than CPUs (`load.rs`). On a semaphore made with
    /// permits it first waits [`SPIN_FIRST_LOOK`] without reading the word;
    /// then it reads it with a growing pause in between. Returns
    /// false if the time ran out.
    pub(crate) fn spin(&self, look: impl Fn(u64) -> Option<bool>) -> bool {
        if SPIN_FOR.is_zero() {
            return false;
        }
        // Every CPU busy: the releaser may be waiting for this one.
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        if crate::load::loaded(Instant::now()) {
            return false;
        }
        // (After the sample, which may have taken a few system calls.)
        let start = Instant::now();
        // Leave the word's cache line to the thread cycling the permits for
        // a moment: each read here would make its next compare-and-swap
        // fetch the line back.
        while self.params.hold_off != 0 && start.elapsed() < SPIN_FIRST_LOOK {
            for _ in 0..8 {
                core::hint::spin_loop();
            }
        }
        let mut pause = 1u32;
        // `pause` instructions since the clock was last read.
        let mut paused = 0u32;
        loop {
            if let Some(verdict) = look(self.state.load(Relaxed)) {
                return verdict;
            }
            for _ in 0..pause {
                core::hint::spin_loop();
            }
            paused += pause;
            pause = (pause * 2).min(SPIN_PAUSE_MAX);
            // Read the clock only every few dozen pauses (counted in pauses,
            // not reads, so that a slow `pause`, or a `pause` that yields,
            // as under Miri, does not stretch the spin).
            if paused >= 32 {
                paused = 0;
                if start.elapsed() >= SPIN_FOR {
                    return false;
                }
            }
        }
    }

    /// Queues `record` unless it may take its permits after all
    /// (`Queued::Not`) or the semaphore is shut down. For a thread, returns
    /// the deadline to sleep until: the caller's, or, for a thread held back
    /// by a hold in the default mode, the hold's if earlier (so that it can
    /// end a lapsed hold). An async record may be handed its permits by the
    /// walk this call's `unlock` makes for deposits: then it is taken back
    /// off the wake-up list (`Queued::Handed`: no completion is delivered).
    fn enqueue(
        &self,
        record: &WaitRecord,
        deadline: Option<Instant>,
    ) -> Result<Queued, AcquireError> {
        let mut seen = self.lock();
        let mut wake = Wakeups::new();
        let flags = if self.params.fifo {
            PARKED | HANDOFF
        } else {
            PARKED
        };
        let mut s = self.state.load(Relaxed);
        loop {
            if s & CLOSED != 0 {
                self.unlock(seen, &mut wake);
                return Err(AcquireError::Closed);
            }
            if may_take(s, record.n) {
                self.unlock(seen, &mut wake);
                return Ok(Queued::Not);
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
        // Until this CAS set `PARKED`, running threads could take permits
        // (the fast paths ignore a queue lock), so the budget may have
        // fallen below what `lock` saw; from now on a release that finds the
        // lock held deposits, and in FIFO mode `HANDOFF` was already set, so
        // only the budget shows the deposit. Walk for anything above the
        // budget as this CAS left it, not as `lock` found it, or a deposit
        // that brings the count back up would go unserved (loom model
        // `fifo_queueing_thread_serves_a_deposit_made_after_a_barger_took_permits`).
        seen = seen.min(self.budget(s));
        if self.params.fifo {
            self.slow.handoff_wanted.store(true, Relaxed);
        }
        if let Some(a) = &record.asynchronous {
            self.link(record);
            self.timer_wanted_at(a.deadline);
            self.unlock(seen, &mut wake);
            let handed = wake.remove(record);
            wake.wake_all();
            return Ok(if handed {
                Queued::Handed
            } else {
                Queued::Sleep(None)
            });
        }
        let hold_until = (!self.params.fifo && self.slow.handoff_wanted.load(Relaxed))
            .then(|| self.slow.hold_until.load(Relaxed))
            .filter(|&at| at != u64::MAX);
        let park_deadline = match hold_until.and_then(deadline::instant) {
            Some(at) => Some(deadline.map_or(at, |d| d.min(at))),
            None => deadline,
        };
        record.parker.reset();
        record.keeps_time.store(hold_until.is_some(), Relaxed);
        if hold_until.is_some() {
            self.slow.timekeepers.fetch_add(1, Relaxed);
        }
        self.link(record);
        self.unlock(seen, &mut wake);
        wake.wake_all();
        Ok(Queued::Sleep(park_deadline))
    }

    /// Queues an async acquire of `n` permits in `record`, unless they can be
    /// taken at once. `wait` is its deadline (`Wait::Never`: only try).
    /// Returns `Acquired` (the permits are the caller's, no completion will
    /// come), `Pending` (exactly one completion will be delivered, see
    /// `completion.rs`), or the error of a failed attempt (no completion).
    ///
    /// `n` must be in `1..=max`. Deadlines are kept by the timer thread
    /// (`timer.rs`), with which the caller must have registered this
    /// semaphore when `wait` has one; loom models call `expire` instead.
    ///
    /// # Safety
    /// `record` must be valid for writing a `WaitRecord` and aligned for it;
    /// on `Pending` it must stay live and untouched by the caller until the
    /// completion was delivered.
    pub(crate) unsafe fn acquire_async(
        &self,
        n: u64,
        wait: Wait,
        record: *mut WaitRecord,
        completion: Completion,
    ) -> Result<Submitted, AcquireError> {
        debug_assert!(n >= 1 && n <= self.params.max);
        match self.try_acquire(n) {
            Ok(()) => return Ok(Submitted::Acquired),
            Err(AcquireError::TimedOut) if wait != Wait::Never => {}
            Err(e) => return Err(e),
        }
        let deadline = match wait {
            Wait::Until(at) => deadline::nanos(at),
            _ => u64::MAX,
        };
        let asynchronous = AsyncPart {
            deadline,
            completion,
        };
        // SAFETY: valid for the write and aligned, by the contract; then
        // live until delivered.
        let record = unsafe {
            record.write(WaitRecord::new(
                n,
                self.params.fairness.fair_after,
                Some(asynchronous),
            ));
            &*record
        };
        loop {
            match self.enqueue(record, None)? {
                Queued::Sleep(_) => return Ok(Submitted::Pending),
                Queued::Handed => return Ok(Submitted::Acquired),
                Queued::Not => match self.try_acquire(n) {
                    Err(AcquireError::TimedOut) => {}
                    Ok(()) => return Ok(Submitted::Acquired),
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// Withdraws the pending async acquire whose record is at `record`, if it
    /// is queued here: its completion is delivered with `SEM_CANCELLED`
    /// before this returns `true`. `false`: it is not queued (its
    /// completion was delivered or is being delivered by the thread that
    /// dequeued it; if that was a grant, the permits are the caller's).
    /// `record` is only compared with the queue's records, never read, so
    /// any address may be given.
    pub(crate) fn cancel(&self, record: *const WaitRecord) -> bool {
        let seen = self.lock();
        let mut wake = Wakeups::new();
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() && !core::ptr::eq(p, record) {
            // SAFETY: as in `walk`.
            p = unsafe { (*p).next.load(Relaxed) };
        }
        // SAFETY: found in the queue, so live (as in `walk`).
        let found = unsafe { p.as_ref() }.filter(|r| r.asynchronous.is_some());
        let seen = match found {
            Some(record) => {
                let seen = self.leave(record, seen, &mut wake, Entry::Leave);
                wake.push(record, WOKEN_CANCELLED);
                seen
            }
            None => seen,
        };
        let cancelled = found.is_some();
        self.unlock(seen, &mut wake);
        wake.wake_all();
        cancelled
    }

    /// When the timer thread must next call `expire` (a lower bound; see
    /// `SlowCounters::timer_at`).
    #[cfg(not(loom))]
    pub(crate) fn timer_at(&self) -> u64 {
        self.slow.timer_at.load(Relaxed)
    }

    /// Whether this semaphore is registered with the timer thread.
    #[cfg(not(loom))]
    pub(crate) fn timer_registered(&self) -> &LockedBool {
        &self.slow.timer_registered
    }

    /// For the timer thread, at time `now`: dequeues the async waiters whose
    /// deadline passed onto `wake` (their completions say `SEM_TIMEDOUT`),
    /// ends a hold whose deadline passed that no queued thread keeps the
    /// time of, serves whoever fits after that, and returns when it must be
    /// called next.
    pub(crate) fn expire(&self, now: u64, wake: &mut Wakeups) -> u64 {
        let mut seen = self.lock();
        let mut ended_hold = false;
        let mut any = false;
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: as in `walk`.
            let record = unsafe { &*p };
            p = record.next.load(Relaxed);
            if record
                .asynchronous
                .as_ref()
                .is_some_and(|a| a.deadline <= now)
            {
                self.unlink(record);
                self.dequeued(record);
                ended_hold |= record.held.swap(false, Relaxed);
                wake.push(record, WOKEN_TIMEDOUT);
                any = true;
            }
        }
        if any {
            if self.slow.head.load(Relaxed).is_null() {
                self.set_queue_flags(false, false);
            } else if ended_hold {
                self.set_queue_flags(true, false);
            }
        }
        let hold_lapsed = !self.params.fifo
            && self.slow.handoff_wanted.load(Relaxed)
            && self.slow.hold_until.load(Relaxed) <= now;
        if hold_lapsed || (any && self.value() > 0 && self.state.load(Relaxed) & PARKED != 0) {
            seen = self.walk(Entry::HoldTimer, wake);
        }
        // What is left: the next deadline, and the hold's if it needs us.
        let mut next = self.unkept_hold().unwrap_or(u64::MAX);
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: as in `walk`.
            let record = unsafe { &*p };
            if let Some(a) = &record.asynchronous {
                next = next.min(a.deadline);
            }
            p = record.next.load(Relaxed);
        }
        self.slow.timer_at.store(next, Relaxed);
        self.unlock(seen, wake);
        next
    }

    /// Under the queue lock: the deadline of a hold in force that no queued
    /// thread keeps the time of (so the timer must), if any.
    fn unkept_hold(&self) -> Option<u64> {
        let unkept = !self.params.fifo
            && self.slow.handoff_wanted.load(Relaxed)
            && self.slow.timekeepers.load(Relaxed) == 0
            && self.params.fairness.hold_for != u64::MAX;
        unkept.then(|| self.slow.hold_until.load(Relaxed))
    }

    /// Under the queue lock: the timer thread must `expire` this semaphore
    /// at `at` (ns) at the latest; wakes it if it would sleep past that.
    fn timer_wanted_at(&self, at: u64) {
        if at < self.slow.timer_at.load(Relaxed) {
            self.slow.timer_at.store(at, Relaxed);
            #[cfg(not(loom))]
            crate::timer::poke(at);
        }
    }

    /// Under the queue lock: takes `record` (queued, leaving for a reason of
    /// its own: a deadline, a cancel) out of the queue, and serves whoever
    /// that lets through: the waiters behind a FIFO head or a held waiter,
    /// or, with `Entry::HoldTimer`, everyone a lapsed hold held back.
    /// Returns the budget walked for (see `unlock`).
    fn leave(&self, record: &WaitRecord, seen: u64, wake: &mut Wakeups, entry: Entry) -> u64 {
        self.unlink(record);
        self.dequeued(record);
        if self.slow.head.load(Relaxed).is_null() {
            self.set_queue_flags(false, false);
        } else if record.held.swap(false, Relaxed) {
            // A held waiter that leaves ends its hold.
            self.set_queue_flags(true, false);
        }
        // Waiters behind it may fit now that it no longer holds them back
        // (FIFO head, held waiter), or the hold it kept time for has lapsed
        // (end it even with no permit free, or it would sleep with its past
        // deadline again): walk.
        let parked_with_permits = self.value() > 0 && self.state.load(Relaxed) & PARKED != 0;
        if entry == Entry::HoldTimer || parked_with_permits {
            self.walk(entry, wake)
        } else {
            seen
        }
    }

    /// Sleeps in the queue until woken or until `park_deadline`; on a
    /// deadline, leaves the queue (unless a walk already took the record
    /// out: then its wake-up is on the way and counts).
    fn sleep(
        &self,
        record: &WaitRecord,
        deadline: Option<Instant>,
        mut park_deadline: Option<Instant>,
    ) -> Slept {
        loop {
            let value = record.parker.value();
            if value != 0 {
                return Slept::Woken(value);
            }
            if record.parker.sleep(park_deadline, &self.slow.clock) {
                continue;
            }
            // A deadline passed: leave the queue, under its lock.
            let seen = self.lock();
            let mut wake = Wakeups::new();
            if !record.queued.load(Relaxed) {
                // A walk dequeued us first: take its wake-up.
                self.unlock(seen, &mut wake);
                park_deadline = None;
                continue;
            }
            let own = deadline.is_some_and(|d| Instant::now() >= d);
            let entry = if own { Entry::Leave } else { Entry::HoldTimer };
            let seen = self.leave(record, seen, &mut wake, entry);
            self.unlock(seen, &mut wake);
            wake.wake_all();
            return if own {
                Slept::TimedOut
            } else {
                Slept::HoldTimer
            };
        }
    }

    /// Under the queue lock: appends `record` to the queue.
    fn link(&self, record: &WaitRecord) {
        let p = core::ptr::from_ref(record).cast_mut();
        let tail = self.slow.tail.load(Relaxed);
        record.prev.store(tail, Relaxed);
        record.next.store(core::ptr::null_mut(), Relaxed);
        if tail.is_null() {
            self.slow.head.store(p, Relaxed);
        } else {
            // SAFETY: a queued record is live (its owner is asleep in the
            // queue until unlinked, which needs this lock).
            unsafe { (*tail).next.store(p, Relaxed) };
        }
        self.slow.tail.store(p, Relaxed);
        record.queued.store(true, Relaxed);
        self.slow.waiters.fetch_add(1, Relaxed);
    }

    /// Under the queue lock: takes `record` (queued) out of the queue.
    fn unlink(&self, record: &WaitRecord) {
        let (prev, next) = (record.prev.load(Relaxed), record.next.load(Relaxed));
        // SAFETY: queued neighbours are live, as in `link`.
        unsafe {
            match prev.is_null() {
                true => self.slow.head.store(next, Relaxed),
                false => (*prev).next.store(next, Relaxed),
            }
            match next.is_null() {
                true => self.slow.tail.store(prev, Relaxed),
                false => (*next).prev.store(prev, Relaxed),
            }
        }
        record.queued.store(false, Relaxed);
        self.slow.waiters.fetch_sub(1, Relaxed);
    }

    /// Under the queue lock, when `record` leaves the queue: it no longer
    /// keeps time.
    fn dequeued(&self, record: &WaitRecord) {
        if record.keeps_time.swap(false, Relaxed) {
            self.slow.timekeepers.fetch_sub(1, Relaxed);
        }
    }

    /// Takes the queue lock: the `LOCKED` bit of the state word. Spins, then
    /// yields, while another thread holds it (critical sections are short
    /// and never sleep). Never called by a release, which must not wait (see
    /// `release_slow`).
    ///
    /// Returns the budget (see `budget`) at the moment the lock was taken:
    /// the previous holder's `unlock` walked the queue for it (or more), so
    /// it is what this critical section has accounted for until it walks
    /// itself; pass it (or a walk's result) to `unlock`.
    fn lock(&self) -> u64 {
        let mut spins = 0u32;
        loop {
            if let Some(seen) = self.try_lock() {
                return seen;
            }
            spins += 1;
            if cfg!(loom) {
                #[cfg(loom)]
                self.slow
                    .clock
                    .wait_for_unlock(|| self.fresh_state() & LOCKED != 0);
            } else if spins < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// One attempt of `lock`, which never waits: `None` if another thread
    /// holds the lock (or the word changed under the attempt).
    fn try_lock(&self) -> Option<u64> {
        let s = self.fresh_state();
        // Acquire: the critical section sees what the previous holder did
        // before its Release unlock.
        let locked = s & LOCKED == 0
            && self
                .state
                .compare_exchange(s, s | LOCKED, Acquire, Relaxed)
                .is_ok();
        locked.then(|| self.budget(s))
    }

    /// What a walk may hand out or promise in state `s`: the free permits
    /// less those promised to woken threads that have not run yet. Permits
    /// above the budget a critical section walked for are deposits it must
    /// serve before it unlocks. (Counts alone would not do: a woken thread
    /// taking its promised permit and a deposit leave the count as it was.)
    fn budget(&self, s: u64) -> u64 {
        // An RMW, not a load: it reads the latest value, so a promise a
        // woken thread already gave back (before its `AcqRel` acquire CAS,
        // which this thread's reads of the word follow) is never counted
        // again. A stale, larger `promised` would make a walk wake too few
        // threads and leave a fitting waiter asleep (loom found it).
        (s & COUNT_MASK).saturating_sub(self.slow.promised.fetch_add(0, AcqRel))
    }

    /// The state word, for a spin loop. Under loom an RMW, which always reads
    /// the latest value (loom may let a plain load in a loop return the same
    /// stale value for ever, which hardware does not).
    #[inline]
    fn fresh_state(&self) -> u64 {
        #[cfg(loom)]
        return self.state.fetch_or(0, Relaxed);
        #[cfg(not(loom))]
        return self.state.load(Relaxed);
    }

    /// In a forked child, from the `pthread_atfork` child handler (`fork.rs`),
    /// while the child's only thread runs nothing else: the queue's waiters
    /// were threads of the parent, and so was the holder of the queue lock,
    /// if any. Forget them (never woken, never handed anything), with
    /// everything promised or held for them; the count, `max`, the mode and
    /// `CLOSED` stay. (A lock holder's unfinished work goes with the lock:
    /// every change to the count is one CAS, made or not.)
    #[cfg(unix)]
    pub(crate) fn forget_after_fork(&self) {
        self.slow.head.store(core::ptr::null_mut(), Relaxed);
        self.slow.tail.store(core::ptr::null_mut(), Relaxed);
        self.slow.waiters.store(0, Relaxed);
        self.slow.promised.store(0, Relaxed);
        self.slow.timekeepers.store(0, Relaxed);
        self.slow.hold_until.store(0, Relaxed);
        self.slow.next_fair.store(0, Relaxed);
        self.slow.handoff_wanted.store(false, Relaxed);
        self.slow.timer_at.store(u64::MAX, Relaxed);
        let s = self.state.load(Relaxed);
        self.state.store(s & (COUNT_MASK | CLOSED), Relaxed);
    }

    /// This semaphore's links in the registry of `fork.rs`.
    #[cfg(unix)]
    pub(crate) fn registry_links(&self) -> &fork::Links {
        &self.params.links
    }

    /// Releases the queue lock. `seen` is the budget the queue was last
    /// walked for: `lock`'s result, or the last walk's. If releases
    /// deposited permits since (the budget is higher and threads are
    /// queued), walk for them first, so that no deposit is left unserved.
    fn unlock(&self, mut seen: u64, wake: &mut Wakeups) {
        let mut s = self.state.load(Relaxed);
        loop {
            if s & PARKED != 0 {
                // A deposit made while `HANDOFF` was clear set it (and so
                // stopped running threads and woken ones from taking
                // permits: the count cannot fall back to where it was and
                // hide the deposit); one made while it was set raised the
                // budget, which only this holder can lower.
                let flagged = s & HANDOFF != 0 && !self.slow.handoff_wanted.load(Relaxed);
                let budget = self.budget(s);
                if flagged || budget > seen {
                    let released = budget.saturating_sub(seen).max(1);
                    seen = self.walk(Entry::Release(released), wake);
                    s = self.state.load(Relaxed);
                    continue;
                }
            }
            // Release: the next holder sees this critical section's writes.
            match self
                .state
                .compare_exchange_weak(s, s & !LOCKED, Release, Relaxed)
            {
                Ok(_) => {
                    #[cfg(loom)]
                    self.slow.clock.unlocked();
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Takes the lock, walks the queue, releases the lock, wakes.
    #[cold]
    fn walk_now(&self, entry: Entry) {
        self.lock();
        self.walk_and_unlock(entry);
    }

    /// Under the queue lock: walks the queue, releases the lock, and wakes
    /// the waiters the walk (or `unlock`'s own walks) chose.
    fn walk_and_unlock(&self, entry: Entry) {
        let mut wake = Wakeups::new();
        let seen = self.walk(entry, &mut wake);
        self.unlock(seen, &mut wake);
        wake.wake_all();
    }

    /// Returns `n` permits; hands them to blocked waiters that fit.
    ///
    /// `n` must be at least 1. All or nothing: on `Overflow` nothing changed.
    /// Async-signal-safe: it never waits for a lock (see `release_slow`).
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

    /// The rest of `release`, from state `s`: threads are queued, the count
    /// has no room for `n`, or the word changed under the fast path.
    ///
    /// With threads queued, the permits go into the count in the same CAS
    /// that either takes the queue lock (then this release walks the queue)
    /// or, if another thread holds it, leaves them to that holder, whose
    /// `unlock` walks for them. So a release never waits: one that interrupts
    /// the lock holder from a signal handler (even on the holder's own
    /// thread) completes at once, and the holder serves its permits.
    #[cold]
    fn release_slow(&self, n: u64, mut s: u64) -> Result<(), ReleaseError> {
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.shared_release(n, s);
        }
        loop {
            // `count <= max` always holds, so this cannot underflow.
            if n > self.params.max - (s & COUNT_MASK) {
                return Err(ReleaseError::Overflow);
            }
            let (new, take_lock) = match (s & PARKED != 0, s & LOCKED != 0) {
                (true, false) => ((s + n) | LOCKED, true),
                // A deposit for the holder, flagged with `HANDOFF` (see
                // `unlock`).
                (true, true) => ((s + n) | HANDOFF, false),
                _ => (s + n, false),
            };
            // Release: the releaser's writes are visible to whoever takes
            // the permits; Acquire too when it takes the lock.
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) if take_lock => {
                    self.walk_and_unlock(Entry::Release(n));
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// Under the queue lock: walks the queue once as the policy says (see
    /// `policy.rs`), dequeuing the waiters it serves onto `wake`. Returns
    /// the budget the walk accounted for (the budget it started from, less
    /// what it handed over or promised), for `unlock`: permits deposited
    /// while it walked are above that, and get a walk of their own.
    fn walk(&self, entry: Entry, wake: &mut Wakeups) -> u64 {
        let now = deadline::nanos(Instant::now());
        let start = self.start(entry, now, self.value());
        let mut accounted = start.count.saturating_sub(start.promised);
        let mut walk = Walk::new(start);
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: a queued record is live (its owner sleeps until it is
            // unlinked, which needs the lock we hold).
            let record = unsafe { &*p };
            let next = record.next.load(Relaxed);
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
            let value = match decision.verdict {
                Verdict::Skip => {
                    p = next;
                    continue;
                }
                Verdict::Stop => break,
                Verdict::Hand => {
                    accounted = accounted.saturating_sub(record.n);
                    WOKEN_HANDED
                }
                Verdict::Wake => {
                    accounted = accounted.saturating_sub(record.n);
                    self.slow.promised.fetch_add(record.n, Relaxed);
                    WOKEN_PROMISED
                }
                Verdict::Watch => WOKEN_TIMEKEEPER,
            };
            self.unlink(record);
            self.dequeued(record);
            wake.push(record, value);
            p = next;
        }
        // A held waiter never leaves the queue with its hold on: it is
        // handed its permits (which ends the hold), or its hold lapses, or it
        // times out and `sleep` ends the hold under this lock. So the walk
        // always meets it.
        debug_assert!(!walk.lost_hold(), "a hold outlived its waiter");
        let more = !self.slow.head.load(Relaxed).is_null();
        let finish = walk.finish(more);
        self.set_queue_flags(more, finish.handoff);
        self.slow.hold_until.store(finish.hold_until, Relaxed);
        self.slow.next_fair.store(finish.next_fair, Relaxed);
        // A hold that holds async waiters back and that no queued thread
        // keeps the time of: the timer thread must notice its lapse.
        if self.slow.timer_registered.load(Relaxed)
            && let Some(at) = self.unkept_hold()
        {
            self.timer_wanted_at(at);
        }
        accounted
    }

    /// The inputs of a walk, read under the queue lock.
    fn start(&self, entry: Entry, now: u64, count: u64) -> Start {
        Start {
            fifo: self.params.fifo,
            fairness: self.params.fairness,
            entry,
            now,
            count,
            // An RMW, for the reason given in `budget`.
            promised: self.slow.promised.fetch_add(0, AcqRel),
            handoff: self.slow.handoff_wanted.load(Relaxed),
            hold_until: self.slow.hold_until.load(Relaxed),
            next_fair: self.slow.next_fair.load(Relaxed),
            timekeepers: self.slow.timekeepers.load(Relaxed),
        }
    }

    /// Under the queue lock: takes `n` permits on behalf of a queued waiter
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

    /// Under the queue lock: sets `PARKED` and `HANDOFF` to the given values.
    fn set_queue_flags(&self, parked: bool, handoff: bool) {
        self.slow.handoff_wanted.store(handoff, Relaxed);
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
    /// Takes none while queued waiters have priority (`HANDOFF`, in-process).
    pub fn drain(&self) -> u64 {
        // A shared semaphore's count is the word's low 31 bits, and its
        // sleepers do not hold free permits back (`shared.rs`).
        #[cfg(all(target_os = "linux", not(loom)))]
        let (mask, held_back) = match self.is_shared() {
            true => (crate::shared::SHARED_COUNT_MAX, 0),
            false => (COUNT_MASK, HANDOFF),
        };
        #[cfg(not(all(target_os = "linux", not(loom))))]
        let (mask, held_back) = (COUNT_MASK, HANDOFF);
        #[cfg(all(target_os = "linux", not(loom)))]
        if let Some(owner) = crate::shm::owner(self).filter(|_| self.is_shared()) {
            return self.recover_drain(&owner);
        }
        let mut s = self.state.load(Relaxed);
        loop {
            let count = s & mask;
            if count == 0 || s & held_back != 0 {
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
        #[cfg(all(target_os = "linux", not(loom)))]
        if self.is_shared() {
            return self.shared_shutdown();
        }
        let seen = self.lock();
        let mut wake = Wakeups::new();
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: as in `walk`.
            let record = unsafe { &*p };
            let next = record.next.load(Relaxed);
            self.unlink(record);
            self.dequeued(record);
            wake.push(record, WOKEN_CLOSED);
            p = next;
        }
        // (`promised` stays: woken threads still give their promises back.)
        let mut s = self.state.load(Relaxed);
        loop {
            self.slow.handoff_wanted.store(false, Relaxed);
            let new = (s | CLOSED) & !(PARKED | HANDOFF);
            match self.state.compare_exchange_weak(s, new, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.unlock(seen, &mut wake);
        wake.wake_all();
    }

    /// What is queued right now, read under the queue lock: the input of the
    /// liveness oracle (`oracle.rs`).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let seen = self.lock();
        let mut queue = Vec::new();
        let mut p = self.slow.head.load(Relaxed);
        while !p.is_null() {
            // SAFETY: as in `walk`.
            let record = unsafe { &*p };
            queue.push(Waiting {
                waiter: record.view(),
            });
            p = record.next.load(Relaxed);
        }
        let s = self.state.load(Relaxed);
        let snapshot = Snapshot {
            fifo: self.params.fifo,
            endless_holds: self.params.fairness.hold_for == u64::MAX,
            count: s & COUNT_MASK,
            parked: s & PARKED != 0,
            handoff: s & HANDOFF != 0,
            closed: s & CLOSED != 0,
            promised: self.slow.promised.load(Relaxed),
            timekeepers: self.slow.timekeepers.load(Relaxed),
            timer_keeps_hold: self.slow.timer_at.load(Relaxed)
                <= self.slow.hold_until.load(Relaxed),
            queue,
        };
        let mut wake = Wakeups::new();
        self.unlock(seen, &mut wake);
        wake.wake_all();
        snapshot
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

    /// How many threads are queued right now (a snapshot; it takes no lock,
    /// so that tests and loom models may poll it). For tests.
    #[doc(hidden)]
    pub fn queued(&self) -> usize {
        // Loom: an RMW, which reads the latest value (a load in a polling
        // loop may see the same old one for ever).
        #[cfg(loom)]
        let n = self.slow.waiters.fetch_add(0, Relaxed);
        #[cfg(not(loom))]
        let n = self.waiters();
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Loom models only: waits until exactly `k` threads are queued and the
    /// queue lock is free (so that a release made next walks the queue
    /// itself rather than leaving its permits to a holder's `unlock`).
    /// Sleeps between checks: a model that polled would spin, which loom
    /// cannot schedule fairly once its preemptions are spent.
    #[cfg(loom)]
    pub fn wait_queued(&self, k: usize) {
        let settled = || self.fresh_state() & LOCKED == 0 && self.queued() == k;
        while !settled() {
            self.slow.clock.wait_for_unlock(|| !settled());
        }
    }

    /// Loom models only: makes every deadline on this semaphore pass, now
    /// and later.
    #[cfg(loom)]
    pub fn fire_timeouts(&self) {
        self.slow.clock.fire();
    }

    /// Tests and loom models: an async acquire (see `acquire_async`) whose
    /// queue record lives in `memory` (at least [`RECORD_SIZE`] bytes,
    /// 8-aligned) and whose completion calls `done(ctx, status)` with a C
    /// status code.
    ///
    /// # Safety
    /// As `acquire_async`: on `Pending`, `memory` stays live and untouched
    /// until `done` was called.
    #[doc(hidden)]
    pub unsafe fn acquire_async_in(
        &self,
        n: u64,
        wait: Wait,
        memory: *mut u64,
        done: fn(*mut core::ffi::c_void, c_int),
        ctx: *mut core::ffi::c_void,
    ) -> Result<Submitted, AcquireError> {
        let completion = Completion::new(crate::completion::How::Rust(done), ctx, memory.cast());
        // SAFETY: by this function's contract.
        unsafe { self.acquire_async(n, wait, memory.cast(), completion) }
    }

    /// Tests and loom models: `cancel` for a record made by
    /// `acquire_async_in`.
    #[doc(hidden)]
    pub fn cancel_in(&self, memory: *const u64) -> bool {
        self.cancel(memory.cast())
    }

    /// Tests and loom models: what the timer thread does once every async
    /// deadline has passed (delivers their completions on this thread).
    #[doc(hidden)]
    pub fn expire_all(&self) {
        let mut wake = Wakeups::new();
        self.expire(u64::MAX - 1, &mut wake);
        wake.wake_all();
    }

    /// Whether `shutdown` was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Relaxed) & CLOSED != 0
    }
}

/// What `enqueue` did.
enum Queued {
    /// Not queued: the permits may be free; try again.
    Not,
    /// Queued; a thread sleeps until this deadline (async records: `None`).
    Sleep(Option<Instant>),
    /// Async records only: queued, and handed its permits at once by the
    /// walk of the enqueue's own `unlock` (taken back off the wake-ups).
    Handed,
}

/// How a sleep in the queue ended.
enum Slept {
    /// Woken by a walk or a shutdown, with this value (the record is out of
    /// the queue).
    Woken(u32),
    /// The caller's deadline passed (the record left the queue).
    TimedOut,
    /// Only the hold's deadline passed (the record left the queue): look
    /// again.
    HoldTimer,
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
        // Two lines of slow-path data: 256 bytes in all, the size the
        // README's memory table states (and bench/memory.cpp prints).
        assert_eq!(core::mem::size_of::<Semaphore>(), 256);
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
                // SeqCst, so that seeing `done` also shows the semaphore as
                // the waiter saw it (dequeued: `waiters` decremented).
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

    /// The set-up of the two deposit windows below: fairness off, W2
    /// queued for 1 while a promise of 1 is outstanding (a woken W1 that
    /// has not run yet), and one permit free, which a release of 1 left to
    /// W1 (budget 0: W2 stays queued). Returns W2's thread (a 2 s wait).
    fn w2_queued_behind_a_promise() -> (Arc<Semaphore>, thread::JoinHandle<Result<(), AcquireError>>)
    {
        let s = Arc::new(
            Semaphore::with_fairness(
                0,
                COUNT_MAX,
                false,
                Duration::MAX,
                Duration::ZERO,
                Duration::MAX,
            )
            .unwrap(),
        );
        let w2 = {
            let s = s.clone();
            thread::spawn(move || s.acquire(1, in_ms(2000)))
        };
        eventually("W2 queued", || s.queued() == 1);
        // `queued()` counts W2 from its `link`, while its enqueue still holds
        // the lock. Wait for that critical section (and any walk its
        // `unlock` makes) to end: the release below must take the lock and
        // walk for itself, or it deposits for W2's `unlock`, which may then
        // see the promise given back in the tests below and wake W2 for the
        // permit meant for W1.
        let seen = s.lock();
        s.unlock(seen, &mut Wakeups::new());
        s.slow.promised.fetch_add(1, Relaxed);
        assert_eq!(s.release(1), Ok(()));
        assert_eq!(s.queued(), 1);
        (s, w2)
    }

    #[test]
    fn deposit_behind_a_spent_promise_is_served() {
        // White box (the window is a few instructions wide): W2 is queued
        // for 1 while a promise of 1 is outstanding (a woken W1 that has not
        // run), so a release of 1 leaves W2 queued. Then, while thread X
        // holds the lock, W1 takes its permit and a release (another thread,
        // or a signal handler on X) deposits one: the count is back where X
        // found it, but the deposit is new budget, and X's unlock must walk
        // for it. (A comparison of counts missed it: W2 timed out with the
        // permit free.)
        let (s, w2) = w2_queued_behind_a_promise();
        let seen = s.lock(); // X
        s.slow.promised.fetch_sub(1, Relaxed); // W1 runs...
        assert_eq!(s.try_acquire(1), Ok(())); // ...and takes its permit
        assert_eq!(s.release(1), Ok(())); // the deposit
        let mut wake = Wakeups::new();
        s.unlock(seen, &mut wake);
        wake.wake_all();
        assert_eq!(w2.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        assert_eq!(s.liveness(), (0, Ok(())));
    }

    #[test]
    fn deposit_inside_a_promise_give_back_is_served() {
        // White box, the other order of the window above (review finding):
        // W1 gives its promise back *before* X takes the lock, so the budget
        // X starts from already counts W1's permit; W1 then takes it and a
        // release deposits one. Count and promised are then exactly as X
        // found them, so no comparison of them can see the deposit: the
        // deposit's `HANDOFF` flag does, and X's unlock serves W2.
        let (s, w2) = w2_queued_behind_a_promise();
        s.slow.promised.fetch_sub(1, Relaxed); // W1 gives its promise back
        let seen = s.lock(); // X: budget 1
        assert_eq!(s.try_acquire(1), Ok(())); // W1 takes its permit
        assert_eq!(s.release(1), Ok(())); // the deposit
        assert_eq!(s.try_acquire(1), Err(AcquireError::TimedOut)); // flagged
        let mut wake = Wakeups::new();
        s.unlock(seen, &mut wake);
        wake.wake_all();
        assert_eq!(w2.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        assert_eq!(s.liveness(), (0, Ok(())));
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
