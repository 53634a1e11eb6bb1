//! The `extern "C"` functions of a wait that keeps its place between calls
//! (`sem_acquire_slice`, `sem_acquire_leave`), for callers that must look
//! at something else now and then while they wait on a process-shared
//! semaphore: a language runtime looking for signals, as Python does every
//! 50 ms. `sem_acquire_until` in a loop would give up a `SEM_FIFO`
//! semaphore's turn at every timeout. The waiting is `recover.rs`'s
//! (`Place`); the caller's memory holds where the wait stands.

use core::ffi::c_int;
use core::ptr;
use std::time::Instant;

use crate::completion::Ticket;
use crate::deadline::{Wait, from_deadline_ns};
use crate::ffi::{permits_to_acquire, with};
use crate::semaphore::Semaphore;
use crate::status::{AcquireError, SEM_EINVAL, SEM_ENOTSUP, SEM_OK, SEM_PENDING, acquire_code};

/// What a place says, in its first 48 bytes (unaligned: a `uint64_t` array
/// may be 4-aligned): `MAGIC`, the semaphore's address, `n`, whether the
/// wait is registered as a sleeper, its ticket (0: none) and its slot's
/// tag. All zeros: no wait.
type Record = [u64; 6];

const MAGIC: u64 = u64::from_le_bytes(*b"rsem-plc");

/// The record at `place`.
///
/// # Safety
/// `place` is valid for reads of a `Ticket`.
unsafe fn read(place: *const Ticket) -> Record {
    // SAFETY: a `Ticket` is 128 bytes, the record 40; unaligned read.
    unsafe { ptr::read_unaligned(place.cast::<Record>()) }
}

/// Writes `record` to `place`.
///
/// # Safety
/// `place` is valid for writes of a `Ticket`.
unsafe fn write(place: *mut Ticket, record: Record) {
    // SAFETY: as `read`.
    unsafe { ptr::write_unaligned(place.cast::<Record>(), record) }
}

/// Where a wait stands: registered, its ticket (0: none), its slot's tag.
type Kept = (bool, u64, u64);

/// The wait that `record` holds for `sem` and `n`: all zeros for a new one,
/// `None` if it is another semaphore's or another count's, or not a record
/// at all.
fn kept(record: Record, sem: &Semaphore, n: u64) -> Option<Kept> {
    match record {
        [0, 0, 0, 0, 0, 0] => Some((false, 0, 0)),
        [MAGIC, address, m, registered @ (0 | 1), ticket, tag]
            if address == ptr::from_ref(sem) as u64 && m == n =>
        {
            Some((registered == 1, ticket, tag))
        }
        _ => None,
    }
}

/// Waits for `n` permits of a process-shared semaphore until `until_ns` (on
/// the clock of `sem_clock_ns()`) at the latest, keeping its place when that
/// time comes first, for the caller to come back to: so a caller can look
/// at something else now and then while it waits (a language runtime
/// checking for signals, as Python's binding does every 50 ms) without
/// losing its turn on a `SEM_FIFO` semaphore, as a loop of
/// `sem_acquire_until` would at every timeout.
///
/// `place` is the caller's memory (an `rsem_ticket`), all zeros when a wait
/// begins; it holds where the wait stands between calls.
///
/// Returns `SEM_OK` or `SEM_RECOVERED` (see `sem_acquire`) once the permits
/// were taken; `SEM_PENDING` if `until_ns` came first: the wait goes on
/// (on a `SEM_FIFO` semaphore, registered and queued: while its caller is
/// away, a turn that comes to it waits for it, and everyone behind it too),
/// and the caller must either call again with the same `sem`, `n` and
/// `place` (with any `until_ns`) or end it with `sem_acquire_leave`. Every
/// other return ends the wait: `SEM_ECLOSED` (shut down), `SEM_EBUSY` (see
/// `sem_acquire`), `SEM_EINVAL` if `sem` or `place` is NULL, `n` is below 1
/// or above `sem_max(sem)`, or `*place` is neither all zeros nor this
/// semaphore's wait for `n`, or is a wait that is not this handle's any
/// more (a place inherited by a `fork()`ed child, copied, or kept from a
/// freed handle); `SEM_ENOTSUP` if `sem` is not process-shared
/// (in-process waits keep their place with `sem_acquire_async` or
/// `sem_acquire_notify`). `SEM_TIMEDOUT` is never returned: the caller owns
/// the deadline, and leaves when it passes. Once the wait ended, `*place`
/// is all zeros again.
///
/// Thread-safety: may be called from any thread, but not from a signal
/// handler; a place serves one wait, by one thread at a time (calls with
/// the same place must not overlap; do not copy one). A place left pending holds the queue
/// up once it is its turn, until its process exits: always come back or
/// leave.
///
/// # Safety
/// `sem` must be NULL or a handle returned by `sem_new*` or
/// `sem_open_named` that has not been freed; `place` must be NULL or valid
/// for reads and writes of an `rsem_ticket`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_slice(
    sem: *mut Semaphore,
    n: i64,
    until_ns: i64,
    place: *mut Ticket,
) -> c_int {
    if place.is_null() {
        return SEM_EINVAL;
    }
    let body = |s: &Semaphore| {
        // SAFETY: `place` is non-null and valid, by the contract.
        let record = unsafe { read(place) };
        if !s.is_shared() {
            return SEM_ENOTSUP;
        }
        let Some(n) = permits_to_acquire(s, n) else {
            return SEM_EINVAL;
        };
        let Some(wait) = kept(record, s, n) else {
            return SEM_EINVAL;
        };
        // (A deadline already past is a last look, not a try: a kept
        // wait is registered, and must leave through the lock.)
        let until = match from_deadline_ns(until_ns) {
            Wait::Never => Wait::Until(Instant::now()),
            until => until,
        };
        let (result, (registered, ticket, tag)) = backend::slice(s, n, until, wait);
        let record = match result {
            Err(AcquireError::TimedOut) => [
                MAGIC,
                ptr::from_ref(s) as u64,
                n,
                u64::from(registered),
                ticket,
                tag,
            ],
            _ => [0; 6],
        };
        // SAFETY: as above.
        unsafe { write(place, record) };
        match result {
            Err(AcquireError::TimedOut) => SEM_PENDING,
            other => acquire_code(other),
        }
    };
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe { with("sem_acquire_slice", sem, SEM_EINVAL, body) }
}

/// Ends a wait of `sem_acquire_slice` that returned `SEM_PENDING`, taking
/// nothing: it leaves the semaphore's queue (those behind it may go on), and
/// `*place` is all zeros again.
///
/// Returns `SEM_OK`, also if `*place` is all zeros or its wait ended
/// already (the handle lost its slot, or the place is stale: see
/// `sem_acquire_slice`); `SEM_EINVAL` if `sem` or `place` is NULL or
/// `*place` is not a wait of `sem`.
///
/// Thread-safety: as `sem_acquire_slice`.
///
/// # Safety
/// As `sem_acquire_slice`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_acquire_leave(sem: *mut Semaphore, place: *mut Ticket) -> c_int {
    if place.is_null() {
        return SEM_EINVAL;
    }
    let body = |s: &Semaphore| {
        // SAFETY: `place` is non-null and valid, by the contract.
        let record = unsafe { read(place) };
        if record == [0; 6] {
            return SEM_OK;
        }
        let Some(wait) = kept(record, s, record[2]) else {
            return SEM_EINVAL;
        };
        backend::leave(s, record[2], wait);
        // SAFETY: as above.
        unsafe { write(place, [0; 6]) };
        SEM_OK
    };
    // SAFETY: `sem` is NULL or live, by the caller's contract.
    unsafe { with("sem_acquire_leave", sem, SEM_EINVAL, body) }
}

#[cfg(all(target_os = "linux", not(loom)))]
mod backend {
    use super::*;
    use crate::recover::Place;

    /// Waits (see `sem_acquire_slice`), going on from `wait`; the result,
    /// and where the wait stands if it goes on.
    pub(super) fn slice(
        s: &Semaphore,
        n: u64,
        until: Wait,
        (registered, ticket, tag): Kept,
    ) -> (Result<(), AcquireError>, Kept) {
        let mut place = place((registered, ticket, tag));
        let result = match crate::shm::owner(s) {
            Some(owner) => s.recover_wait(&owner, n, until, Some(&mut place)),
            // A plain shared semaphore has no queue: no place to keep.
            None => s.acquire(n, until),
        };
        (
            result,
            (place.registered, place.ticket.unwrap_or(0), place.tag),
        )
    }

    /// Ends a kept wait.
    pub(super) fn leave(s: &Semaphore, n: u64, wait: Kept) {
        if let Some(owner) = crate::shm::owner(s) {
            s.recover_abandon(&owner, n, place(wait));
        }
    }

    /// The wait a record holds, as `recover.rs` keeps it.
    fn place((registered, ticket, tag): Kept) -> Place {
        Place {
            registered,
            ticket: (ticket != 0).then_some(ticket),
            tag,
        }
    }
}

/// No shared semaphores here (`is_shared` is false): never called.
#[cfg(not(all(target_os = "linux", not(loom))))]
mod backend {
    use super::*;

    pub(super) fn slice(
        _s: &Semaphore,
        _n: u64,
        _until: Wait,
        _wait: Kept,
    ) -> (Result<(), AcquireError>, Kept) {
        (Err(AcquireError::Busy), (false, 0, 0))
    }

    pub(super) fn leave(_s: &Semaphore, _n: u64, _wait: Kept) {}
}
