//! Status codes and flags of the C API, with their fixed numeric values.
//!
//! These values are part of the ABI: they never change between versions and
//! are the same on every platform. C passes them back to us only as plain
//! integers (`flags`), which are validated bit by bit, never transmuted.

use core::ffi::c_int;

/// Success: the permit(s) were acquired, or the release was done.
pub const SEM_OK: c_int = 0;

/// Not acquired: no permit was free for a non-blocking attempt, or none came
/// within the timeout. Nothing was taken.
pub const SEM_TIMEDOUT: c_int = 1;

/// Bad argument: NULL handle, NaN timeout, a permit count below 1 (or above
/// the semaphore's maximum for multi-permit acquires). Nothing was changed.
pub const SEM_EINVAL: c_int = -1;

/// The release would push the count past the semaphore's maximum. Nothing
/// was released.
pub const SEM_EOVERFLOW: c_int = -2;

/// The semaphore was shut down with `sem_shutdown`: acquires fail with this
/// code (releases keep working). Nothing was taken.
pub const SEM_ECLOSED: c_int = -3;

/// `sem_acquire_async` / `sem_acquire_notify`: the acquire is queued; its
/// completion (exactly one) comes later.
pub const SEM_PENDING: c_int = 2;

/// The outcome of an async acquire withdrawn by `sem_cancel`. Nothing was
/// taken.
pub const SEM_CANCELLED: c_int = 3;

/// `sem_notifier_free`: acquires submitted with the notifier have not been
/// drained yet. Nothing was freed. On a `SEM_RECOVER` or `SEM_FIFO` shared
/// semaphore, from any acquire or release: its lock is held by the calling
/// thread (a call from a signal handler that interrupted another call on
/// the same semaphore, through any handle), or the handle has no slot
/// (every one of `SEM_RECOVER_SLOTS` is used by a live handle; a forked
/// child that could not reopen the file, without `/proc` or out of
/// descriptors; or the handle is dead: its descriptor was closed by the
/// program and its slot reclaimed, after which every call on it returns
/// this). Nothing was taken or released.
pub const SEM_EBUSY: c_int = -4;

/// `sem_cancel`: the ticket is not pending on this semaphore (its
/// completion was delivered or is being delivered). Nothing was changed.
pub const SEM_ENOTPENDING: c_int = -5;

/// A resource the call needs could not be had (the timer thread could not
/// be started). Nothing was taken or queued.
pub const SEM_ENOMEM: c_int = -6;

/// The operation is not available for this semaphore: async acquires
/// (`sem_acquire_async`, `sem_acquire_notify`) of a process-shared
/// semaphore. Nothing was taken or queued.
pub const SEM_ENOTSUP: c_int = -7;

/// A system call failed (`sem_unlink_named`): `errno` says why. Nothing was
/// changed.
pub const SEM_ESYS: c_int = -8;

/// Acquired, on a `SEM_RECOVER` semaphore: the permits are the caller's,
/// as with `SEM_OK`, and some of them were given back for a process that
/// died holding them (or freed its handle holding them). Whatever they
/// protected may be half-changed and need repair, as after a robust
/// mutex's `EOWNERDEAD`. Release them as usual.
pub const SEM_RECOVERED: c_int = 4;

/// Flag for `sem_open_named`: create the semaphore if the name is free.
pub const SEM_CREATE: u32 = 1;

/// Flag for `sem_open_named`, with `SEM_CREATE`: fail (errno `EEXIST`)
/// if the name is taken.
pub const SEM_EXCL: u32 = 2;

/// Flag for `sem_new_ex`, `sem_new_shared` and `sem_open_named`: serve
/// blocked acquirers strictly in arrival order.
pub const SEM_FIFO: u32 = 1;

/// Flag for `sem_new_shared` and `sem_open_named`: give the net permits a
/// process took back when it dies (see `sem_new_shared`).
pub const SEM_RECOVER: u32 = 2;

/// How many handles (processes, usually) may use one `SEM_RECOVER`
/// semaphore at a time.
pub const SEM_RECOVER_SLOTS: i64 = 128;

/// Every flag bit `sem_new_ex` understands; other bits are refused.
pub(crate) const KNOWN_FLAGS: u32 = SEM_FIFO;

/// The largest count and the largest maximum a semaphore can have, on every
/// platform: 2^60 - 1.
pub const SEM_COUNT_MAX: i64 = 0x0FFF_FFFF_FFFF_FFFF;

/// The largest maximum (and count) of a process-shared semaphore
/// (`sem_new_shared`, `sem_open_named`): 2^31 - 1, as glibc's `SEM_VALUE_MAX`.
pub const SEM_SHARED_MAX: i64 = 0x7FFF_FFFF;

/// Why an acquire did not take its permits (the Rust side of the codes above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireError {
    /// No permit came in time: `SEM_TIMEDOUT`.
    TimedOut,
    /// The semaphore is shut down: `SEM_ECLOSED`.
    Closed,
    /// Not a failure: the permits were taken, some of them given back for
    /// a dead process (`SEM_RECOVERED`; `SEM_RECOVER` semaphores only).
    Recovered,
    /// The lock of a `SEM_RECOVER` semaphore could not be taken, or its
    /// handle has no slot: `SEM_EBUSY`. Nothing was taken.
    Busy,
    /// A wait to go on with (`sem_acquire_slice`) that is not one of this
    /// handle's any more: `SEM_EINVAL`. Nothing was taken.
    Invalid,
}

/// Why a release did not add its permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The count would pass the maximum: `SEM_EOVERFLOW`.
    Overflow,
    /// As `AcquireError::Busy`: `SEM_EBUSY`. Nothing was released.
    Busy,
}

impl AcquireError {
    /// The C status code of this error.
    pub const fn code(self) -> c_int {
        match self {
            AcquireError::TimedOut => SEM_TIMEDOUT,
            AcquireError::Closed => SEM_ECLOSED,
            AcquireError::Recovered => SEM_RECOVERED,
            AcquireError::Busy => SEM_EBUSY,
            AcquireError::Invalid => SEM_EINVAL,
        }
    }
}

impl ReleaseError {
    /// The C status code of this error.
    pub const fn code(self) -> c_int {
        match self {
            ReleaseError::Overflow => SEM_EOVERFLOW,
            ReleaseError::Busy => SEM_EBUSY,
        }
    }
}

/// The C status code of an acquire's result.
pub const fn acquire_code(result: Result<(), AcquireError>) -> c_int {
    match result {
        Ok(()) => SEM_OK,
        Err(e) => e.code(),
    }
}

/// The C status code of a release's result.
pub const fn release_code(result: Result<(), ReleaseError>) -> c_int {
    match result {
        Ok(()) => SEM_OK,
        Err(e) => e.code(),
    }
}
