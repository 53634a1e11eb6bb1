//! rsem: a counting semaphore with the semantics of Python's
//! `threading.Semaphore` and `BoundedSemaphore`, shipped as a C ABI library
//! (`librsem.so`, `librsem.a`, `rsem.dll`) with the header `include/rsem.h`.
//!
//! | module      | what it holds                                             |
//! |-------------|-----------------------------------------------------------|
//! | `semaphore` | the one state machine: atomic word, fast and slow paths   |
//! | `ffi`       | the `extern "C"` functions (`sem_*`) and their checks     |
//! | `status`    | the `SEM_*` codes and flags, with fixed values            |
//! | `ffi_async` | the `extern "C"` functions of async acquires and notifiers|
//! | `ffi_shared`| the `extern "C"` functions that make process-shared ones |
//! | `shared`    | how a process-shared semaphore waits (shared futex)       |
//! | `shm`       | where a process-shared semaphore lives (shared mapping)   |
//! | `completion`| an async waiter's ticket and the delivery of its outcome  |
//! | `notifier`  | completions queued for an event loop behind an eventfd    |
//! | `timer`     | the thread that keeps async waiters' deadlines            |
//! | `deadline`  | timeouts and deadlines on the monotonic clock             |
//! | `policy`    | which queued waiters a release serves (pure decisions)    |
//! | `parking`   | where a blocked thread sleeps (futex; parking_lot_core)   |
//! | `fork`      | a forked child's semaphores: the parent's waiters dropped |
//! | `oracle`    | the liveness property, checked by tests                   |
//! | `spin`      | the spin lock of the process-wide registries              |
//! | `load`      | whether the machine is loaded (acquirers then do not spin)|
//! | `errno`     | setting C's `errno`                                       |
//! | `panic`     | the panic boundary                                        |

mod completion;
mod deadline;
mod errno;
pub mod ffi;
pub mod ffi_async;
pub mod ffi_shared;
pub mod ffi_slice;
mod fork;
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod load;
mod notifier;
mod oracle;
mod panic;
mod parking;
mod policy;
#[cfg(all(target_os = "linux", not(loom)))]
mod recover;
mod semaphore;
#[cfg(all(target_os = "linux", not(loom)))]
mod shared;
#[cfg(all(target_os = "linux", not(loom)))]
mod shm;
mod spin;
pub mod status;
#[cfg(not(loom))]
mod timer;

pub use deadline::{Wait, clock_ns, from_deadline_ns, from_timeout_seconds};
pub use semaphore::{COUNT_MAX, RECORD_SIZE, Semaphore, Submitted};
pub use status::{AcquireError, ReleaseError};
