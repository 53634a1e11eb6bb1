//! How an async waiter learns its outcome: the caller's ticket, and the
//! delivery of its one completion (a callback on the completing thread, or
//! a notifier that an event loop drains on its own thread).
//!
//! A ticket is memory the caller owns (`rsem_ticket`, 128 bytes): the
//! waiter's queue record lives in it while it is pending, so rsem allocates
//! nothing for an async acquire, and a release that completes one from a
//! signal handler calls no allocator. The record is written by
//! `Semaphore::acquire_async`, changed only under the semaphore's queue lock
//! while it is queued, and read one last time by `Completion::deliver` after
//! the thread that dequeued it has released that lock. Whoever dequeues a
//! record under the lock (a walk, `shutdown`, `cancel`, an expiry) delivers
//! its completion, so it is delivered exactly once.

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicI32, AtomicPtr};

use crate::notifier::Notifier;
use crate::semaphore::WaitRecord;

/// Memory for one async acquire, owned by the caller: it must stay valid and
/// untouched from the call that returned `SEM_PENDING` until its completion
/// was delivered (the callback was called, or `sem_notifier_drain` returned
/// it). Its contents are private to rsem. (Any alignment of `uint64_t`
/// will do: rsem places its record at the first 8-byte boundary inside.)
#[repr(C)]
pub struct Ticket {
    pub rsem_private: [u64; 16],
}

impl Ticket {
    /// Where the queue record of the ticket at `ticket` lives: its first
    /// 8-byte boundary (a `uint64_t` array may be 4-aligned on 32-bit
    /// targets). Only arithmetic: `ticket` is not read.
    pub(crate) fn record(ticket: *const Ticket) -> *mut WaitRecord {
        let address = ticket as usize;
        let pad = address.wrapping_neg() % core::mem::align_of::<WaitRecord>();
        ticket
            .cast::<u8>()
            .wrapping_add(pad)
            .cast::<WaitRecord>()
            .cast_mut()
    }
}

// A ticket holds a queue record at its first aligned address: check that it
// fits, on every target.
#[cfg(not(loom))]
const _: () = assert!(
    core::mem::size_of::<WaitRecord>() + core::mem::align_of::<WaitRecord>()
        - core::mem::align_of::<Ticket>()
        <= core::mem::size_of::<Ticket>()
);

/// An async acquire's callback: `ctx` as given, the ticket, and the outcome
/// (`SEM_OK`: the permits are the caller's; `SEM_TIMEDOUT`; `SEM_ECLOSED`;
/// `SEM_CANCELLED`).
/// (An `Option`: C may pass NULL, which is refused.)
pub type Callback =
    Option<unsafe extern "C" fn(ctx: *mut c_void, ticket: *mut Ticket, status: c_int)>;

/// A callback that is not NULL.
pub(crate) type CallbackFn = unsafe extern "C" fn(*mut c_void, *mut Ticket, c_int);

/// Where a completion goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum How {
    /// Called on the completing thread, after rsem released its locks.
    Callback(CallbackFn),
    /// Queued on the notifier, which an event loop drains.
    Notify(*const Notifier),
    /// Rust tests and loom models: called like a C callback.
    Rust(fn(ctx: *mut c_void, status: c_int)),
}

/// The completion part of an async waiter's record (inside its ticket).
#[derive(Debug)]
pub(crate) struct Completion {
    how: How,
    ctx: *mut c_void,
    ticket: *mut Ticket,
    /// Notifier mode: the outcome, stored before the completion is queued.
    pub(crate) status: AtomicI32,
    /// Notifier mode: the next completion in the notifier's list.
    pub(crate) next_done: AtomicPtr<Completion>,
}

impl Completion {
    pub(crate) fn new(how: How, ctx: *mut c_void, ticket: *mut Ticket) -> Self {
        Completion {
            how,
            ctx,
            ticket,
            status: AtomicI32::new(0),
            next_done: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The caller's context pointer and ticket (for a notifier's drain).
    pub(crate) fn parts(&self) -> (*mut c_void, *mut Ticket) {
        (self.ctx, self.ticket)
    }

    /// Delivers the outcome `status`: calls the callback, or queues the
    /// completion on its notifier. Called exactly once per pending acquire,
    /// by the thread that dequeued it, with no rsem lock held.
    ///
    /// # Safety
    /// `this` must point to the completion of a record that was dequeued
    /// and not yet delivered (the caller's ticket is live until then). It is
    /// not touched after the callback starts or the completion is queued.
    pub(crate) unsafe fn deliver(this: *const Completion, status: c_int) {
        // SAFETY: live until delivered, by the contract above.
        let (how, ctx, ticket) = unsafe { ((*this).how, (*this).ctx, (*this).ticket) };
        match how {
            // SAFETY: a callback the caller gave for exactly this call, with
            // its own context and ticket; after it starts, the ticket is the
            // caller's again.
            How::Callback(callback) => unsafe { callback(ctx, ticket, status) },
            How::Notify(notifier) => {
                // SAFETY: live until queued; the notifier outlives every
                // pending completion (`sem_notifier_free` refuses while
                // any is pending).
                unsafe {
                    (*this).status.store(status, Relaxed);
                    Notifier::push(notifier, this);
                }
            }
            How::Rust(f) => f(ctx, status),
        }
    }
}
