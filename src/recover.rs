//! Crash recovery for process-shared semaphores (`SEM_RECOVER`): the net
//! permits a process took and did not give back return when it dies (the
//! SysV `SEM_UNDO` rule, clamped to the semaphore's range), and the acquire
//! that gets them is told (`SEM_RECOVERED`).
//!
//! # What is kept, and where
//!
//! Beside the semaphore in the shared mapping (`shm.rs`) a recover-mode
//! semaphore has a `Recovery` area:
//! - one *slot* per handle that uses it (at most [`SLOTS`]): whether it is
//!   used, the net permits its process took through that handle (`held`,
//!   negative for a process that released more than it took), and how many
//!   of its threads are registered as sleepers in the word (`sleeping`,
//!   `multi`);
//! - a robust, process-shared pthread mutex that every change of the
//!   count or of the sleeper fields takes, so that the word and a slot
//!   change together;
//! - a *journal* of the one change in progress: the slot's image before
//!   and after, and the word after;
//! - `unreported`: permits given back for dead processes that no acquire
//!   was told of yet.
//!
//! # The rules
//!
//! - A recover-mode word has `PARKED` and `HANDOFF` always set, so the
//!   in-process fast paths always fail into the shared slow paths, and
//!   these come here: no count changes without the mutex (a shutdown sets
//!   `CLOSED | CLOSING` without it; they are ignored where words are
//!   compared).
//! - A change, under the mutex: write the journal (slot, images, word
//!   after), mark it active, compare-and-swap the word, write the slot,
//!   mark the journal inactive. A process killed anywhere in that leaves
//!   the mutex to the kernel's robust-futex handling: the next locker gets
//!   `EOWNERDEAD`, finds the journal active and completes or undoes the slot
//!   by whether the word is the one the journal says it became (only the
//!   mutex's holder changes it, so it is either the word before or after);
//!   then marks the mutex consistent. Repairing writes whole images, so a
//!   repairer killed in turn leaves the same repair to the next locker.
//! - Death is proven by open-file-description locks (`F_OFD_SETLK`): each
//!   handle holds a write lock on byte `k` of the semaphore's file for its
//!   slot `k`, through a description of its own. The kernel drops the lock
//!   only when the last descriptor of that description closes, that is
//!   when its process has exited or was killed (or freed the handle, which
//!   frees the slot first). So a used slot whose byte is not locked belongs
//!   to a process that is gone: not guessed from a PID (reuse, namespaces)
//!   or from silence (a slow process keeps its lock).
//! - A `fork()`ed child shares its parent's descriptions; the child handler
//!   (`shm::reopen_after_fork`) gives each recover-mode handle a description
//!   of its own (reopening `/proc/self/fd/N`) and no slot; the child takes
//!   one the first time it uses the handle. Descriptors are close-on-exec.
//! - Dead slots are looked for (an `F_OFD_GETLK` per used slot) by an
//!   acquire that finds too few permits, at most once per [`SCAN_EVERY`]
//!   across all processes, and by every sleeper when it looks at the word
//!   again after [`MANAGED_RECHECK`] (100 ms). A dead slot's positive
//!   `held` goes back to the count (clamped to `max`), its sleeper
//!   registrations (and FIFO queue entries) leave, and sleepers are woken
//!   for the permits: within about 0.1 s of a death, with no live process
//!   doing anything special.
//! - `sem_free` of a recover-mode handle gives its slot's permits back the
//!   same way, then closes its descriptor.
//! - A handle whose description the program closed (a stray `close`, a
//!   close-every-descriptor loop) looks dead, and its slot may be
//!   reclaimed: its permits given back and its waiters taken out. Such a
//!   handle is dead for good: its slot shows another tag, and every later
//!   call on it (every thread's, waiters included) returns `SEM_EBUSY`. It
//!   takes no new slot: that would count what it still holds twice, and
//!   its descriptor may now lead to another handle's description.
//!
//! What this costs: every operation on a recover-mode semaphore takes the
//! mutex (no system call while it is free), and `sem_release` is then not
//! async-signal-safe. A thread marks that it is taking a managed mutex
//! (`INSIDE`, thread-local) before it takes it and until it has given it
//! up: a call that finds the mark is a signal handler's that interrupted
//! such a call; if the mutex it wants is taken, it asks the mutex's futex
//! word whether this thread holds it, and returns `SEM_EBUSY` instead of
//! waiting for itself.

use core::cell::{Cell, UnsafeCell};
use core::ffi::c_int;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, compiler_fence};
use std::time::{Duration, Instant};

use crate::deadline::Wait;
use crate::parking::{wait_shared, wake_shared};
use crate::semaphore::{CLOSED, Semaphore};
use crate::shared::{
    CLOSING, COUNT, MULTI, MULTIS, POLL, SHARED_COUNT_MAX, SLEEPER, SLEEPERS, gives_up,
};
use crate::shm::Owner;
use crate::status::{AcquireError, ReleaseError, SEM_FIFO, SEM_RECOVER};

/// How many handles (processes, usually) may use one recover-mode
/// semaphore at a time.
pub(crate) const SLOTS: usize = crate::status::SEM_RECOVER_SLOTS as usize;

/// Dead slots are looked for at most this often (all processes together)
/// by acquires that find too few permits; sleepers look every
/// `MANAGED_RECHECK`.
pub(crate) const SCAN_EVERY: Duration = Duration::from_millis(10);

/// A sleeper of a managed semaphore looks again (and for dead processes)
/// after this long at the latest: the bound on how long a dead process's
/// permits (or queue entry) can keep a sleeper waiting.
pub(crate) const MANAGED_RECHECK: Duration = Duration::from_millis(100);

/// What a slot says (a copy of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Image {
    /// 1 while a handle owns the slot.
    pub used: u32,
    /// Its threads registered as sleepers in the word.
    pub sleeping: u32,
    /// Those of them that want more than one permit.
    pub multi: u32,
    /// Net permits taken through the handle.
    pub held: i64,
}

/// A slot, as the shared memory holds it. (Atomics, accessed `Relaxed`
/// under the mutex, which orders them: plain integers would be data races
/// in the language's eyes if a peer wrote them outside it.)
#[repr(C)]
struct Slot {
    used: AtomicU32,
    sleeping: AtomicU32,
    multi: AtomicU32,
    _pad: AtomicU32,
    held: AtomicI64,
    /// Written by the handle that took the slot (not part of its image):
    /// a handle whose slot was reclaimed from under it (its descriptor
    /// closed by someone else) sees another tag, and takes a new slot.
    tag: AtomicU64,
}

impl Slot {
    fn get(&self) -> Image {
        Image {
            used: self.used.load(Relaxed),
            sleeping: self.sleeping.load(Relaxed),
            multi: self.multi.load(Relaxed),
            held: self.held.load(Relaxed),
        }
    }

    fn set(&self, image: Image) {
        self.used.store(image.used, Relaxed);
        self.sleeping.store(image.sleeping, Relaxed);
        self.multi.store(image.multi, Relaxed);
        self.held.store(image.held, Relaxed);
    }
}

/// The change in progress (see the module docs).
#[repr(C)]
struct Journal {
    active: AtomicU32,
    slot: AtomicU32,
    word_after: AtomicU64,
    unreported_before: AtomicU64,
    unreported_after: AtomicU64,
    before: Slot,
    after: Slot,
}

/// A queued FIFO waiter (`ticket` 0: a free entry).
#[repr(C)]
struct Entry {
    ticket: AtomicU64,
    n: AtomicU32,
    /// The slot of the waiter's handle (its process's death removes it).
    slot: AtomicU32,
}

/// How many threads (all processes) may be queued in a FIFO shared
/// semaphore at once; more wait outside the queue, in no order, until an
/// entry is free.
pub(crate) const QUEUE: usize = 128;

/// Where a FIFO wait of `sem_acquire_slice` stands between its calls:
/// registered as a sleeper, and its ticket in the queue (both kept while
/// the caller is away, so it keeps its turn). The default: not waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Place {
    pub registered: bool,
    pub ticket: Option<u64>,
    /// The tag of the handle's slot when the place was kept: a handle that
    /// has another slot now (a forked child's, or a new handle at the same
    /// address) has no such wait.
    pub tag: u64,
}

/// The managed area of a shared mapping (all zeros: a plain shared
/// semaphore, `shared.rs` only).
#[repr(C)]
pub(crate) struct Recovery {
    /// `SEM_RECOVER | SEM_FIFO` bits (written by the creator); 0: not
    /// managed.
    mode: AtomicU32,
    /// FIFO waiters sleep on this futex; bumped (under the mutex, or by a
    /// shutdown) whenever one of them may now go: a release, a waiter
    /// leaving the queue, a dead process's permits or entries removed.
    queue_seq: AtomicU32,
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// The file's device and inode: a descriptor that no longer leads to
    /// it (closed and its number reused) proves nothing about locks.
    file_dev: AtomicU64,
    file_ino: AtomicU64,
    unreported: AtomicU64,
    /// When (`sem_clock_ns`) the slots were last looked at for dead owners.
    scanned_at: AtomicU64,
    /// The next FIFO ticket (arrival order).
    next_ticket: AtomicU64,
    journal: Journal,
    slots: [Slot; SLOTS],
    queue: [Entry; QUEUE],
}

// SAFETY: the mutex is a process-shared pthread mutex, made for use by many
// threads at once; everything else is atomics.
unsafe impl Sync for Recovery {}

/// A change to make under the mutex: from the word, the slot's image and
/// `unreported`, the new three; `None`: nothing to change.
type Change<'a> = &'a dyn Fn(u64, Image, u64) -> Option<(u64, Image, u64)>;

/// The word without the bits a shutdown sets outside the mutex.
fn masked(s: u64) -> u64 {
    s & !(CLOSED | CLOSING)
}

/// The sleeper fields of `sleeping` threads, `multi` of which want more
/// than one permit.
fn registrations(sleeping: u32, multi: u32) -> u64 {
    u64::from(sleeping) * SLEEPER + u64::from(multi) * MULTI
}

impl Recovery {
    /// Makes the area of a new recover-mode semaphore (memory all zeros,
    /// seen by nobody else yet). Returns an errno if the mutex cannot be
    /// made.
    ///
    /// # Safety
    /// `p` is valid for writes of a `Recovery`, aligned, all zeros, and
    /// unseen by other threads and processes until this returns.
    pub(crate) unsafe fn init(p: *mut Recovery, mode: u32, fd: c_int) -> Result<(), c_int> {
        // SAFETY: by the contract; the attribute object lives on this stack
        // across the calls that use it, and is destroyed after.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = core::mem::zeroed();
            let mut rc = libc::pthread_mutexattr_init(&mut attr);
            if rc != 0 {
                return Err(rc);
            }
            // Not error-checking: that compares thread IDs, which repeat
            // across PID namespaces (`INSIDE` catches re-entry instead).
            for set in [
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
            ] {
                if rc == 0 {
                    rc = set;
                }
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(UnsafeCell::raw_get(&raw const (*p).mutex), &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                return Err(rc);
            }
            let (dev, ino) = file_id(fd).ok_or(libc::EBADF)?;
            (*p).file_dev.store(dev, Relaxed);
            (*p).file_ino.store(ino, Relaxed);
            (*p).next_ticket.store(1, Relaxed);
            (*p).mode.store(mode, Release);
        }
        Ok(())
    }

    /// Whether this is a managed semaphore's area (`SEM_RECOVER` or
    /// `SEM_FIFO`): its handles take slots and its calls the mutex.
    pub(crate) fn managed(&self) -> bool {
        self.mode.load(Acquire) != 0
    }

    /// Whether dead processes' permits come back (`SEM_RECOVER`).
    fn recovers(&self) -> bool {
        self.mode.load(Relaxed) & SEM_RECOVER != 0
    }

    /// Whether blocked acquirers are served in arrival order (`SEM_FIFO`).
    fn fifo(&self) -> bool {
        self.mode.load(Relaxed) & SEM_FIFO != 0
    }

    /// Under the mutex: the ticket at the head of the FIFO queue, and the
    /// permits it wants. Queued waiters are registered sleepers, so while
    /// the word (`s`, read under the mutex) has none the queue is empty and
    /// is not read (an entry a killed process left has a dead slot, which a
    /// scan clears).
    fn head(&self, s: u64) -> Option<(u64, u64)> {
        if s & SLEEPERS == 0 {
            return None;
        }
        self.queue
            .iter()
            .map(|e| (e.ticket.load(Relaxed), u64::from(e.n.load(Relaxed))))
            .filter(|&(t, _)| t != 0)
            .min()
    }

    /// Under the mutex: queues a waiter of slot `k` for `n` permits; its
    /// ticket, or `None` if the queue is full.
    fn enqueue(&self, k: usize, n: u64) -> Option<u64> {
        let e = self.free_entry()?;
        let ticket = self.next_ticket.fetch_add(1, Relaxed).max(1);
        // The entry's fields first, then its ticket (which marks it used):
        // a process killed in between leaves a free entry.
        e.n.store(n as u32, Relaxed);
        e.slot.store(k as u32, Relaxed);
        e.ticket.store(ticket, Relaxed);
        Some(ticket)
    }

    /// Under the mutex: an unused queue entry, if the queue is not full.
    fn free_entry(&self) -> Option<&Entry> {
        self.queue.iter().find(|e| e.ticket.load(Relaxed) == 0)
    }

    /// Under the mutex: whether `place` is a wait of `owner`'s, whose slot
    /// is `k`, still queued.
    fn kept(&self, owner: &Owner, k: usize, place: &Place) -> bool {
        place.tag == owner.tag() && place.ticket.is_some_and(|t| self.queued(t, k))
    }

    /// Under the mutex: whether `ticket`, a waiter's of slot `k`, is queued.
    fn queued(&self, ticket: u64, k: usize) -> bool {
        self.entry(ticket, k).is_some()
    }

    /// Under the mutex: the queue entry of `ticket`, a waiter's of slot `k`.
    fn entry(&self, ticket: u64, k: usize) -> Option<&Entry> {
        self.queue
            .iter()
            .find(|e| e.ticket.load(Relaxed) == ticket && e.slot.load(Relaxed) as usize == k)
    }

    /// Under the mutex: takes `ticket`, a waiter's of slot `k`, out of the
    /// queue.
    fn dequeue(&self, ticket: u64, k: usize) {
        if let Some(e) = self.entry(ticket, k) {
            e.ticket.store(0, Relaxed);
        }
        self.bump();
    }

    /// Tells FIFO sleepers to look again (see `queue_seq`).
    fn bump(&self) {
        self.queue_seq.fetch_add(1, Release);
    }

    /// Wakes every FIFO sleeper, in every process.
    fn wake_queue(&self) {
        wake_shared(self.queue_seq.as_ptr().cast_const(), i32::MAX, u32::MAX);
    }

    /// Takes the mutex, waiting as `wait` allows (`Never`: only
    /// [`LOCK_WAIT`], the bound for every wait shorter than that), and
    /// repairs what a holder killed inside it left. `Err(Busy)`: a call from
    /// a signal handler that interrupted a call of this thread that holds
    /// the mutex, or the memory no longer holds a usable mutex; `Err(TimedOut)`: not in time (a peer holds it:
    /// one that is stopped holds it until it runs again).
    fn lock(&self, sem: &Semaphore, wait: Wait) -> Result<Locked<'_>, AcquireError> {
        let me = core::ptr::from_ref(self) as usize;
        // Marked before the mutex is taken (and until after it is given
        // up), so that a handler finds the mark whenever this thread may
        // hold it.
        let outer = INSIDE.with(|c| c.replace(me));
        compiler_fence(SeqCst);
        let m = self.mutex.get();
        // SAFETY: the mutex was made by `init` (`managed`), in memory that
        // stays mapped while `sem` is in use; the timespec outlives the
        // call.
        let rc = unsafe {
            match libc::pthread_mutex_trylock(m) {
                // A mark means that this is a signal handler's call, which
                // interrupted one on a managed semaphore (this one, or
                // another whose call another handler interrupted, and so
                // on): if this thread holds the mutex, waiting for it would
                // be for ever. Who holds it, the futex word says.
                libc::EBUSY if outer != 0 && held_by_this_thread(m) => libc::EDEADLK,
                libc::EBUSY => match wait {
                    Wait::Never => lock_until(m, Instant::now() + LOCK_WAIT),
                    Wait::Until(at) => lock_until(m, at.max(Instant::now() + LOCK_WAIT)),
                    Wait::Forever => libc::pthread_mutex_lock(m),
                },
                rc => rc,
            }
        };
        let failed = match rc {
            0 => None,
            libc::EOWNERDEAD => {
                self.repair(sem);
                // SAFETY: this thread holds the mutex (EOWNERDEAD).
                unsafe { libc::pthread_mutex_consistent(m) };
                None
            }
            libc::ETIMEDOUT => Some(AcquireError::TimedOut),
            _ => Some(AcquireError::Busy),
        };
        if let Some(e) = failed {
            compiler_fence(SeqCst);
            INSIDE.with(|c| c.set(outer));
            return Err(e);
        }
        // A journal left active by a holder that died (the kernel reports
        // that once, with EOWNERDEAD; repairing on every lock also covers
        // a repairer that died before marking the mutex consistent).
        self.repair(sem);
        Ok(Locked {
            recovery: self,
            outer,
        })
    }

    /// Whether `fd` still leads to the semaphore's file (async-signal-safe:
    /// one `fstat`).
    pub(crate) fn same_file(&self, fd: c_int) -> bool {
        file_id(fd).is_some_and(|(dev, ino)| {
            dev == self.file_dev.load(Relaxed) && ino == self.file_ino.load(Relaxed)
        })
    }

    /// Completes or undoes the journal's change, if one is in progress.
    fn repair(&self, sem: &Semaphore) {
        let j = &self.journal;
        if j.active.load(Acquire) == 0 {
            return;
        }
        let Some(slot) = self.slots.get(j.slot.load(Relaxed) as usize) else {
            j.active.store(0, Release);
            return;
        };
        let done = masked(sem.state.load(Acquire)) == masked(j.word_after.load(Relaxed));
        if done {
            slot.set(j.after.get());
            self.unreported
                .store(j.unreported_after.load(Relaxed), Relaxed);
        } else {
            slot.set(j.before.get());
            self.unreported
                .store(j.unreported_before.load(Relaxed), Relaxed);
        }
        j.active.store(0, Release);
    }

    /// Under the mutex: makes `change` to the word and slot `k` together
    /// (see the rules). Returns the word it replaced, or `None` if `change`
    /// found nothing to do.
    fn commit(&self, sem: &Semaphore, k: usize, change: Change) -> Option<u64> {
        let slot = &self.slots[k];
        loop {
            let s = sem.state.load(Acquire);
            let before = slot.get();
            let unreported = self.unreported.load(Relaxed);
            let (word, after, unreported_after) = change(s, before, unreported)?;
            if masked(word) == masked(s) {
                // Only the slot changes: nothing to tie to the word. (A
                // process killed half-way leaves a slot that is its own,
                // or free, and that a scan settles.)
                slot.set(after);
                self.unreported.store(unreported_after, Relaxed);
                return Some(s);
            }
            self.begin(k, word, (before, after), (unreported, unreported_after));
            // AcqRel: taking permits is Acquire and adding them Release, as
            // on every path.
            if sem
                .state
                .compare_exchange(s, word, AcqRel, Acquire)
                .is_err()
            {
                // A shutdown came (the only change made without the mutex).
                self.journal.active.store(0, Release);
                continue;
            }
            self.finish(k, after, unreported_after);
            return Some(s);
        }
    }

    /// `commit`'s first step: the journal of a change of slot `k` (images
    /// before and after) and `unreported` that goes with the word becoming
    /// `word`, marked active.
    fn begin(&self, k: usize, word: u64, images: (Image, Image), unreported: (u64, u64)) {
        let j = &self.journal;
        j.slot.store(k as u32, Relaxed);
        j.word_after.store(word, Relaxed);
        j.unreported_before.store(unreported.0, Relaxed);
        j.unreported_after.store(unreported.1, Relaxed);
        j.before.set(images.0);
        j.after.set(images.1);
        j.active.store(1, Release);
    }

    /// `commit`'s last step, once the word changed: the slot and
    /// `unreported` as the journal says, and the journal done.
    fn finish(&self, k: usize, after: Image, unreported: u64) {
        self.slots[k].set(after);
        self.unreported.store(unreported, Relaxed);
        self.journal.active.store(0, Release);
    }

    /// Under the mutex: gives back what slot `k` holds (its owner is dead,
    /// or freed its handle; the permits only with `SEM_RECOVER`), takes its
    /// waiters out of the word and the queue, and frees it. Returns how
    /// many permits and queue entries that gave back: nonzero if sleepers
    /// must look again.
    fn reclaim(&self, sem: &Semaphore, k: usize) -> u64 {
        let max = sem.params.max.min(SHARED_COUNT_MAX);
        let recovers = self.recovers();
        let given = Cell::new(0);
        // Its queued waiters first (a FIFO queue would wait for them for
        // ever): their registrations go with the slot below.
        let mut removed = 0;
        for e in &self.queue {
            if e.ticket.load(Relaxed) != 0 && e.slot.load(Relaxed) as usize == k {
                e.ticket.store(0, Relaxed);
                removed += 1;
            }
        }
        if removed > 0 {
            self.bump();
        }
        self.commit(sem, k, &|s, image, unreported| {
            let room = max.saturating_sub(s & COUNT);
            let back = match recovers {
                true => u64::try_from(image.held.max(0)).unwrap_or(0).min(room),
                false => 0,
            };
            given.set(back);
            // (Saturating: the fields are in memory peers can write.)
            let regs = registrations(image.sleeping, image.multi);
            let word = if s & SLEEPERS >= u64::from(image.sleeping) * SLEEPER
                && s & MULTIS >= u64::from(image.multi) * MULTI
            {
                s - regs + back
            } else {
                (s & !(SLEEPERS | MULTIS)) + back
            };
            Some((word, Image::default(), unreported.saturating_add(back)))
        });
        self.slots[k].tag.store(0, Relaxed);
        if given.get() > 0 {
            self.bump();
        }
        given.get() + removed
    }

    /// Under the mutex: whether the owner of used slot `k` is gone, as the
    /// kernel's lock table says (asked through `fd`, a description of this
    /// process's own). An error is not proof: false.
    fn dead(fd: c_int, k: usize) -> bool {
        locked_by_another(fd, k) == Some(false)
    }

    /// Under the mutex: looks for dead slots (at most once per
    /// `SCAN_EVERY` unless `force`) and reclaims them. Nonzero if sleepers
    /// must look again (see `reclaim`).
    fn scan(&self, sem: &Semaphore, fd: c_int, mine: Option<usize>, force: bool) -> u64 {
        let now = u64::try_from(crate::deadline::clock_ns()).unwrap_or(0);
        let last = self.scanned_at.load(Relaxed);
        // (A stamp in the future came from a process whose monotonic clock
        // is ahead, in another time namespace: stale, not recent.)
        if !force && last <= now && now - last < SCAN_EVERY.as_nanos() as u64 {
            return 0;
        }
        // Only through a descriptor of the semaphore's own file do locks
        // prove anything.
        if !self.same_file(fd) {
            return 0;
        }
        self.scanned_at.store(now, Relaxed);
        let mut given = 0;
        for k in 0..SLOTS {
            if Some(k) != mine && self.slots[k].used.load(Relaxed) != 0 && Self::dead(fd, k) {
                given += self.reclaim(sem, k);
            }
        }
        given
    }

    /// Under the mutex: the handle's slot, taken now if it has none yet
    /// (a new handle, or one inherited by a forked child). `ENOSPC` if
    /// every slot is used by a live handle, `EBADF` if the descriptor no
    /// longer leads to the semaphore's file, and `EOWNERDEAD` if the handle
    /// lost its slot (its description was closed, which others took for its
    /// death: see the rules), now or before.
    fn slot(&self, sem: &Semaphore, owner: &Owner) -> Result<usize, c_int> {
        match owner.slot() {
            Some(k) if self.slots[k].tag.load(Relaxed) == owner.tag() => return Ok(k),
            Some(_) => {
                owner.set_lost();
                return Err(libc::EOWNERDEAD);
            }
            None if owner.lost() => return Err(libc::EOWNERDEAD),
            None => {}
        }
        let fd = owner.fd();
        if !self.same_file(fd) {
            return Err(libc::EBADF);
        }
        for round in 0..2 {
            for k in 0..SLOTS {
                if self.slots[k].used.load(Relaxed) == 0 && lock_byte(fd, k) {
                    let tag = new_tag();
                    self.slots[k].set(Image {
                        used: 1,
                        ..Image::default()
                    });
                    self.slots[k].tag.store(tag, Relaxed);
                    owner.set_slot(k, tag);
                    return Ok(k);
                }
            }
            if round == 0 && self.scan(sem, fd, None, true) > 0 {
                sem.wake_all_sleepers();
                self.wake_queue();
            }
        }
        Err(libc::ENOSPC)
    }
}

/// The mutex, held; released on drop.
struct Locked<'a> {
    recovery: &'a Recovery,
    /// `INSIDE` before `lock` (a call this one interrupted, or 0).
    outer: usize,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread took the mutex in `lock`.
        unsafe { libc::pthread_mutex_unlock(self.recovery.mutex.get()) };
        compiler_fence(SeqCst);
        INSIDE.with(|c| c.set(self.outer));
    }
}

std::thread_local! {
    /// The `Recovery` (its address) whose mutex this thread is taking,
    /// holds or has just given up, the innermost if signal handlers nest;
    /// 0 outside. A signal handler's call reads it (a const-initialised
    /// `Cell` without a destructor: no allocation or registration when it
    /// is touched).
    static INSIDE: Cell<usize> = const { Cell::new(0) };
}

/// How long a try (`sem_try_acquire`, `sem_drain`, a timed acquire with a
/// shorter timeout) waits for the mutex a peer holds. A running peer holds
/// it for well under a microsecond, so only a peer that is not running
/// inside a call (stopped, or preempted for longer than this on a loaded
/// machine) makes a try fail with permits free. (1 ms failed 1 try in 3
/// million beside a peer cycling on a 2-core machine.)
pub(crate) const LOCK_WAIT: Duration = Duration::from_millis(10);

/// Whether this thread holds mutex `m` (locked, robust): the owner's thread
/// ID is in the mutex's futex word (the kernel's robust-futex protocol reads
/// it there when a thread dies; glibc puts that word first). Thread IDs are
/// per PID namespace, so a thread of another namespace may show the same:
/// `true` then is a false alarm (which costs a `SEM_EBUSY`, never a hang).
/// Elsewhere, `true`.
///
/// # Safety
/// `m` is an initialised mutex, valid for the call.
unsafe fn held_by_this_thread(m: *mut libc::pthread_mutex_t) -> bool {
    #[cfg(target_env = "gnu")]
    {
        const FUTEX_TID_MASK: i32 = 0x3fff_ffff;
        // SAFETY: by the contract; glibc's `pthread_mutex_t` starts with
        // its futex word, an aligned `int` that other threads change
        // atomically.
        let word = unsafe { &*m.cast::<core::sync::atomic::AtomicI32>() }.load(Relaxed);
        // SAFETY: gettid has no requirements.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        word & FUTEX_TID_MASK == tid
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = m;
        true
    }
}

/// Takes mutex `m`, waiting until `at` at the latest (`CLOCK_MONOTONIC`,
/// which `Instant` is, where glibc has `pthread_mutex_clocklock`: a change
/// of the wall clock neither shortens nor stretches the wait).
///
/// # Safety
/// `m` is an initialised mutex, valid for the call.
unsafe fn lock_until(m: *mut libc::pthread_mutex_t, at: Instant) -> c_int {
    // (Declared here, not in the module: cbindgen would copy it into the
    // header.)
    #[cfg(target_env = "gnu")]
    unsafe extern "C" {
        /// glibc 2.30 (POSIX 2024): `pthread_mutex_timedlock` on a chosen
        /// clock.
        fn pthread_mutex_clocklock(
            m: *mut libc::pthread_mutex_t,
            clock: libc::clockid_t,
            at: *const libc::timespec,
        ) -> c_int;
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: by the contract; the timespec outlives the call.
    unsafe {
        pthread_mutex_clocklock(
            m,
            libc::CLOCK_MONOTONIC,
            &timespec_at(libc::CLOCK_MONOTONIC, at),
        )
    }
    #[cfg(not(target_env = "gnu"))]
    // SAFETY: by the contract; the timespec outlives the call.
    unsafe {
        libc::pthread_mutex_timedlock(m, &timespec_at(libc::CLOCK_REALTIME, at))
    }
}

/// The device and inode of the file behind `fd`.
fn file_id(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is valid for writes; a bad `fd` is an error, not UB.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev as u64, st.st_ino as u64))
}

/// `at` as an absolute time of `clock`.
fn timespec_at(clock: libc::clockid_t, at: Instant) -> libc::timespec {
    let left = at.saturating_duration_since(Instant::now());
    // SAFETY: an all-zero timespec is valid; clock_gettime fills it.
    let mut now: libc::timespec = unsafe { core::mem::zeroed() };
    // SAFETY: `now` is valid for writes.
    unsafe { libc::clock_gettime(clock, &mut now) };
    let ns = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX))
            .saturating_add((ns / 1_000_000_000) as libc::time_t),
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// A tag for a slot a handle takes: unique among the slot's takers.
fn new_tag() -> u64 {
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    // SAFETY: getpid has no requirements.
    let pid = unsafe { libc::getpid() } as u64;
    let now = u64::try_from(crate::deadline::clock_ns()).unwrap_or(0);
    ((pid << 40) ^ (TAKEN.fetch_add(1, Relaxed) << 20) ^ now) | 1
}

/// Whether the state word `s` can count no more sleepers waiting for `n`
/// permits (its sleeper field, or for `n > 1` its multi-permit field, is
/// full): such a waiter waits outside the count, polling.
fn sleepers_full(s: u64, n: u64) -> bool {
    s & SLEEPERS == SLEEPERS || (n > 1 && s & MULTIS == MULTIS)
}

/// Whether byte `k` of the file behind `fd` is locked through another
/// description than `fd`'s (a description's own lock never conflicts with
/// it); `None` on an error. Async-signal-safe (`fcntl`).
fn locked_by_another(fd: c_int, k: usize) -> Option<bool> {
    let mut probe = flock_of(libc::F_WRLCK as i16, k);
    // SAFETY: `probe` is a valid `flock` that F_OFD_GETLK fills in.
    let rc = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut probe) };
    (rc == 0).then_some(probe.l_type != libc::F_UNLCK as i16)
}

/// Whether `fd`'s description holds the lock of slot `k`: through it the
/// byte looks free, and through `other`, another description of the file,
/// it looks locked. (A program that closed a handle's descriptor may have
/// given its number to another file, or to another handle of the same
/// semaphore.) Without `other` (-1: no descriptor was left to open it),
/// only the first: the byte looks free through `fd`. Async-signal-safe
/// (`fcntl`).
pub(crate) fn holds_slot_lock(fd: c_int, k: usize, other: c_int) -> bool {
    fd >= 0
        && k < SLOTS
        && locked_by_another(fd, k) == Some(false)
        && (other < 0 || locked_by_another(other, k) == Some(true))
}

/// Whether `fd`'s description holds any slot's lock, as seen from `other`
/// (see `holds_slot_lock`; `false` without `other`). A handle that has no
/// slot yet holds none: a descriptor that holds one is another handle's.
pub(crate) fn holds_a_slot_lock(fd: c_int, other: c_int) -> bool {
    fd >= 0
        && other >= 0
        && (0..SLOTS).any(|k| {
            locked_by_another(fd, k) == Some(false) && locked_by_another(other, k) == Some(true)
        })
}

/// Whether `fd` is still the descriptor of a handle of the semaphore whose
/// area is `r`, with slot `slot` (`None`: none taken yet); see
/// `holds_slot_lock`. Async-signal-safe (`fstat`, `fcntl`).
pub(crate) fn still_ours(r: &Recovery, fd: c_int, slot: Option<usize>, other: c_int) -> bool {
    match slot {
        Some(k) => holds_slot_lock(fd, k, other),
        None => r.same_file(fd) && !holds_a_slot_lock(fd, other),
    }
}

/// A lock description of byte `k` of the file.
fn flock_of(kind: i16, k: usize) -> libc::flock {
    // SAFETY: all-zero is a valid `flock` (F_OFD_* want `l_pid` 0).
    let mut f: libc::flock = unsafe { core::mem::zeroed() };
    f.l_type = kind;
    f.l_whence = libc::SEEK_SET as i16;
    f.l_start = k as libc::off_t;
    f.l_len = 1;
    f
}

/// Takes the open-file-description write lock on byte `k` through `fd`,
/// without waiting; whether it did.
fn lock_byte(fd: c_int, k: usize) -> bool {
    let lock = flock_of(libc::F_WRLCK as i16, k);
    // SAFETY: `lock` is a valid `flock`.
    unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &lock) == 0 }
}

/// Word `s` less the registration of a sleeper of the slot whose image is
/// `image` (changed to match), wanting `n` permits; unchanged if the slot
/// has none (reclaimed, so the word has none of it either).
fn unregistered(s: u64, image: &mut Image, n: u64) -> u64 {
    let one = u64::from(image.sleeping > 0 && s & SLEEPERS >= SLEEPER);
    let multi = u64::from(one == 1 && n > 1 && image.multi > 0 && s & MULTIS >= MULTI);
    image.sleeping -= one as u32;
    image.multi -= multi as u32;
    s - one * SLEEPER - multi * MULTI
}

impl Semaphore {
    /// `try_acquire` of a managed semaphore.
    pub(crate) fn recover_try(&self, owner: &Owner, n: u64) -> Result<(), AcquireError> {
        self.recover_acquire(owner, n, Wait::Never)
    }

    /// `acquire_slow` of a managed semaphore: as `shared_acquire`, with
    /// every change of the word made under the mutex with the slot's; in
    /// FIFO mode a waiter takes a ticket and only the head of the queue may
    /// take permits (an acquirer without a ticket only while nobody is
    /// queued), and FIFO waiters sleep on `queue_seq`.
    pub(crate) fn recover_acquire(
        &self,
        owner: &Owner,
        n: u64,
        wait: Wait,
    ) -> Result<(), AcquireError> {
        self.recover_wait(owner, n, wait, None)
    }

    /// `recover_acquire`, going on from `place` if it is given (see
    /// `Place`): a FIFO wait that runs out of time with a ticket keeps it
    /// (and its registration) there and returns `TimedOut`, for the caller
    /// to come back to; any other outcome ends the wait (the caller then
    /// forgets the place).
    pub(crate) fn recover_wait(
        &self,
        owner: &Owner,
        n: u64,
        wait: Wait,
        mut place: Option<&mut Place>,
    ) -> Result<(), AcquireError> {
        let r = owner.recovery();
        let fifo = r.fifo();
        let deadline = match wait {
            Wait::Until(at) => Some(at),
            _ => None,
        };
        if wait != Wait::Never && !fifo {
            self.spin_while_nobody_sleeps(n);
        }
        let multi = if n > 1 { MULTI } else { 0 };
        let (mut registered, mut ticket) = place
            .as_deref()
            .map_or((false, None), |p| (p.registered, p.ticket));
        // A FIFO head spins once per turn before it sleeps (as a plain
        // acquirer does before it registers): a permit passed to it by a
        // running thread then costs a cache-line transfer, not a wake-up.
        let mut head_spun = false;
        let told = Cell::new(false);
        let mut resuming = registered || ticket.is_some();
        loop {
            // A registered waiter must take the mutex to leave, whatever
            // its deadline (its registration and queue entry cannot stay).
            let locked = r.lock(self, if registered { Wait::Forever } else { wait })?;
            // (A lost slot took this thread's registration and queue entry
            // with it: nothing to undo.)
            let Ok(k) = r.slot(self, owner) else {
                return Err(AcquireError::Busy);
            };
            // A wait to go on with must be this handle's and still queued:
            // a stale place (inherited by a forked child, or of a freed
            // handle) would wait for a turn that never comes.
            if resuming {
                resuming = false;
                if !place.as_deref().is_some_and(|p| r.kept(owner, k, p)) {
                    return Err(AcquireError::Invalid);
                }
            }
            // In FIFO mode only the head may take (or anyone, while nobody
            // is queued).
            let head = r.head(self.state.load(Acquire));
            let first = !fifo || head.map(|h| h.0) == ticket;
            // Take the permits (and leave the sleepers) in one change.
            let took = first
                && r.commit(self, k, &|s, mut image, unreported| {
                    if s & CLOSED != 0 || s & COUNT < n {
                        return None;
                    }
                    image.held = image.held.saturating_add(n as i64);
                    let word = if registered {
                        unregistered(s, &mut image, n)
                    } else {
                        s
                    };
                    let word = word - n;
                    // Told if any came back from a dead process.
                    told.set(unreported > 0);
                    Some((word, image, unreported.saturating_sub(n)))
                })
                .is_some();
            if took {
                // The next in line may fit in what is left.
                let next = ticket.is_some_and(|t| {
                    r.dequeue(t, k);
                    let s = self.state.load(Relaxed);
                    r.head(s).is_some() && s & COUNT > 0
                });
                drop(locked);
                if next {
                    r.wake_queue();
                }
                return match told.get() {
                    true => Err(AcquireError::Recovered),
                    false => Ok(()),
                };
            }
            let s = self.state.load(Acquire);
            // (A wait that keeps its place takes one first, however short
            // its time: else slices shorter than the way in would never
            // queue.)
            let queue_first = place.is_some()
                && fifo
                && !registered
                && !sleepers_full(s, n)
                && r.free_entry().is_some();
            if let Some(e) =
                gives_up(s, deadline).filter(|&e| !(queue_first && e == AcquireError::TimedOut))
            {
                if let (AcquireError::TimedOut, Some(p), Some(_)) =
                    (e, place.as_deref_mut(), ticket)
                {
                    // The caller comes back for it: keep the place.
                    *p = Place {
                        registered,
                        ticket,
                        tag: owner.tag(),
                    };
                    return Err(e);
                }
                if registered {
                    r.commit(self, k, &|s, mut image, unreported| {
                        Some((unregistered(s, &mut image, n), image, unreported))
                    });
                }
                // Those behind a head that leaves may go now.
                if let Some(t) = ticket {
                    r.dequeue(t, k);
                    drop(locked);
                    r.wake_queue();
                }
                return Err(e);
            }
            // Too few permits (or not our turn): a dead process may hold
            // some, or be queued ahead.
            if r.scan(self, owner.fd(), Some(k), false) > 0 {
                drop(locked);
                self.wake_all_sleepers();
                if fifo {
                    r.wake_queue();
                }
                continue;
            }
            if wait == Wait::Never {
                return Err(AcquireError::TimedOut);
            }
            if !registered {
                let full = sleepers_full(s, n);
                // (A full FIFO queue: wait outside it, polling.)
                let queued = !fifo || r.free_entry().is_some();
                if !full && queued {
                    r.commit(self, k, &|s, mut image, unreported| {
                        image.sleeping = image.sleeping.saturating_add(1);
                        image.multi = image.multi.saturating_add(u32::from(n > 1));
                        Some((s + SLEEPER + multi, image, unreported))
                    });
                    registered = true;
                    if fifo {
                        ticket = r.enqueue(k, n);
                    }
                }
            }
            let s = self.state.load(Acquire);
            let seq = r.queue_seq.load(Acquire);
            drop(locked);
            if fifo && ticket.is_some() && first && !head_spun {
                head_spun = true;
                self.spin(|s| (s & CLOSED != 0 || s & COUNT >= n).then_some(true));
                continue;
            }
            head_spun = false;
            if fifo {
                // Until anything changes that may let us go (`queue_seq`).
                // A head that fits and does not take may be dead: look
                // again after `SCAN_EVERY` (a scan then finds it).
                let stuck = head.is_some_and(|(t, want)| Some(t) != ticket && s & COUNT >= want);
                let cap = Instant::now()
                    + match (stuck, registered) {
                        (true, _) => SCAN_EVERY,
                        (false, true) => MANAGED_RECHECK,
                        (false, false) => POLL,
                    };
                let until = deadline.map_or(cap, |at| at.min(cap));
                // SAFETY: `queue_seq` is an aligned word of the mapping,
                // live while the handle is in use.
                unsafe {
                    wait_shared(
                        r.queue_seq.as_ptr().cast_const(),
                        seq,
                        Some(until),
                        u32::MAX,
                    )
                };
            } else if s & CLOSED == 0 && s & COUNT < n {
                let cap = if registered { MANAGED_RECHECK } else { POLL };
                self.sleep_on_word(s, n, cap, deadline);
            }
        }
    }

    /// `release_slow` of a managed semaphore.
    pub(crate) fn recover_release(&self, owner: &Owner, n: u64) -> Result<(), ReleaseError> {
        let r = owner.recovery();
        let max = self.params.max.min(SHARED_COUNT_MAX);
        let locked = r
            .lock(self, Wait::Forever)
            .map_err(|_| ReleaseError::Busy)?;
        let k = r.slot(self, owner).map_err(|_| ReleaseError::Busy)?;
        let added = r.commit(self, k, &|s, mut image, unreported| {
            if n > max.saturating_sub(s & COUNT) {
                return None;
            }
            image.held = image.held.saturating_sub(n as i64);
            Some((s + n, image, unreported))
        });
        let queued = r.fifo() && r.head(self.state.load(Relaxed)).is_some();
        if added.is_some() && queued {
            r.bump();
        }
        drop(locked);
        match added {
            None => Err(ReleaseError::Overflow),
            Some(_) if queued => {
                r.wake_queue();
                Ok(())
            }
            Some(s) => {
                if s & SLEEPERS != 0 {
                    self.wake_sleepers(s, n);
                }
                Ok(())
            }
        }
    }

    /// `drain` of a managed semaphore (0 if the mutex cannot be taken, or
    /// while FIFO waiters are queued, who come first).
    pub(crate) fn recover_drain(&self, owner: &Owner) -> u64 {
        let r = owner.recovery();
        let Ok(locked) = r.lock(self, Wait::Never) else {
            return 0;
        };
        let Ok(k) = r.slot(self, owner) else {
            return 0;
        };
        if r.fifo() && r.head(self.state.load(Relaxed)).is_some() {
            return 0;
        }
        // (As in-process, a drain works after a shutdown too.)
        let taken = r.commit(self, k, &|s, mut image, unreported| {
            let count = s & COUNT;
            if count == 0 {
                return None;
            }
            image.held = image.held.saturating_add(count as i64);
            Some((s - count, image, unreported.saturating_sub(count)))
        });
        drop(locked);
        taken.map_or(0, |s| s & COUNT)
    }

    /// Ends a wait kept in `place` (for `n` permits) without taking
    /// anything: its registration and ticket leave, and those behind it
    /// look again. Nothing to do if the handle lost its slot (they went
    /// with it).
    pub(crate) fn recover_abandon(&self, owner: &Owner, n: u64, place: Place) {
        if place == Place::default() {
            return;
        }
        let r = owner.recovery();
        let Ok(locked) = r.lock(self, Wait::Forever) else {
            return;
        };
        // (Nothing to end if the slot went, with its waits, or if the place
        // is stale: see `recover_wait`.)
        let Ok(k) = r.slot(self, owner) else {
            return;
        };
        if !r.kept(owner, k, &place) {
            return;
        }
        if place.registered {
            r.commit(self, k, &|s, mut image, unreported| {
                Some((unregistered(s, &mut image, n), image, unreported))
            });
        }
        if let Some(t) = place.ticket {
            r.dequeue(t, k);
            drop(locked);
            r.wake_queue();
        }
    }

    /// After a shutdown of a managed semaphore: FIFO sleepers look again
    /// (they do not sleep on the word, which the shutdown changed).
    pub(crate) fn recover_shutdown(&self, owner: &Owner) {
        let r = owner.recovery();
        if r.fifo() {
            r.bump();
            r.wake_queue();
        }
    }

    /// When a managed handle is made: takes its slot. `ENOSPC` if every
    /// slot is used by a live handle; `EBADF` if its descriptor does not
    /// lead to the semaphore's file; `EAGAIN` if the mutex is unusable.
    pub(crate) fn recover_join(&self, owner: &Owner) -> Result<(), c_int> {
        let r = owner.recovery();
        let locked = r.lock(self, Wait::Forever).map_err(|_| libc::EAGAIN)?;
        let joined = r.slot(self, owner).map(|_| ());
        drop(locked);
        joined
    }

    /// When a managed handle is freed: gives its slot's permits back (as
    /// if its process died; `SEM_RECOVER` only) and frees the slot. Returns
    /// whether the handle's descriptor is still its own, for the caller to
    /// close (not if the program closed it: its number may be another
    /// file's, or another handle's, now), then the caller unmaps.
    pub(crate) fn recover_leave(&self, owner: &Owner) -> bool {
        let r = owner.recovery();
        let fd = owner.fd();
        if owner.lost() || fd < 0 {
            return false;
        }
        let other = crate::shm::reopen(fd);
        let ours = |slot| {
            let ours = still_ours(r, fd, slot, other);
            if other >= 0 {
                // SAFETY: ours, used by nothing else.
                unsafe { libc::close(other) };
            }
            ours
        };
        let Some(k) = owner.slot() else {
            return ours(None);
        };
        let Ok(locked) = r.lock(self, Wait::Forever) else {
            return ours(Some(k));
        };
        if r.slots[k].tag.load(Relaxed) != owner.tag() {
            drop(locked);
            let _ = ours(Some(k));
            return false; // reclaimed: its description was closed
        }
        let ours = ours(Some(k));
        let given = r.reclaim(self, k);
        drop(locked);
        if given > 0 {
            self.wake_all_sleepers();
            if r.fifo() {
                r.wake_queue();
            }
        }
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm;

    /// A new anonymous recover-mode semaphore (never freed: tests are
    /// short processes).
    fn recover_sem(value: u64, max: u64) -> &'static Semaphore {
        let p = shm::create_anonymous(value, max, SEM_RECOVER).unwrap();
        // SAFETY: a live mapping that is never unmapped.
        unsafe { &*p }
    }

    /// A thread takes the mutex, starts a change that takes one permit
    /// (the journal, and the word's compare-and-swap if `swapped`), and
    /// exits holding the mutex, as a process killed there would leave it
    /// (robust mutexes see a thread's exit as its owner's death). Returns
    /// the slot it used.
    fn die_inside_a_change(sem: &'static Semaphore, swapped: bool) -> usize {
        std::thread::spawn(move || {
            let owner = shm::owner(sem).unwrap();
            let r = owner.recovery();
            let locked = r.lock(sem, Wait::Forever).unwrap();
            let k = r.slot(sem, &owner).unwrap();
            let s = sem.state.load(Relaxed);
            let before = r.slots[k].get();
            let after = Image {
                held: before.held + 1,
                ..before
            };
            r.begin(k, s - 1, (before, after), (0, 0));
            if swapped {
                sem.state.store(s - 1, Relaxed);
            }
            core::mem::forget(locked);
            k
        })
        .join()
        .unwrap()
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "memfd, robust mutexes and OFD locks: system calls Miri does not model"
    )]
    fn a_change_cut_after_the_word_is_completed() {
        let sem = recover_sem(2, 2);
        let k = die_inside_a_change(sem, true);
        let owner = shm::owner(sem).unwrap();
        let r = owner.recovery();
        // The next locker repairs: the slot holds the permit the word lost.
        drop(r.lock(sem, Wait::Forever).unwrap());
        assert_eq!(r.slots[k].get().held, 1);
        assert_eq!(sem.state.load(Relaxed) & COUNT, 1);
        // So giving that slot back restores the count exactly.
        let locked = r.lock(sem, Wait::Forever).unwrap();
        assert_eq!(r.reclaim(sem, k), 1);
        drop(locked);
        assert_eq!(sem.state.load(Relaxed) & COUNT, 2);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "memfd, robust mutexes and OFD locks: system calls Miri does not model"
    )]
    fn a_change_cut_before_the_word_is_undone() {
        let sem = recover_sem(2, 2);
        let k = die_inside_a_change(sem, false);
        let owner = shm::owner(sem).unwrap();
        let r = owner.recovery();
        drop(r.lock(sem, Wait::Forever).unwrap());
        assert_eq!(r.slots[k].get().held, 0);
        assert_eq!(sem.state.load(Relaxed) & COUNT, 2);
        assert_eq!(r.journal.active.load(Relaxed), 0);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "memfd, robust mutexes and OFD locks: system calls Miri does not model"
    )]
    fn a_scan_stamp_from_another_clock_ahead_is_stale() {
        // A process in a time namespace whose monotonic clock is ahead
        // stamped the last scan in our future: scans must go on.
        let sem = recover_sem(1, 1);
        let owner = shm::owner(sem).unwrap();
        let r = owner.recovery();
        let locked = r.lock(sem, Wait::Forever).unwrap();
        r.scanned_at.store(u64::MAX / 2, Relaxed);
        r.scan(sem, owner.fd(), None, false);
        drop(locked);
        assert!(r.scanned_at.load(Relaxed) < u64::MAX / 2);
    }
}
