//! The liveness oracle (src/oracle.rs) at work on real threads:
//! - the lost wake-ups of issue 11, staged exactly (fairness thresholds of
//!   zero, so that an overtaken waiter starves at once, and holds that never
//!   lapse unless the scenario says so);
//! - a concurrent randomized test: many threads, default and FIFO mode,
//!   multi-permit, timeouts and shutdown; every few rounds all threads stop
//!   at a barrier or block in the queue, and the oracle checks the queue at
//!   that quiescent moment.

use rsem::{AcquireError, COUNT_MAX, Semaphore, Wait};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const NEVER: Duration = Duration::MAX;

/// Waits until `threads` (all but `returned` of them) are queued, in one
/// snapshot, and checks the oracle on that snapshot: nothing is in progress
/// then. Fails the test if the oracle fails, or after 20 s.
fn quiescent_check(s: &Semaphore, threads: usize, returned: impl Fn() -> usize, what: &str) {
    let start = Instant::now();
    loop {
        let gone = returned();
        let (queued, verdict) = s.liveness();
        if queued + gone == threads {
            if let Err(e) = verdict {
                panic!("{what}: {e}");
            }
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never quiescent: {what}"
        );
        thread::yield_now();
    }
}

/// Checks the oracle once every thread has returned or sits in the queue
/// (the scenarios know which).
fn check_at_rest(s: &Semaphore, queued: usize) {
    quiescent_check(s, queued, || 0, "at rest");
}

/// Waits (yielding) until `cond` holds; fails the test after 20 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        thread::yield_now();
    }
}

fn in_ms(ms: u64) -> Wait {
    Wait::Until(Instant::now() + Duration::from_millis(ms))
}

/// A thread acquiring `n`; `done` counts it when it returns.
fn acquirer(
    s: &Arc<Semaphore>,
    n: u64,
    wait: Wait,
    done: &Arc<AtomicUsize>,
) -> thread::JoinHandle<Result<(), AcquireError>> {
    let (s, done) = (s.clone(), done.clone());
    thread::spawn(move || {
        let r = s.acquire(n, wait);
        done.fetch_add(1, SeqCst);
        r
    })
}

/// A semaphore whose overtaken waiters starve at once and whose holds last.
fn starving_at_once(value: u64) -> Arc<Semaphore> {
    Arc::new(
        Semaphore::with_fairness(
            value,
            COUNT_MAX,
            false,
            Duration::ZERO,
            Duration::ZERO,
            NEVER,
        )
        .unwrap(),
    )
}

#[test]
fn held_waiter_timing_out_lets_the_walk_reach_waiters_behind_a_misfit() {
    // Issue 11, first path: W1 (3) starving and held, W2 (5) never starving,
    // W3 (1); W1 times out. The walk on its way out must not stop at W2.
    let s = starving_at_once(0);
    let done = Arc::new(AtomicUsize::new(0));
    let w1 = acquirer(&s, 3, in_ms(300), &done);
    eventually("W1 queued", || s.queued() == 1);
    s.release(1).unwrap(); // W1 does not fit: passed over.
    let w2 = acquirer(&s, 5, Wait::Forever, &done);
    eventually("W2 queued", || s.queued() == 2);
    s.release(1).unwrap(); // Count 2: W1 is starving and held for.
    eventually("W2 back in the queue as the hold's timekeeper", || {
        s.queued() == 2
    });
    let w3 = acquirer(&s, 1, Wait::Forever, &done);
    eventually("W3 queued", || s.queued() == 3);
    check_at_rest(&s, 3);
    assert_eq!(s.value(), 2);
    assert_eq!(w1.join().unwrap(), Err(AcquireError::TimedOut));
    // W3 fits in the 2 free permits: it must be served now, not when W2
    // gives up (never).
    eventually("W3 served after W1 left", || done.load(SeqCst) == 2);
    assert_eq!(w3.join().unwrap(), Ok(()));
    assert_eq!(s.value(), 1);
    check_at_rest(&s, 1);
    s.release(4).unwrap();
    assert_eq!(w2.join().unwrap(), Ok(()));
    assert_eq!(s.value(), 0);
    check_at_rest(&s, 0);
}

#[test]
fn held_waiter_served_by_handoff_lets_the_walk_go_on() {
    // Issue 11, second path: W1 (3) held, W2 (3) never passed over, W3 (1);
    // release(3) hands W1 its 3; the 2 left must reach W3 past W2.
    let s = starving_at_once(0);
    let done = Arc::new(AtomicUsize::new(0));
    let w1 = acquirer(&s, 3, Wait::Forever, &done);
    eventually("W1 queued", || s.queued() == 1);
    s.release(1).unwrap();
    let w2 = acquirer(&s, 3, Wait::Forever, &done);
    eventually("W2 queued", || s.queued() == 2);
    s.release(1).unwrap(); // Hold for W1.
    eventually("W2 back in the queue", || s.queued() == 2);
    let w3 = acquirer(&s, 1, Wait::Forever, &done);
    eventually("W3 queued", || s.queued() == 3);
    s.release(3).unwrap();
    assert_eq!(w1.join().unwrap(), Ok(()));
    eventually("W3 served from the 2 left", || done.load(SeqCst) == 2);
    assert_eq!(w3.join().unwrap(), Ok(()));
    assert_eq!(s.value(), 1);
    check_at_rest(&s, 1);
    s.release(2).unwrap();
    assert_eq!(w2.join().unwrap(), Ok(()));
    check_at_rest(&s, 0);
}

#[test]
fn a_hold_that_cannot_be_met_lapses_and_running_threads_go_on() {
    // Issue 11, item 7: 2 permits circulate, a waiter asks for 3 (legal: the
    // maximum is 3). With real thresholds (1 ms), the hold for it lapses and
    // a thread looping on single permits keeps going. Without the bound this
    // loop stops at its first acquire after the hold begins, for ever.
    let s = Arc::new(Semaphore::new(2, 3, false).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let big = acquirer(&s, 3, Wait::Forever, &done);
    eventually("big queued", || s.queued() == 1);
    // Loop for 30 ms (a count could end before the 1 ms after which the big
    // waiter starves and the hold begins): many holds begin and lapse.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(30) {
        s.acquire(1, Wait::Forever).unwrap();
        s.release(1).unwrap();
    }
    assert_eq!(done.load(SeqCst), 0);
    s.release(1).unwrap(); // Now 3 circulate: the big waiter is served.
    assert_eq!(big.join().unwrap(), Ok(()));
    assert_eq!(s.value(), 0);
}

#[test]
fn a_hold_that_can_be_met_is_not_starved_by_single_permit_traffic() {
    // The other side of the bound: 2 permits, three threads looping on one
    // permit each (holding it briefly), and a waiter for both. It must be
    // served again and again, through holds that do not lapse while
    // releases keep coming.
    let s = Arc::new(Semaphore::new(2, 2, false).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    s.acquire(1, Wait::Forever).unwrap();
                    for _ in 0..2000 {
                        core::hint::spin_loop();
                    }
                    s.release(1).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..50 {
        s.acquire(2, Wait::Forever).unwrap();
        s.release(2).unwrap();
    }
    stop.store(true, SeqCst);
    for t in loops {
        t.join().unwrap();
    }
    assert_eq!(s.value(), 2);
}

/// One randomized round's worth of work for thread `id`.
fn random_ops(s: &Semaphore, id: u64, round: u64, stats: &AtomicU64) {
    let mut rng = (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03)
        | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..20 {
        let n = 1 + next() % 3;
        let r = match next() % 4 {
            0 => s.try_acquire(n),
            1 => s.acquire(n, in_ms(next() % 3)),
            2 => s.acquire(
                n,
                Wait::Until(Instant::now() + Duration::from_micros(next() % 500)),
            ),
            _ => s.acquire(n, in_ms(20)),
        };
        if r.is_ok() {
            stats.fetch_add(n, SeqCst);
            s.release(n).unwrap();
        }
    }
}

/// Many threads, random operations; at the end of each round every thread
/// either waits at the barrier or makes one last acquire that blocks without
/// limit. Once all of those are queued, nothing is in progress: the oracle
/// checks the queue, then a release of every permit they want lets the round
/// end (or, every fourth round, a shutdown does).
fn randomized(fifo: bool, fairness: (Duration, Duration, Duration)) {
    const THREADS: u64 = 6;
    const MAX: u64 = 6;
    let rounds = std::env::var("RSEM_ORACLE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for round in 0..rounds {
        let s = Arc::new(
            Semaphore::with_fairness(3, MAX, fifo, fairness.0, fairness.1, fairness.2).unwrap(),
        );
        let stats = Arc::new(AtomicU64::new(0));
        let blocked = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|id| {
                let (s, stats, blocked, barrier) =
                    (s.clone(), stats.clone(), blocked.clone(), barrier.clone());
                thread::spawn(move || {
                    random_ops(&s, id, round, &stats);
                    // The last acquire: hold everything first, so that it
                    // must block (the count stays below what it asks).
                    let want = 1 + (id + round) % 3;
                    barrier.wait(); // Random part done.
                    barrier.wait(); // Permits drained.
                    blocked.fetch_add(want, SeqCst);
                    s.acquire(want, Wait::Forever)
                })
            })
            .collect();
        // Everyone finished its random part; take every free permit so that
        // each last acquire blocks.
        barrier.wait();
        let drained = s.drain();
        assert_eq!(drained, 3, "round {round}: the count was not conserved");
        barrier.wait();
        quiescent_check(
            &s,
            THREADS as usize,
            || 0,
            &format!("round {round}, all blocked"),
        );
        // Give permits back in random-sized pieces, checking the oracle at
        // every quiescent moment in between (nobody woken still on the way).
        let want = blocked.load(SeqCst);
        if round % 4 == 3 {
            s.shutdown();
            for t in threads {
                assert_eq!(t.join().unwrap(), Err(AcquireError::Closed));
            }
            check_at_rest(&s, 0);
            continue;
        }
        let mut given = 0;
        while given < want {
            let piece = (1 + (round + given) % 4)
                .min(want - given)
                .min(MAX - s.value());
            if piece == 0 {
                thread::yield_now();
                continue;
            }
            s.release(piece).unwrap();
            given += piece;
            // Wait until no woken thread is on its way: every thread is
            // either returned or queued, and the queued ones sleep.
            let finished = || threads.iter().filter(|t| t.is_finished()).count();
            let what = format!("round {round}, {given} of {want} given");
            quiescent_check(&s, THREADS as usize, finished, &what);
        }
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        assert_eq!(s.value(), 0, "round {round}: permits created or lost");
        check_at_rest(&s, 0);
    }
}

#[test]
fn randomized_default_mode_real_thresholds() {
    randomized(
        false,
        (
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_millis(1),
        ),
    );
}

#[test]
fn randomized_default_mode_starving_at_once_holds_last() {
    randomized(false, (Duration::ZERO, Duration::ZERO, NEVER));
}

#[test]
fn randomized_default_mode_starving_at_once_holds_lapse_at_once() {
    randomized(false, (Duration::ZERO, Duration::ZERO, Duration::ZERO));
}

#[test]
fn randomized_fifo() {
    randomized(
        true,
        (
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_millis(1),
        ),
    );
}
