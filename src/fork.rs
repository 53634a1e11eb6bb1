//! What a forked child gets: every semaphore as it was, without the parent's
//! waiters.
//!
//! After `fork()`, the child has one thread, the one that forked; every
//! other thread of the parent is gone, but whatever it had queued (a wait
//! record on its stack, the queue lock if it held it) is copied into the
//! child. The child's thread library may even give a new thread the stack of
//! a vanished one, so the address of a ghost's record comes back in use.
//!
//! So every semaphore made through the C API is linked into a registry
//! (`register` in `sem_new*`, `unregister` in `sem_free`), and a
//! `pthread_atfork` child handler resets each one
//! (`Semaphore::forget_after_fork`) before `fork()` returns in the child,
//! while that child runs nothing else: no race is possible there. The
//! prepare handler takes the registry's lock and the parent and child
//! handlers release it, so the list is whole at the fork.
//!
//! The lock is a spin lock (creating and freeing semaphores are short and
//! rare next to acquiring them), so that the child handler can release it by
//! a store whatever state it was in.
//!
//! Only `fork()` runs `pthread_atfork` handlers: a child made by `vfork`,
//! `_Fork` or a raw `clone` system call must not call rsem at all (the
//! registry lock may be held by a thread it does not have; it should exec or
//! `_exit`, as POSIX asks of such children anyway). A `fork()` from a signal
//! handler that interrupted an rsem call is not supported either, nor are
//! `sem_new*`/`sem_free` inside another library's `pthread_atfork` handlers
//! (as with `malloc`). Semaphores made through the Rust API (tests) are not
//! registered.
//!
//! Windows has no fork: the registry is not kept. Miri does not model
//! `pthread_atfork`; the registry is still kept, so Miri checks it.

use crate::semaphore::Semaphore;

/// A semaphore's links in the registry, changed only under its lock.
#[cfg(unix)]
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Links {
    prev: AtomicPtr<Semaphore>,
    next: AtomicPtr<Semaphore>,
}

#[cfg(unix)]
use core::sync::atomic::AtomicPtr;

#[cfg(unix)]
mod registry {
    use super::*;
    use core::ptr;
    use core::sync::atomic::AtomicBool;
    use core::sync::atomic::Ordering::Relaxed;

    /// The registry's lock.
    static LOCKED: crate::spin::SpinLock = crate::spin::SpinLock::new();
    /// The first registered semaphore (under the lock).
    static HEAD: AtomicPtr<Semaphore> = AtomicPtr::new(ptr::null_mut());
    /// Whether the fork handlers are installed.
    #[cfg(not(miri))]
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// Installs the fork handlers when the library is loaded (an ELF
    /// `.init_array` or Mach-O `__mod_init_func` entry): before any thread
    /// can call `sem_new`, so that no fork can overlap the installation (a
    /// child forked while `pthread_atfork` ran in another thread might not
    /// run the handlers, and would inherit the registry lock held).
    #[cfg(not(miri))]
    #[used]
    #[cfg_attr(
        any(target_os = "macos", target_os = "ios"),
        unsafe(link_section = "__DATA,__mod_init_func")
    )]
    #[cfg_attr(
        not(any(target_os = "macos", target_os = "ios")),
        unsafe(link_section = ".init_array")
    )]
    static INSTALL_AT_LOAD: extern "C" fn() = install;

    /// Installs the fork handlers, once. Runs at load time; `register`
    /// calls it too, should a platform not run the entry above, and then it
    /// runs before the registry lock is taken.
    #[cfg(not(miri))]
    extern "C" fn install() {
        if INSTALLED.swap(true, Relaxed) {
            return;
        }
        // SAFETY: `pthread_atfork` stores three `extern "C"` functions of
        // this library, which must stay loaded while its semaphores exist
        // anyway. It fails only without memory (ENOMEM); the semaphores still
        // work in this process, and only a forked child would keep the
        // parent's waiters.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    }

    fn lock() {
        LOCKED.lock();
    }

    fn unlock() {
        LOCKED.unlock();
    }

    /// Adds `sem` to the registry.
    ///
    /// # Safety
    /// `sem` points to a semaphore at its final address that stays there
    /// until `unregister(sem)`.
    pub(crate) unsafe fn register(sem: *const Semaphore) {
        #[cfg(not(miri))]
        install();
        lock();
        let head = HEAD.load(Relaxed);
        // SAFETY: `sem` is live (caller's contract); `head` is a registered,
        // hence live, semaphore; links change only under the lock we hold.
        unsafe {
            let links = (*sem).registry_links();
            links.prev.store(ptr::null_mut(), Relaxed);
            links.next.store(head, Relaxed);
            if !head.is_null() {
                (*head).registry_links().prev.store(sem.cast_mut(), Relaxed);
            }
        }
        HEAD.store(sem.cast_mut(), Relaxed);
        unlock();
    }

    /// Takes `sem` out of the registry.
    ///
    /// # Safety
    /// `sem` was registered and not unregistered since, and is live.
    pub(crate) unsafe fn unregister(sem: *const Semaphore) {
        lock();
        // SAFETY: `sem` and its neighbours are registered, hence live; links
        // change only under the lock we hold.
        unsafe {
            let links = (*sem).registry_links();
            let (prev, next) = (links.prev.load(Relaxed), links.next.load(Relaxed));
            match prev.is_null() {
                true => HEAD.store(next, Relaxed),
                false => (*prev).registry_links().next.store(next, Relaxed),
            }
            if !next.is_null() {
                (*next).registry_links().prev.store(prev, Relaxed);
            }
        }
        unlock();
    }

    /// Before `fork()`, in the forking thread: the registry is whole at the
    /// fork.
    #[cfg(not(miri))]
    extern "C" fn prepare() {
        // The timer's registry first: no path holds both locks, so any
        // order is deadlock-free; this one matches the child's release.
        #[cfg(not(loom))]
        crate::timer::before_fork();
        lock();
    }

    /// After `fork()`, in the parent.
    #[cfg(not(miri))]
    extern "C" fn parent() {
        unlock();
        #[cfg(not(loom))]
        crate::timer::after_fork_in_parent();
    }

    /// After `fork()`, in the child, before `fork()` returns there: resets
    /// every semaphore. The child has one thread, which runs this.
    #[cfg(not(miri))]
    extern "C" fn child() {
        let mut p = HEAD.load(Relaxed);
        while !p.is_null() {
            // SAFETY: registered semaphores are live (the prepare handler
            // held the lock, so none was being created or freed), and no
            // other thread exists to touch them.
            unsafe {
                (*p).forget_after_fork();
                p = (*p).registry_links().next.load(Relaxed);
            }
        }
        unlock();
        #[cfg(not(loom))]
        crate::timer::after_fork_in_child();
        // Process-shared `SEM_RECOVER` handles need descriptions (so locks)
        // of the child's own.
        #[cfg(all(target_os = "linux", not(loom)))]
        crate::shm::reopen_after_fork();
    }
}

#[cfg(unix)]
pub(crate) use registry::{register, unregister};

/// No fork, no registry.
///
/// # Safety
/// None needed; `unsafe` to match the Unix signature.
#[cfg(not(unix))]
pub(crate) unsafe fn register(_sem: *const Semaphore) {}

/// No fork, no registry.
///
/// # Safety
/// None needed; `unsafe` to match the Unix signature.
#[cfg(not(unix))]
pub(crate) unsafe fn unregister(_sem: *const Semaphore) {}
