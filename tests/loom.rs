//! Loom model checks of the state machine: every interleaving (up to a
//! preemption bound) of the threads below is explored, with the semaphore's
//! atomics (the state word with its queue lock, the waiters' wake-up words)
//! and parking (src/parking.rs: loom's park/unpark) under loom's control.
//! A lost wake-up shows up as a deadlock, a lost or created permit as a
//! failed count check. Releases that find the queue lock held leave their
//! permits to its holder (the async-signal-safe path); every model that
//! races a release with a queueing or leaving thread explores that.
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! (scripts/verify does, with its own target directory).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use rsem::{AcquireError, Semaphore, Wait};
use std::time::{Duration, Instant};

/// Explores `f` with at most 2 preemptions per execution by default (CI);
/// `LOOM_MAX_PREEMPTIONS=3` (scripts/verify --long) explores more.
fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(2, f);
}

/// As `model`, with at most `preemptions` by default (for models with more
/// threads, whose space at 2 takes too long for CI; verify --long's
/// `LOOM_MAX_PREEMPTIONS` still raises it).
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // LOOM_MAX_PREEMPTIONS (read by `Builder::new`) is the bound of `model`;
    // these models stay that much below it.
    builder.preemption_bound = Some(
        builder
            .preemption_bound
            .map_or(preemptions, |b| b.saturating_sub(2 - preemptions)),
    );
    builder.check(f);
}

fn sem(value: u64, max: u64, fifo: bool) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(value, max, fifo).unwrap())
}

/// A default-mode semaphore whose overtaken waiters starve at once (so the
/// fairness handoff and holds happen in every execution), with holds that
/// last until served (`hold`: `Duration::MAX`) or lapse at once (`ZERO`).
fn fair_sem(value: u64, max: u64, hold: Duration) -> Arc<Semaphore> {
    Arc::new(
        Semaphore::with_fairness(value, max, false, Duration::ZERO, Duration::ZERO, hold).unwrap(),
    )
}

/// Waits until `k` threads are queued on `s` (sleeping, not polling).
fn wait_queued(s: &Semaphore, k: usize) {
    s.wait_queued(k);
}

/// The liveness oracle at the end of a model: nothing queued, nothing
/// promised, no stale flag.
fn settled(s: &Semaphore) {
    assert_eq!(s.liveness(), (0, Ok(())));
}

fn timed() -> Wait {
    Wait::Until(Instant::now())
}

/// A thread that acquires `n` permits of `s`, waiting as `wait` allows.
fn spawn_acquire(
    s: &Arc<Semaphore>,
    n: u64,
    wait: Wait,
) -> thread::JoinHandle<Result<(), AcquireError>> {
    let s = s.clone();
    thread::spawn(move || s.acquire(n, wait))
}

/// Plays the clock for `s`: at some point, every deadline passes.
fn clock(s: &Arc<Semaphore>) -> thread::JoinHandle<()> {
    let s = s.clone();
    thread::spawn(move || s.fire_timeouts())
}

#[test]
fn release_wakes_a_blocked_acquirer() {
    model(|| {
        let s = sem(0, 4, false);
        let t = spawn_acquire(&s, 1, Wait::Forever);
        s.release(1).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        assert_eq!(s.waiters(), 0);
        settled(&s);
    });
}

#[test]
fn two_waiters_two_single_releases() {
    // libc++ (llvm 46357): the second release must wake the second waiter.
    model(|| {
        let s = sem(0, 4, false);
        let ts: Vec<_> = (0..2)
            .map(|_| spawn_acquire(&s, 1, Wait::Forever))
            .collect();
        s.release(1).unwrap();
        s.release(1).unwrap();
        for t in ts {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn try_acquire_racing_release() {
    model(|| {
        let s = sem(0, 4, false);
        let s2 = s.clone();
        let t = thread::spawn(move || s2.try_acquire(1));
        s.release(1).unwrap();
        let taken = match t.join().unwrap() {
            Ok(()) => 1,
            Err(AcquireError::TimedOut) => 0,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(s.value(), 1 - taken);
        settled(&s);
    });
}

#[test]
fn timeout_racing_release_never_swallows_the_permit() {
    model(|| {
        let s = sem(0, 4, false);
        let waiter = spawn_acquire(&s, 1, timed());
        let s3 = s.clone();
        let releaser = thread::spawn(move || s3.release(1).unwrap());
        s.fire_timeouts();
        releaser.join().unwrap();
        let taken = match waiter.join().unwrap() {
            Ok(()) => 1,
            Err(AcquireError::TimedOut) => 0,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(s.value(), 1 - taken);
        assert_eq!(s.waiters(), 0);
        settled(&s);
    });
}

#[test]
fn timed_out_waiter_passes_the_permit_on() {
    // A timed waiter and an unlimited one; one release. Whatever the timed
    // one does, the unlimited one must not be left asleep with a free permit.
    model(|| {
        let s = sem(0, 4, false);
        let timed_waiter = spawn_acquire(&s, 1, timed());
        let waiter = spawn_acquire(&s, 1, Wait::Forever);
        let tick = clock(&s);
        s.release(1).unwrap();
        let r = timed_waiter.join().unwrap();
        tick.join().unwrap();
        if r == Ok(()) {
            s.release(1).unwrap();
        } else {
            assert_eq!(r, Err(AcquireError::TimedOut));
        }
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn release_n_serves_multi_permit_waiters() {
    model(|| {
        let s = sem(0, 4, false);
        let ts: Vec<_> = [2u64, 1]
            .into_iter()
            .map(|n| spawn_acquire(&s, n, Wait::Forever))
            .collect();
        s.release(3).unwrap();
        for t in ts {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn fifo_head_timing_out_releases_the_next_waiter() {
    // golang/go#37852: the head needs 2 and times out; the waiter behind it
    // needs 1 and must then be served from the permit that was held back.
    model(|| {
        let s = sem(0, 4, true);
        let head = spawn_acquire(&s, 2, timed());
        let behind = spawn_acquire(&s, 1, Wait::Forever);
        let tick = clock(&s);
        s.release(1).unwrap();
        let r = head.join().unwrap();
        tick.join().unwrap();
        assert_eq!(r, Err(AcquireError::TimedOut));
        assert_eq!(behind.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn shutdown_wakes_blocked_acquirers() {
    model(|| {
        let s = sem(0, 4, false);
        let ts: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|n| spawn_acquire(&s, n, Wait::Forever))
            .collect();
        s.shutdown();
        for t in ts {
            assert_eq!(t.join().unwrap(), Err(AcquireError::Closed));
        }
        s.release(1).unwrap();
        assert_eq!(s.value(), 1);
        assert_eq!(s.waiters(), 0);
        settled(&s);
    });
}

#[test]
fn shutdown_racing_release_conserves_permits() {
    model(|| {
        let s = sem(0, 4, false);
        let waiter = spawn_acquire(&s, 1, Wait::Forever);
        let s2 = s.clone();
        let closer = thread::spawn(move || s2.shutdown());
        s.release(1).unwrap();
        closer.join().unwrap();
        let taken = match waiter.join().unwrap() {
            Ok(()) => 1,
            Err(AcquireError::Closed) => 0,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(s.value(), 1 - taken);
        settled(&s);
    });
}

/// A running thread that takes a permit and gives it back.
fn barger(s: &Arc<Semaphore>) -> thread::JoinHandle<()> {
    let s = s.clone();
    thread::spawn(move || {
        if s.try_acquire(1).is_ok() {
            s.release(1).unwrap();
        }
    })
}

#[test]
fn woken_waiter_overtaken_by_a_running_thread_passes_the_wake_up_on() {
    // Default mode: a release wakes a waiter, which must then compete; when a
    // running thread takes the permit first, nobody may be left asleep while
    // permits are free.
    model(|| {
        let s = sem(0, 4, false);
        let ts: Vec<_> = (0..2)
            .map(|_| spawn_acquire(&s, 1, Wait::Forever))
            .collect();
        let b = barger(&s);
        s.release(2).unwrap();
        b.join().unwrap();
        for t in ts {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn multi_permit_waiter_beside_a_running_thread() {
    model(|| {
        let s = sem(0, 4, false);
        let waiter = spawn_acquire(&s, 2, Wait::Forever);
        let b = barger(&s);
        s.release(1).unwrap();
        s.release(1).unwrap();
        b.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn woken_waiter_that_loses_its_permits_wakes_the_next_one() {
    // Waiters for 2 and then 1; a release of 2 wakes the first; a running
    // thread takes one of the two permits for good. The woken waiter cannot
    // proceed and must pass the wake-up on: the 1-permit waiter must get the
    // permit that is left, with no further release.
    model(|| {
        let s = sem(0, 4, false);
        let big = spawn_acquire(&s, 2, Wait::Forever);
        let small = spawn_acquire(&s, 1, Wait::Forever);
        let s3 = s.clone();
        let taker = thread::spawn(move || s3.try_acquire(1).is_ok());
        s.release(2).unwrap();
        if taker.join().unwrap() {
            // One permit is left; only the small waiter can use it.
            assert_eq!(small.join().unwrap(), Ok(()));
            s.release(2).unwrap();
            assert_eq!(big.join().unwrap(), Ok(()));
        } else {
            s.release(1).unwrap();
            assert_eq!(small.join().unwrap(), Ok(()));
            assert_eq!(big.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

// ---- Issue 11: the default mode's fairness, reached in every execution ----

/// Issue 11's set-up on `s` (empty): W1 (3, waiting as `w1_wait`) is
/// passed over, W2 (`w2_n`) queues, a second release starts a hold for W1
/// with 2 free, and W3 (1) queues behind them.
fn hold_with_two_behind(
    s: &Arc<Semaphore>,
    w1_wait: Wait,
    w2_n: u64,
) -> [thread::JoinHandle<Result<(), AcquireError>>; 3] {
    let w1 = spawn_acquire(s, 3, w1_wait);
    wait_queued(s, 1);
    s.release(1).unwrap(); // W1 does not fit: passed over.
    let w2 = spawn_acquire(s, w2_n, Wait::Forever);
    wait_queued(s, 2);
    s.release(1).unwrap(); // Count 2: a hold for W1.
    let w3 = spawn_acquire(s, 1, Wait::Forever);
    wait_queued(s, 3);
    [w1, w2, w3]
}

#[test]
fn held_waiter_timing_out_lets_the_walk_reach_waiters_behind_a_misfit() {
    // W1 (3) is starving and held for with 2 free; W2 (4) and W3 (1) queue
    // behind it; W1 times out. W3 fits and must be served, whatever W2 asks.
    model(|| {
        let s = fair_sem(0, 4, Duration::MAX);
        let [w1, w2, w3] = hold_with_two_behind(&s, timed(), 4);
        s.fire_timeouts();
        assert_eq!(w1.join().unwrap(), Err(AcquireError::TimedOut));
        assert_eq!(w3.join().unwrap(), Ok(()));
        s.release(3).unwrap();
        assert_eq!(w2.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn held_waiter_served_by_handoff_lets_the_walk_go_on() {
    // W1 (3) held, W2 (3), W3 (1); a release of 3 hands W1 its 3 and the 2
    // left must reach W3 past W2.
    model(|| {
        let s = fair_sem(0, 5, Duration::MAX);
        let [w1, w2, w3] = hold_with_two_behind(&s, Wait::Forever, 3);
        s.release(3).unwrap();
        assert_eq!(w1.join().unwrap(), Ok(()));
        assert_eq!(w3.join().unwrap(), Ok(()));
        s.release(2).unwrap();
        assert_eq!(w2.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn hold_racing_a_running_thread_and_a_release() {
    // A starving 2-permit waiter, a running thread that takes and returns a
    // permit, and two single releases: the hold must collect both permits
    // for the waiter in every interleaving, and leave no flag behind.
    model(|| {
        let s = fair_sem(0, 4, Duration::MAX);
        let waiter = spawn_acquire(&s, 2, Wait::Forever);
        wait_queued(&s, 1);
        s.release(1).unwrap(); // Passed over (and starving from now on).
        let b = barger(&s);
        s.release(1).unwrap();
        b.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn a_hold_that_cannot_be_met_lapses() {
    // Issue 11 item 7: W (3) is held for while only 2 permits circulate; a
    // running thread that wants 1 is held back, keeps the hold's time, and
    // once the hold's deadline passes it takes its permit.
    model(|| {
        let s = fair_sem(0, 3, Duration::ZERO);
        let w = spawn_acquire(&s, 3, Wait::Forever);
        wait_queued(&s, 1);
        s.release(1).unwrap();
        s.release(1).unwrap(); // Hold for W.
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                s.acquire(1, Wait::Forever)?;
                s.release(1).map_err(|_| AcquireError::Closed)
            })
        };
        let tick = clock(&s);
        assert_eq!(t.join().unwrap(), Ok(()));
        tick.join().unwrap();
        s.release(1).unwrap();
        assert_eq!(w.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn waiter_queued_before_a_hold_is_woken_to_keep_its_time() {
    // T (2) queued before the hold for W (3) began, so it sleeps without the
    // hold's deadline: the walk that starts the hold must wake it to keep
    // time, or nobody ends the hold when it lapses. (From the mutation run:
    // without the timekeeper this model deadlocks.)
    model(|| {
        let s = fair_sem(0, 3, Duration::ZERO);
        let w = spawn_acquire(&s, 3, Wait::Forever);
        wait_queued(&s, 1);
        s.release(1).unwrap(); // W passed over.
        let t = spawn_acquire(&s, 2, Wait::Forever);
        wait_queued(&s, 2);
        s.release(1).unwrap(); // Count 2: a hold for W; T fits but is held back.
        let tick = clock(&s);
        assert_eq!(t.join().unwrap(), Ok(()));
        tick.join().unwrap();
        s.release(3).unwrap();
        assert_eq!(w.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn deposit_while_a_woken_waiter_gives_its_promise_back_is_served() {
    // W1 is woken with a promise of the one permit; W2 waits behind it. X
    // takes and releases the queue lock (a snapshot, as a queueing or
    // leaving thread would) while W1 gives its promise back and takes the
    // permit, and a second release deposits its permit if X holds the lock.
    // X's unlock must then serve W2 with it: the budget it compares with is
    // the one the queue was walked for, not a snapshot taken inside W1's
    // give-back (review finding; W2 slept with the permit free). Four
    // threads: one preemption by default.
    model_bounded(1, || {
        let s = sem(0, 4, false);
        let w1 = spawn_acquire(&s, 1, Wait::Forever);
        let w2 = spawn_acquire(&s, 1, Wait::Forever);
        wait_queued(&s, 2);
        s.release(1).unwrap();
        let s2 = s.clone();
        let x = thread::spawn(move || {
            let _ = s2.liveness();
        });
        s.release(1).unwrap();
        assert_eq!(w1.join().unwrap(), Ok(()));
        assert_eq!(w2.join().unwrap(), Ok(()));
        x.join().unwrap();
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

// ---- Async waiters (tickets): one queue with threads, races by rule ----

use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::SeqCst;
use rsem::status::{SEM_CANCELLED, SEM_ECLOSED, SEM_OK, SEM_TIMEDOUT};
use rsem::{RECORD_SIZE, Submitted};

/// An async waiter under test: its record's memory and what its
/// completions said (how many, and the last status).
struct Ticket {
    memory: std::cell::UnsafeCell<Vec<u64>>,
    calls: AtomicUsize,
    status: AtomicUsize,
}

// SAFETY: the memory is only touched through rsem (under its queue lock
// while queued); the counters are atomics.
unsafe impl Sync for Ticket {}
unsafe impl Send for Ticket {}

impl Ticket {
    fn new() -> Arc<Ticket> {
        Arc::new(Ticket {
            memory: std::cell::UnsafeCell::new(vec![0; RECORD_SIZE / 8 + 1]),
            calls: AtomicUsize::new(0),
            status: AtomicUsize::new(usize::MAX),
        })
    }

    fn memory(&self) -> *mut u64 {
        // SAFETY: the Vec is never resized; its buffer lives as long as self.
        unsafe { (*self.memory.get()).as_mut_ptr() }
    }

    /// Submits an async acquire of `n` (the ticket outlives the model's
    /// threads, so it is live until its completion).
    fn submit(&self, s: &Semaphore, n: u64, wait: Wait) -> Result<Submitted, AcquireError> {
        let ctx = core::ptr::from_ref(self).cast_mut().cast();
        // SAFETY: the memory is RECORD_SIZE bytes or more, 8-aligned, and
        // lives (in `self`, kept by the model) past the completion.
        unsafe { s.acquire_async_in(n, wait, self.memory(), Ticket::done, ctx) }
    }

    fn done(ctx: *mut core::ffi::c_void, status: core::ffi::c_int) {
        // SAFETY: `ctx` is the Ticket that `submit` passed, still alive.
        let t = unsafe { &*ctx.cast::<Ticket>() };
        assert!(
            !IN_SUBMIT.with(|flag| flag.get()),
            "a completion ran inside the submitting call"
        );
        t.status.store(status as usize, SeqCst);
        t.calls.fetch_add(1, SeqCst);
    }

    /// The one completion's status (fails unless exactly one came).
    fn outcome(&self) -> core::ffi::c_int {
        assert_eq!(self.calls.load(SeqCst), 1, "exactly one completion");
        self.status.load(SeqCst) as core::ffi::c_int
    }
}

/// A pending ticket for 1 on an empty semaphore, then `rival` racing a
/// release of 1: exactly one completion, and the permit is either the
/// ticket's (`SEM_OK`) or back in the count (the rival's status).
fn ticket_racing_a_release(
    fifo: bool,
    wait: fn() -> Wait,
    rival: fn(&Semaphore, &Ticket) -> Option<bool>,
    rival_status: core::ffi::c_int,
) {
    model(move || {
        let s = sem(0, 1, fifo);
        let t = Ticket::new();
        assert_eq!(t.submit(&s, 1, wait()), Ok(Submitted::Pending));
        let r = {
            let s = s.clone();
            thread::spawn(move || s.release(1).unwrap())
        };
        let won = {
            let (s, t) = (s.clone(), t.clone());
            thread::spawn(move || rival(&s, &t))
        };
        r.join().unwrap();
        let won = won.join().unwrap();
        match t.outcome() {
            // (Only `cancel` reports whether it won; it must say so.)
            SEM_OK => {
                assert_ne!(won, Some(true), "cancel reported a win after the grant");
                assert_eq!(s.value(), 0);
            }
            status => {
                assert_eq!(status, rival_status);
                assert_ne!(won, Some(false), "cancel won but reported a loss");
                assert_eq!(s.value(), 1);
            }
        }
        assert_eq!(s.queued(), 0);
        if !s.is_closed() {
            settled(&s);
        }
    });
}

#[test]
fn cancel_racing_a_release_first_change_wins() {
    ticket_racing_a_release(
        false,
        || Wait::Forever,
        |s, t| Some(s.cancel_in(t.memory())),
        SEM_CANCELLED,
    );
}

#[test]
fn timeout_racing_a_release_first_change_wins() {
    ticket_racing_a_release(
        true,
        || Wait::Until(Instant::now() + Duration::from_secs(3600)),
        |s, _| {
            s.expire_all();
            // Whatever the order, nothing is left queued after it.
            assert_eq!(s.queued(), 0);
            None
        },
        SEM_TIMEDOUT,
    );
}

#[test]
fn shutdown_racing_a_release_first_change_wins() {
    ticket_racing_a_release(
        false,
        || Wait::Forever,
        |s, _| {
            s.shutdown();
            // Whatever the order, nothing is left queued after it.
            assert_eq!(s.queued(), 0);
            None
        },
        SEM_ECLOSED,
    );
}

/// A blocked thread, then a ticket, queued on an empty semaphore; two
/// releases of 1 (one racing the other): both are served, each exactly
/// once, nothing is lost, and in FIFO mode the thread came first.
fn thread_and_ticket_in_one_queue(fifo: bool) {
    model(move || {
        let s = sem(0, 2, fifo);
        let a = spawn_acquire(&s, 1, Wait::Forever);
        wait_queued(&s, 1);
        let t = Ticket::new();
        assert_eq!(t.submit(&s, 1, Wait::Forever), Ok(Submitted::Pending));
        let r = {
            let s = s.clone();
            thread::spawn(move || s.release(1).unwrap())
        };
        if fifo {
            // The first release went to the thread, which came first.
            assert_eq!(a.join().unwrap(), Ok(()));
            s.release(1).unwrap();
        } else {
            s.release(1).unwrap();
            assert_eq!(a.join().unwrap(), Ok(()));
        }
        r.join().unwrap();
        assert_eq!(t.outcome(), SEM_OK);
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

#[test]
fn thread_and_ticket_share_the_fifo_queue() {
    thread_and_ticket_in_one_queue(true);
}

#[test]
fn thread_and_ticket_share_the_default_queue() {
    thread_and_ticket_in_one_queue(false);
}

#[test]
fn submit_racing_a_release_never_completes_inside_the_submit() {
    // A release racing the submit may deposit its permit while the submit
    // holds the queue lock; the submit's unlock then hands it to the new
    // ticket itself. That must come back as `Acquired` (no completion), not
    // as a callback inside the submitting call.
    model(|| {
        let s = sem(0, 1, false);
        let t = Ticket::new();
        let r = {
            let s = s.clone();
            thread::spawn(move || s.release(1).unwrap())
        };
        IN_SUBMIT.with(|flag| flag.set(true));
        let result = t.submit(&s, 1, Wait::Forever);
        IN_SUBMIT.with(|flag| flag.set(false));
        r.join().unwrap();
        match result {
            Ok(Submitted::Acquired) => assert_eq!(t.calls.load(SeqCst), 0),
            Ok(Submitted::Pending) => assert_eq!(t.outcome(), SEM_OK),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.value(), 0);
        settled(&s);
    });
}

loom::thread_local! {
    /// Set while this thread is inside a submit (see the model above).
    static IN_SUBMIT: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

#[test]
fn fifo_queueing_thread_serves_a_deposit_made_after_a_barger_took_permits() {
    // W wants both permits of a FIFO semaphore and finds one. A release
    // frees the second one just before W takes the queue lock; a barger
    // (no queue yet, so the fast paths apply) takes one before W queues
    // itself (`PARKED|HANDOFF`), and gives it back while W still holds the
    // lock: a deposit. The budget is then back where W's lock found it, and
    // W's unlock must still walk for the deposit and hand W both permits
    // (contention.c's FIFO run hung so: the head fitting, nobody awake).
    // The race needs five preemptions; two threads keep that affordable.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(5);
    builder.check(|| {
        let s = sem(1, 2, true);
        let b = {
            let s = s.clone();
            thread::spawn(move || {
                s.release(1).unwrap();
                if s.try_acquire(1).is_ok() {
                    s.release(1).unwrap();
                }
            })
        };
        assert_eq!(s.acquire(2, Wait::Forever), Ok(()));
        b.join().unwrap();
        assert_eq!(s.value(), 0);
        s.release(2).unwrap();
        settled(&s);
    });
}
