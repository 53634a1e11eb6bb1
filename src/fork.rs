//! Fork generations: which process image a wait queue belongs to.
//!
//! After `fork()`, the child has one thread, the one that forked; every
//! other thread of the parent is gone, but whatever it had queued (a wait
//! record on its stack, the queue lock if it held it) is copied into the
//! child. The child's thread library may even give a new thread the stack of
//! a vanished one, so the address of a ghost's record comes back in use.
//!
//! So the library counts forks: a `pthread_atfork` child handler increments
//! [`generation`] in every child, and each semaphore remembers the
//! generation its queue belongs to. The first thread of a later generation
//! that takes a semaphore's queue lock (or finds it held: by a ghost, for
//! all it knows) forgets that queue (`Semaphore::lock`). The handler is
//! installed when the first semaphore is created ([`watch`]); semaphores
//! can only be created through this library, so none exists before.
//!
//! Only `fork()` runs `pthread_atfork` handlers: a child made by `vfork`,
//! `_Fork` or a raw `clone` system call must not use a semaphore it
//! inherited with waiters queued (it should exec or `_exit`, as POSIX asks
//! of such children anyway).
//!
//! Windows has no fork: the generation stays 0. Miri does not model
//! `pthread_atfork`, and its programs do not fork.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;

/// Incremented in every child, by the `pthread_atfork` child handler.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// The current fork generation (0 in the original process).
#[inline]
pub(crate) fn generation() -> u32 {
    // Relaxed: the handler runs in the child before `fork()` returns there,
    // on the only thread the child then has; every later thread of the child
    // is created after it, which orders the store before their loads.
    GENERATION.load(Relaxed)
}

/// Makes sure the child handler is installed (once per process; a forked
/// child inherits it). Never blocks: a `std::sync::Once` would, and a child
/// forked while another thread ran the installation would then hang in its
/// first `sem_new`.
pub(crate) fn watch() {
    #[cfg(all(unix, not(miri)))]
    {
        use core::sync::atomic::AtomicBool;
        static INSTALLED: AtomicBool = AtomicBool::new(false);
        if INSTALLED.load(Relaxed) || INSTALLED.swap(true, Relaxed) {
            return;
        }
        // SAFETY: `pthread_atfork` stores three function pointers (two of
        // them none); `in_child` is an `extern "C"` function of this library,
        // which must stay loaded while its semaphores exist anyway.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        // It fails only without memory (ENOMEM); the semaphores still work
        // in this process, and only a forked child would keep ghosts.
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    }
}

/// The `pthread_atfork` child handler: async-signal-safe (one atomic add),
/// as a handler of a `fork()` called from a signal handler must be.
#[cfg(all(unix, not(miri)))]
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Relaxed);
}
