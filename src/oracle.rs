//! The liveness oracle: what must hold of a semaphore's queue whenever the
//! semaphore is quiescent (no acquire or release in progress, only threads
//! asleep in the queue). Anything else is a lost wake-up: a thread asleep
//! while it could be served, or running threads kept out for nobody.
//!
//! The property, for the queue in arrival order with `count` free permits:
//! - nobody woken is still on the way (`promised == 0`), `PARKED` is set
//!   exactly when someone is queued, and a shut-down semaphore has nobody
//!   queued;
//! - FIFO mode: `HANDOFF` is set exactly when someone is queued, and the
//!   head does not fit (`n > count`); everyone behind it is held back by
//!   rule;
//! - default mode without `HANDOFF`: no queued waiter fits;
//! - default mode with `HANDOFF`: exactly one waiter is held for and does not
//!   fit; no waiter ahead of it fits; and if a waiter behind it would fit,
//!   some queued thread sleeps with the hold's deadline (a timekeeper), or
//!   the timer thread will look by then, so that the hold's lapse is
//!   noticed;
//! - the count of timekeepers matches the waiters that keep time.
//!
//! Checked at the end of every loom model, in the concurrent randomized
//! test (tests/oracle.rs) at quiescent points, and in the soak test.

use crate::policy::Waiter;

/// One queued waiter, as the oracle sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiting {
    pub waiter: Waiter,
}

/// A semaphore's queue and state, read at one moment under the queue's lock.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub fifo: bool,
    /// Holds never lapse (a test's setting): they need no timekeeper.
    pub endless_holds: bool,
    pub count: u64,
    pub parked: bool,
    pub handoff: bool,
    pub closed: bool,
    pub promised: u64,
    pub timekeepers: u64,
    /// The timer thread will look at the semaphore by the hold's deadline
    /// (it keeps the time of holds that only async waiters are behind).
    pub timer_keeps_hold: bool,
    /// In arrival order.
    pub queue: Vec<Waiting>,
}

/// Checks the property above; on failure, says what is wrong.
pub(crate) fn check(s: &Snapshot) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what} (state: {s:?})"));
    let queued = !s.queue.is_empty();
    if s.promised != 0 {
        return fail(format!(
            "{} permits promised to threads that are not running",
            s.promised
        ));
    }
    if s.parked != queued {
        return fail(format!(
            "PARKED is {} with {} queued",
            s.parked,
            s.queue.len()
        ));
    }
    if s.closed && queued {
        return fail("threads queued on a shut-down semaphore".into());
    }
    let keeping = s.queue.iter().filter(|w| w.waiter.keeps_time).count() as u64;
    if keeping != s.timekeepers {
        return fail(format!(
            "{} timekeepers counted, {keeping} queued",
            s.timekeepers
        ));
    }
    let fits = |w: &Waiting| w.waiter.n <= s.count;
    if s.fifo {
        if s.handoff != queued {
            return fail(format!(
                "FIFO: HANDOFF is {} with {} queued",
                s.handoff,
                s.queue.len()
            ));
        }
        if let Some(head) = s.queue.first().filter(|w| fits(w)) {
            return fail(format!(
                "FIFO head asks {} of {} free: lost wake-up",
                head.waiter.n, s.count
            ));
        }
        return Ok(());
    }
    let held: Vec<usize> = (0..s.queue.len())
        .filter(|&i| s.queue[i].waiter.held)
        .collect();
    if !s.handoff {
        if !held.is_empty() {
            return fail("a waiter is marked held without HANDOFF".into());
        }
        if let Some(i) = s.queue.iter().position(fits) {
            return fail(format!(
                "waiter {i} asks {} of {} free: lost wake-up",
                s.queue[i].waiter.n, s.count
            ));
        }
        return Ok(());
    }
    let [j] = held[..] else {
        return fail(format!(
            "HANDOFF set with {} held waiters: running threads kept out",
            held.len()
        ));
    };
    if let Some(i) = s.queue[..=j].iter().position(fits) {
        return fail(format!(
            "waiter {i} (held at {j}) asks {} of {} free: lost wake-up",
            s.queue[i].waiter.n, s.count
        ));
    }
    let kept = s.timekeepers > 0 || s.timer_keeps_hold;
    if !s.endless_holds && s.queue[j + 1..].iter().any(fits) && !kept {
        return fail(format!(
            "waiters behind the held waiter {j} fit, and nobody keeps the hold's time"
        ));
    }
    Ok(())
}
