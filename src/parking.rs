//! Where blocked threads sleep.
//!
//! A thin seam over `parking_lot_core`: the state machine in `semaphore.rs`
//! only parks and unparks through the names re-exported here, so the queue
//! behind them can be swapped (for a model checker) without touching it.
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

pub(crate) use parking_lot_core::{
    FilterOp, ParkResult, ParkToken, SpinWait, UnparkResult, UnparkToken, park, unpark_filter,
};
