//! The spin lock of the process-wide registries (`fork.rs`, `timer.rs`):
//! held only for a few list operations, and a `fork()` child handler can
//! free it with a store whatever state the parent's threads left it in.

use core::sync::atomic::AtomicBool;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

pub(crate) struct SpinLock(AtomicBool);

impl SpinLock {
    pub(crate) const fn new() -> Self {
        SpinLock(AtomicBool::new(false))
    }

    /// Takes the lock, yielding while another thread holds it.
    pub(crate) fn lock(&self) {
        while self
            .0
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    /// Releases it (also what a fork child handler does for a holder that
    /// does not exist in the child).
    pub(crate) fn unlock(&self) {
        self.0.store(false, Release);
    }
}
