//! The `extern "C"` functions that make process-shared semaphores: anonymous
//! (`sem_new_shared`) and named (`sem_open_named`, `sem_unlink_named`).
//! Every other `sem_*` function takes their handles as it takes any other
//! (`ffi.rs`); `sem_free` unmaps them. The memory is `shm.rs`'s and the
//! waiting `shared.rs`'s.

use core::ffi::{CStr, c_char, c_int};
use core::ptr;

use crate::errno::set_errno;
use crate::panic::guard;
use crate::semaphore::Semaphore;
use crate::status::{
    SEM_CREATE, SEM_EINVAL, SEM_ESYS, SEM_EXCL, SEM_FIFO, SEM_OK, SEM_RECOVER, SEM_SHARED_MAX,
};

/// A shared semaphore's parameters from C's integers (value, max, and the
/// flags, which are the managed mode of `recover.rs`), or an errno:
/// `EINVAL` unless `0 <= value <= max <= SEM_SHARED_MAX` and `flags` has no
/// bit but `SEM_FIFO` and `SEM_RECOVER`.
fn parameters(value: i64, max: i64, flags: u32) -> Result<(u64, u64, u32), c_int> {
    match (u64::try_from(value), u64::try_from(max)) {
        (Ok(value), Ok(max))
            if value <= max
                && max <= SEM_SHARED_MAX as u64
                && flags & !(SEM_FIFO | SEM_RECOVER) == 0 =>
        {
            Ok((value, max, flags))
        }
        _ => Err(libc::EINVAL),
    }
}

/// The handle, or NULL with errno set to `e`.
fn handle(result: Result<*mut Semaphore, c_int>) -> *mut Semaphore {
    result.unwrap_or_else(|e| {
        set_errno(e);
        ptr::null_mut()
    })
}

/// Creates an anonymous process-shared semaphore: one in shared memory that
/// this process and the children it `fork()`s after this call use through
/// the same handle (a child inherits it, at the same address). Its
/// semantics are those of `sem_new_ex(value, max, flags)`, across
/// processes: every `sem_*` function works on it (but async acquires, which
/// return `SEM_ENOTSUP`, and `sem_cancel`, which finds nothing), blocked
/// acquirers in any process spin briefly, then sleep on a shared futex, and
/// a release in any process wakes them. Differences from an in-process
/// semaphore:
/// - the maximum is at most `SEM_SHARED_MAX` (2^31 - 1);
/// - without `SEM_FIFO`, a running thread may take permits before the
///   sleepers a release woke for them (as with POSIX `sem_t`), and no
///   fairness hold applies; with it (below), arrival order, strictly;
/// - a process killed while blocked in an acquire leaves its registration
///   in the shared word (without `SEM_FIFO` or `SEM_RECOVER`): the count
///   stays right, but `sem_waiters` counts it and every later release
///   makes a wake-up system call (waking every sleeper, if the dead thread
///   wanted more than one permit);
/// - a process killed in the middle of a wake-up (a release between its
///   update and its wake, or a woken thread before it took its permit)
///   loses that wake-up; sleepers look at the count again every second,
///   which bounds the delay this causes. Past 65,535 sleepers (or 4,095
///   that want more than one permit) further threads poll every 1 ms;
/// - permits held by a process that dies are not given back (as with
///   POSIX semaphores), unless `flags` has `SEM_RECOVER` (below);
/// - trust: every process that can write the semaphore's memory (for a
///   named one, every user its `mode` lets open it) can break it (make its
///   count wrong, or its waiters wait), though not make this process
///   follow a pointer from there; share it only with processes you trust.
///
/// `SEM_RECOVER` (crash recovery): the net permits a process took through
/// a handle and did not give back (acquired less released; nothing if
/// negative) return to the count when that process dies or frees the
/// handle, clamped to `max` (the SysV `SEM_UNDO` rule; release by anyone
/// stays legal). Every handle (each process that opens or inherits it)
/// takes one of `SEM_RECOVER_SLOTS` slots, and counts by handle: a process
/// with two handles of one semaphore should release through the handle it
/// acquired through (what one took and the other gave back would come
/// back on its death). Death is proven by the kernel, never guessed: each
/// slot is locked (an open-file-description lock) through a file
/// description of its handle's own, which only closing that description
/// releases: the process's exit however it dies, `exec` (the descriptor is
/// close-on-exec), `sem_free`, or the program closing the descriptor
/// itself (a daemon's close-everything loop, or `dup2` over its number:
/// that counts as the handle's death, its permits come back, its waiters
/// leave the semaphore, and once a scan (any handle's, in any process) has
/// seen that, every call on the handle, from every thread and in children
/// it forks, returns `SEM_EBUSY`: free it, which closes nothing that is not
/// its own, and open another); the lock lives on a description of its own,
/// not the one the mapping was made through (a forked child inherits the
/// mapping, which keeps that one open); a `fork()`ed child gets a
/// description of its own (through
/// `/proc/self/fd`). Permits of a dead process are found by
/// the next acquire that finds too few (at most every 10 ms) and by
/// sleepers, who look every 100 ms: waiters get them within about 0.1 s
/// of the death, with nobody doing anything special. The acquires
/// that take them return `SEM_RECOVERED` instead of `SEM_OK` (until as
/// many permits as came back were taken): what they protected may need
/// repair. A process killed in the middle of any call leaves the semaphore
/// consistent: every change is made under a robust mutex with a journal
/// that the next caller completes or undoes. The costs: each call takes
/// that mutex (no system call while it is free; a process stopped inside a
/// call, by `SIGSTOP` or a debugger, holds it until it runs again: then
/// releases and untimed acquires wait for it, non-blocking acquires wait
/// 10 ms for it and return `SEM_TIMEDOUT`, and timed ones wait for it until
/// their deadline (at least 10 ms), unless they had registered to sleep
/// already: they must take it to leave);
/// `sem_release` is no longer async-signal-safe (from a signal handler
/// that interrupted a call on the same semaphore in this thread, through
/// any handle, while that call holds the lock, it returns `SEM_EBUSY`); a
/// process that dies while registered as a sleeper no longer stays
/// counted.
///
/// `SEM_FIFO` (arrival order, as in-process): blocked acquirers, in every
/// process, are served strictly in the order they started to wait; a
/// waiter that does not fit holds everyone behind it back, and
/// `sem_try_acquire` and `sem_drain` take nothing while anyone waits. It
/// uses the slots, mutex and costs of `SEM_RECOVER` (with or without that
/// flag): a process that dies while waiting leaves the queue (found within
/// about 10 ms once it is the head and could be served), so it cannot
/// block it. At most 128 threads are queued at once; more wait outside the
/// queue and enter it, in no particular order, as entries free up.
///
/// Returns a new handle, owned by this process (and by each child that
/// inherits it) and freed with `sem_free`, which unmaps this process's
/// view: the memory goes when every process has freed it or exited. On
/// failure returns NULL with errno: `EINVAL` unless `0 <= value <= max <=
/// SEM_SHARED_MAX` and `flags` has no bit but `SEM_FIFO` and `SEM_RECOVER`;
/// `ENOMEM` if the memory could not be mapped (or, with `SEM_RECOVER` or
/// `SEM_FIFO`, `EMFILE`/`ENFILE`: it keeps a file descriptor open per
/// handle; and `ENOENT` if `/proc` is not mounted: it reopens its file
/// through `/proc/self/fd`); `ENOSYS` on platforms without shared semaphores (every platform
/// but Linux, today).
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// None: any value of the arguments is handled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_new_shared(value: i64, max: i64, flags: u32) -> *mut Semaphore {
    guard("sem_new_shared", || {
        handle(
            parameters(value, max, flags)
                .and_then(|(value, max, flags)| new_shared(value, max, flags)),
        )
    })
}

/// Opens the process-shared semaphore called `name`, or creates it: any
/// process that opens the same name gets the same semaphore (as POSIX
/// `sem_open`), with the semantics and differences of `sem_new_shared`.
///
/// - `name`: "/name" or "name", one path component of 1 to 250 bytes (no
///   other '/'). It names a file `/dev/shm/rsem.name`.
/// - `oflag`: 0 to open an existing semaphore only (errno `ENOENT` if there
///   is none); `SEM_CREATE` to create it if the name is free, else open it;
///   `SEM_CREATE | SEM_EXCL` to create it only (errno `EEXIST` if the name
///   is taken).
/// - `mode`: the permission bits of a created semaphore's file (such as
///   0600; the umask applies), which decide who else may open it.
/// - `value`, `max`, `flags`: as `sem_new_shared`; they must be valid even
///   when an existing semaphore is opened, whose own parameters are kept
///   (its `SEM_RECOVER` mode too, with or without the flag here).
///
/// A name always leads to a whole semaphore: it is given to the file only
/// after the semaphore in it is written, so a creator that dies half-way
/// leaves no name behind, and of two processes creating the same name at
/// once, one creates it and the other opens it. A name another user
/// created first is opened as theirs (the trust rule of `sem_new_shared`
/// applies): use `SEM_CREATE | SEM_EXCL` to be sure the semaphore is yours.
/// A process that truncates the file makes the others' accesses fault
/// (`SIGBUS`), as with POSIX named semaphores.
///
/// Returns a new handle, owned by the caller and freed with `sem_free`
/// (which does not remove the name: `sem_unlink_named` does). Each call
/// returns a handle of its own, at its own address, even for a name this
/// process has open already. On failure returns NULL with errno: `EINVAL`
/// (NULL or bad `name`; bad `oflag`, `mode`, `value`, `max` or `flags`; or
/// the file is not an rsem semaphore of this library's layout); `EAGAIN`
/// (a `SEM_RECOVER` or `SEM_FIFO` semaphore whose lock is unusable);
/// `ENOSPC` (a `SEM_RECOVER` or `SEM_FIFO` semaphore whose
/// `SEM_RECOVER_SLOTS` slots are all used by live handles); `ENOENT` (no
/// such name, or `/proc` is not mounted: a new file is named, and a
/// `SEM_RECOVER` or `SEM_FIFO` handle's file reopened, through
/// `/proc/self/fd`); `EEXIST`;
/// `EACCES`; `ELOOP` (the name is a symbolic link); `EOPNOTSUPP` or
/// `EISDIR` (`/dev/shm` cannot make unnamed files: `O_TMPFILE`); `EAGAIN`
/// (the name was created and removed by others 16 times while this call
/// tried to open it); `EMFILE`, `ENFILE`, `ENOMEM`, `ENOSPC` (resources);
/// `ENOSYS` on platforms without shared semaphores.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_open_named(
    name: *const c_char,
    oflag: u32,
    mode: u32,
    value: i64,
    max: i64,
    flags: u32,
) -> *mut Semaphore {
    if name.is_null() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: `name` is non-null and NUL-terminated, by the contract.
    let name = unsafe { CStr::from_ptr(name) };
    guard("sem_open_named", || {
        let oflag_ok = oflag & !(SEM_CREATE | SEM_EXCL) == 0
            && (oflag & SEM_EXCL == 0 || oflag & SEM_CREATE != 0);
        let checked = match (oflag_ok, mode & !0o777) {
            (true, 0) => parameters(value, max, flags),
            _ => Err(libc::EINVAL),
        };
        handle(
            checked
                .and_then(|(value, max, flags)| open_named(name, oflag, mode, value, max, flags)),
        )
    })
}

/// Removes the name of a process-shared semaphore (as POSIX `sem_unlink`).
/// Handles already open keep working; the semaphore's memory goes when the
/// last of them is freed. A later `sem_open_named` with `SEM_CREATE` makes
/// a new semaphore under that name.
///
/// Returns `SEM_OK`; `SEM_EINVAL` if `name` is NULL or not a valid name
/// (see `sem_open_named`); `SEM_ESYS` with errno set if the system refused:
/// `ENOENT` (no such name), `EACCES`, or `ENOSYS` on platforms without
/// shared semaphores.
///
/// Thread-safety: may be called from any thread.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sem_unlink_named(name: *const c_char) -> c_int {
    if name.is_null() {
        return SEM_EINVAL;
    }
    // SAFETY: `name` is non-null and NUL-terminated, by the contract.
    let name = unsafe { CStr::from_ptr(name) };
    guard("sem_unlink_named", || match unlink_named(name) {
        Ok(()) => SEM_OK,
        Err(libc::EINVAL) => SEM_EINVAL,
        Err(e) => {
            set_errno(e);
            SEM_ESYS
        }
    })
}

#[cfg(all(target_os = "linux", not(loom)))]
use crate::shm::{create_anonymous as new_shared, open_named, unlink_named};

// Other platforms have no shared semaphores yet: a clear errno, not a
// missing symbol.
#[cfg(not(all(target_os = "linux", not(loom))))]
fn new_shared(_value: u64, _max: u64, _flags: u32) -> Result<*mut Semaphore, c_int> {
    Err(libc::ENOSYS)
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn open_named(
    _name: &CStr,
    _oflag: u32,
    _mode: u32,
    _value: u64,
    _max: u64,
    _flags: u32,
) -> Result<*mut Semaphore, c_int> {
    Err(libc::ENOSYS)
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn unlink_named(_name: &CStr) -> Result<(), c_int> {
    Err(libc::ENOSYS)
}
