//! Where blocked threads sleep.
//!
//! A thin seam over `parking_lot_core`: the state machine in `semaphore.rs`
//! only parks and unparks through the names exported here, so that under
//! `--cfg loom` the same state machine runs on a model of the parking lot
//! (below) and loom can explore its interleavings.
//!
//! The contract the state machine relies on (parking_lot_core 0.10):
//! - `park(key, validate, before_sleep, timed_out, token, deadline)` runs
//!   `validate` under the queue's bucket lock; the thread is queued only if it
//!   returns true. A thread that is queued can leave only by being unparked or
//!   by timing out, and both happen under the same bucket lock.
//! - `unpark_filter(key, filter, callback)` visits the queued threads of `key`
//!   in arrival order under the bucket lock, then runs `callback` under the
//!   lock, and only then wakes the chosen threads, each with the callback's
//!   `UnparkToken`. A thread it dequeued returns `Unparked` even if its
//!   deadline passed meanwhile.
//! - Callbacks must not panic (it aborts) and must not call back into the
//!   parking lot.

pub(crate) use parking_lot_core::{FilterOp, ParkResult, ParkToken, UnparkToken};

#[cfg(not(loom))]
pub(crate) use parking_lot_core::{UnparkResult, park, unpark_filter};

#[cfg(loom)]
pub use model::fire_timeouts;
#[cfg(loom)]
pub(crate) use model::{UnparkResult, park, unpark_filter};

/// A model of `parking_lot_core` for loom: one queue behind one loom mutex
/// (a single "bucket"), with the same contract as the real one. Time does not
/// exist in a loom model, so a timed park never times out by itself: a test
/// thread calls [`fire_timeouts`] to play the clock, and loom explores every
/// point at which the timeout can race the other threads. From then on the
/// deadlines on that key have passed: a later timed park times out at once
/// (after queueing, as `parking_lot_core` does with a past deadline).
#[cfg(loom)]
mod model {
    use super::{FilterOp, ParkResult, ParkToken, UnparkToken};
    use loom::sync::{Arc, Condvar, Mutex};
    use std::time::Instant;

    /// As `parking_lot_core::UnparkResult` (which cannot be built outside it).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct UnparkResult {
        pub unparked_threads: usize,
        pub have_more_threads: bool,
    }

    #[derive(Default)]
    struct SlotState {
        unparked: Option<UnparkToken>,
        timeout_fired: bool,
    }

    /// One parked thread's mailbox.
    #[derive(Default)]
    struct Slot {
        state: Mutex<SlotState>,
        wake: Condvar,
    }

    struct Entry {
        key: usize,
        token: ParkToken,
        timed: bool,
        slot: Arc<Slot>,
    }

    struct Lot {
        queue: Vec<Entry>,
        /// Keys whose deadlines have passed.
        expired: Vec<usize>,
    }

    loom::lazy_static! {
        static ref QUEUE: Mutex<Lot> = Mutex::new(Lot { queue: Vec::new(), expired: Vec::new() });
    }

    pub unsafe fn park(
        key: usize,
        validate: impl FnOnce() -> bool,
        before_sleep: impl FnOnce(),
        timed_out: impl FnOnce(usize, bool),
        park_token: ParkToken,
        deadline: Option<Instant>,
    ) -> ParkResult {
        let slot = Arc::new(Slot::default());
        {
            let mut lot = QUEUE.lock().unwrap();
            if !validate() {
                return ParkResult::Invalid;
            }
            if deadline.is_some() && lot.expired.contains(&key) {
                slot.state.lock().unwrap().timeout_fired = true;
            }
            lot.queue.push(Entry {
                key,
                token: park_token,
                timed: deadline.is_some(),
                slot: slot.clone(),
            });
        }
        before_sleep();
        {
            let mut state = slot.state.lock().unwrap();
            loop {
                if let Some(token) = state.unparked {
                    return ParkResult::Unparked(token);
                }
                if state.timeout_fired {
                    break;
                }
                state = slot.wake.wait(state).unwrap();
            }
        }
        // Timed out: leave the queue under its lock, unless an unparker took
        // us out first (then we were unparked after all).
        let mut lot = QUEUE.lock().unwrap();
        let queue = &mut lot.queue;
        match queue.iter().position(|e| Arc::ptr_eq(&e.slot, &slot)) {
            Some(at) => {
                queue.remove(at);
                let was_last = !queue.iter().any(|e| e.key == key);
                timed_out(key, was_last);
                ParkResult::TimedOut
            }
            None => {
                drop(lot);
                let token = slot.state.lock().unwrap().unparked;
                ParkResult::Unparked(token.expect("dequeued threads carry a token"))
            }
        }
    }

    pub unsafe fn unpark_filter(
        key: usize,
        mut filter: impl FnMut(ParkToken) -> FilterOp,
        callback: impl FnOnce(UnparkResult) -> UnparkToken,
    ) -> UnparkResult {
        let mut lot = QUEUE.lock().unwrap();
        let queue = &mut lot.queue;
        let mut chosen = Vec::new();
        let mut result = UnparkResult::default();
        let mut i = 0;
        while i < queue.len() {
            if queue[i].key != key {
                i += 1;
                continue;
            }
            match filter(queue[i].token) {
                FilterOp::Unpark => chosen.push(queue.remove(i)),
                FilterOp::Skip => {
                    result.have_more_threads = true;
                    i += 1;
                }
                FilterOp::Stop => {
                    result.have_more_threads = true;
                    break;
                }
            }
        }
        result.unparked_threads = chosen.len();
        let token = callback(result);
        for entry in &chosen {
            entry.slot.state.lock().unwrap().unparked = Some(token);
        }
        drop(lot);
        for entry in &chosen {
            entry.slot.wake.notify_one();
        }
        result
    }

    /// Plays the clock: the deadlines of every timed park on `key`, now and
    /// later, have passed.
    pub fn fire_timeouts(key: usize) {
        let mut lot = QUEUE.lock().unwrap();
        lot.expired.push(key);
        for entry in lot.queue.iter().filter(|e| e.key == key && e.timed) {
            entry.slot.state.lock().unwrap().timeout_fired = true;
            entry.slot.wake.notify_one();
        }
    }
}
