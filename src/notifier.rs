//! A notifier: where async acquires complete for an event loop that must not
//! be called from other threads (Node, asyncio, any single-threaded loop).
//!
//! Completed tickets are pushed onto a lock-free list (a Treiber stack: one
//! compare-and-swap, async-signal-safe), and the first push onto an empty
//! list makes a file descriptor readable: an `eventfd` on Linux, a pipe on
//! other Unix systems. The loop polls that descriptor and drains the
//! completions in batches on its own thread (`sem_notifier_drain`).
//! Windows gets no descriptor (`sem_notifier_fd` returns -1): a loop there
//! drains on its own schedule, or uses callbacks.
//!
//! Push and drain race only through `head`, `signalled` and the descriptor:
//! - push: link onto `head`; then, unless `signalled` was already set (or
//!   the notifier is quiet, see below), set it and write the descriptor;
//! - drain (one at a time): if `signalled` is set, clear the descriptor and
//!   then the flag; then take the whole list. While the flag is set no push
//!   writes, so every write belongs to a set flag and is cleared by the
//!   next drain; a push after the take finds the flag clear and signals
//!   again; a push between the flag's clearing and the take is taken now
//!   (its signal is a spurious wake-up later, cleared by the next drain).
//!   So no completion is ever left without a signal, the descriptor is
//!   never left readable with nothing to drain after a drain, and a drain
//!   with nothing signalled makes no system call.
//! - quiet (`sem_notifier_quiet`): while the loop's own thread releases
//!   and then drains at once, pushes skip the signal (no `write`, no
//!   wake-up of the loop later): the drain that follows takes them.
//!
//! `pending` counts acquires submitted through this notifier and not yet
//! drained, and `pushing` the pushes in progress (raised before a push
//! publishes its completion, lowered as its last access):
//! `sem_notifier_free` refuses while either is non-zero, so a completion
//! never meets a freed notifier, even when the loop drains it (and frees
//! the notifier) between the push's compare-and-swap and its `write`.

use core::ffi::c_int;
use core::ptr;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};
use std::collections::VecDeque;
use std::sync::Mutex;

use crate::completion::Completion;

/// A notifier (`rsem_notifier` in C).
#[derive(Debug)]
pub struct Notifier {
    /// Completions not yet taken by a drain, most recent first.
    head: AtomicPtr<Completion>,
    /// Acquires submitted with this notifier and not yet drained.
    pending: AtomicU64,
    /// Pushes in progress.
    pushing: AtomicU64,
    /// The descriptor was written since the last drain cleared it.
    signalled: AtomicBool,
    /// `sem_notifier_quiet` calls in force (pushes do not signal).
    quiet: AtomicU32,
    /// Completions taken from `head` that a drain had no room for, oldest
    /// first (only drains touch it).
    backlog: Mutex<VecDeque<Backlogged>>,
    /// Readable while completions wait (-1: none, on Windows).
    read_fd: c_int,
    /// Written to signal (the same as `read_fd` for an eventfd).
    write_fd: c_int,
}

#[derive(Debug)]
struct Backlogged(*const Completion);
// SAFETY: a completion in the backlog belongs to the notifier until a drain
// hands it out; only drains, under the backlog's mutex, touch it.
unsafe impl Send for Backlogged {}

/// One delivered completion, as `sem_notifier_drain` returns it
/// (`rsem_completion` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Done {
    /// The ticket given to `sem_acquire_notify`; the caller's again.
    pub ticket: *mut crate::completion::Ticket,
    /// The `ctx` given with it.
    pub ctx: *mut core::ffi::c_void,
    /// The outcome: `SEM_OK` (the permits are the caller's),
    /// `SEM_TIMEDOUT`, `SEM_ECLOSED` or `SEM_CANCELLED`.
    pub status: c_int,
}

impl Notifier {
    /// A new notifier; `None` if no descriptor could be made (errno says why).
    pub(crate) fn new() -> Option<Self> {
        let (read_fd, write_fd) = descriptors()?;
        Some(Notifier {
            head: AtomicPtr::new(ptr::null_mut()),
            pending: AtomicU64::new(0),
            pushing: AtomicU64::new(0),
            signalled: AtomicBool::new(false),
            quiet: AtomicU32::new(0),
            backlog: Mutex::new(VecDeque::new()),
            read_fd,
            write_fd,
        })
    }

    /// The descriptor to poll for reading, or -1.
    pub(crate) fn fd(&self) -> c_int {
        self.read_fd
    }

    /// Counts an acquire submitted with this notifier.
    pub(crate) fn submitted(&self) {
        self.pending.fetch_add(1, Relaxed);
    }

    /// An acquire submitted with this notifier completed at once (no
    /// completion will come).
    pub(crate) fn withdrawn(&self) {
        self.pending.fetch_sub(1, Relaxed);
    }

    /// Whether acquires submitted here have not been drained yet.
    pub(crate) fn busy(&self) -> bool {
        // `pending` first: once a drain took the last completion, every push
        // had raised `pushing` (before its CAS, which the drain followed).
        self.pending.load(Acquire) != 0 || self.pushing.load(Acquire) != 0
    }

    /// Queues a completion and signals the descriptor if the list was
    /// empty. Async-signal-safe: a compare-and-swap and a `write`.
    ///
    /// # Safety
    /// `this` must be a live notifier and `done` a dequeued completion that
    /// is not in any list.
    pub(crate) unsafe fn push(this: *const Notifier, done: *const Completion) {
        // SAFETY: live, by the contract (a notifier outlives its pending
        // completions).
        let n = unsafe { &*this };
        n.pushing.fetch_add(1, AcqRel);
        let mut head = n.head.load(Relaxed);
        loop {
            // SAFETY: `done` is ours until the CAS publishes it.
            unsafe { (*done).next_done.store(head, Relaxed) };
            // Release: a drain that takes the list sees the completion's
            // fields (and what the completing thread did before). SeqCst:
            // see `quiet` below.
            match n
                .head
                .compare_exchange_weak(head, done.cast_mut(), SeqCst, Relaxed)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        // AcqRel: pairs with the drain's clearing swap (a push whose
        // completion a drain did not take sees it cleared and signals).
        // SeqCst on this load and on the link above, as on the end of
        // `quiet` and the drain's take: a store-buffering pattern (push:
        // link, then read `quiet`; quiet's end: write `quiet`, then take),
        // in which acquire/release alone would let the push read the old
        // `quiet` (skip the signal) while the take misses its link. Free on
        // x86, whose locked instructions order it anyway.
        if n.quiet.load(SeqCst) == 0 && !n.signalled.swap(true, AcqRel) {
            signal(n.write_fd);
        }
        // The last access: from here the notifier may be freed.
        n.pushing.fetch_sub(1, Release);
    }

    /// Makes pushes skip signalling while `quiet` calls are in force
    /// (counted); the caller drains right after the last one ends.
    pub(crate) fn set_quiet(&self, quiet: bool) {
        if quiet {
            self.quiet.fetch_add(1, AcqRel);
        } else {
            // An unmatched end is ignored rather than wrapping around.
            // SeqCst: see `push`.
            let _ = self
                .quiet
                .fetch_update(SeqCst, SeqCst, |q| q.checked_sub(1));
        }
    }

    /// Moves up to `out.len()` completions, oldest first, into `out`;
    /// returns how many. Their tickets are the caller's from then on.
    pub(crate) fn drain(&self, out: &mut [Done]) -> usize {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        // Clear the descriptor before the flag: while the flag is set no
        // push writes, so once both are clear every later signal belongs to
        // a set flag, and the next drain clears it. (Clearing the flag first
        // would let a push's write land before the clear: the flag set, the
        // descriptor quiet, and the next push would not signal at all.) The
        // swap reads the value of the last push's swap, so this drain's
        // take sees that push's completion.
        if self.signalled.load(Acquire) {
            clear(self.read_fd);
            self.signalled.swap(false, AcqRel);
        }
        // Acquire: pairs with `push`'s Release. The list is newest first:
        // reverse it in place (no allocation on the common path).
        // (SeqCst: see `push`.)
        let mut p = self.head.swap(ptr::null_mut(), SeqCst);
        let mut oldest: *mut Completion = ptr::null_mut();
        while !p.is_null() {
            // SAFETY: a queued completion is live until drained, and only
            // this drain (under the backlog's mutex) touches it now.
            unsafe {
                let next = (*p).next_done.load(Relaxed);
                (*p).next_done.store(oldest, Relaxed);
                oldest = p;
                p = next;
            }
        }
        // What an earlier drain had no room for comes first.
        let capacity = out.len();
        let mut taken = 0;
        while taken < capacity {
            let Some(Backlogged(c)) = backlog.pop_front() else {
                break;
            };
            out[taken] = Self::done(c);
            taken += 1;
        }
        while !oldest.is_null() {
            // SAFETY: as above.
            let next = unsafe { (*oldest).next_done.load(Relaxed) };
            if taken < capacity && backlog.is_empty() {
                out[taken] = Self::done(oldest);
                taken += 1;
            } else {
                backlog.push_back(Backlogged(oldest));
            }
            oldest = next;
        }
        if !backlog.is_empty() && !self.signalled.swap(true, AcqRel) {
            // Come back for the rest.
            signal(self.write_fd);
        }
        self.pending.fetch_sub(taken as u64, AcqRel);
        taken
    }
}

impl Notifier {
    /// What a drain hands out for the completion `c`, which it then never
    /// touches again.
    fn done(c: *const Completion) -> Done {
        // SAFETY: a queued completion is live until handed out.
        let (ctx, ticket, status) = unsafe {
            let (ctx, ticket) = (*c).parts();
            (ctx, ticket, (*c).status.load(Relaxed))
        };
        Done {
            ticket,
            ctx,
            status,
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        close(self.read_fd);
        if self.write_fd != self.read_fd {
            close(self.write_fd);
        }
    }
}

#[cfg(target_os = "linux")]
fn descriptors() -> Option<(c_int, c_int)> {
    // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    (fd >= 0).then_some((fd, fd))
}

#[cfg(all(unix, not(target_os = "linux")))]
fn descriptors() -> Option<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `pipe` writes two descriptors into the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return None;
    }
    for fd in fds {
        // SAFETY: fcntl on descriptors we just made.
        unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Some((fds[0], fds[1]))
}

#[cfg(not(unix))]
fn descriptors() -> Option<(c_int, c_int)> {
    Some((-1, -1))
}

/// Makes the descriptor readable. Async-signal-safe (one `write`); a full
/// pipe or eventfd is already readable, so a failure loses nothing.
fn signal(fd: c_int) {
    #[cfg(unix)]
    {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local (an eventfd needs
        // exactly 8; a pipe takes them as any bytes).
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }
    #[cfg(not(unix))]
    let _ = fd;
}

/// Makes the descriptor unreadable again (reads until it would block).
fn clear(fd: c_int) {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live local buffer of the given size; the
            // descriptor is non-blocking.
            let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            // An eventfd is emptied by one read of 8 bytes; a pipe by reads
            // until it would block.
            if got <= 0 || got == 8 && cfg!(target_os = "linux") {
                break;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = fd;
}

fn close(fd: c_int) {
    #[cfg(unix)]
    if fd >= 0 {
        // SAFETY: closes a descriptor this notifier owns, once.
        unsafe { libc::close(fd) };
    }
    #[cfg(not(unix))]
    let _ = fd;
}
