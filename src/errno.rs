//! Setting the C `errno` of the calling thread (how `sem_new` reports why it
//! returned NULL).

use core::ffi::c_int;

/// Sets the calling thread's `errno` to `code`.
pub(crate) fn set_errno(code: c_int) {
    // SAFETY: each platform's errno accessor returns a valid, properly aligned
    // pointer to the calling thread's errno, which only this thread writes.
    unsafe { *errno_location() = code };
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "emscripten"))]
unsafe fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions; glibc, musl and bionic all provide it.
    unsafe { libc::__errno_location() }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
unsafe fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions.
    unsafe { libc::__error() }
}

#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
unsafe fn errno_location() -> *mut c_int {
    // SAFETY: no preconditions.
    unsafe { libc::__errno() }
}

#[cfg(windows)]
unsafe fn errno_location() -> *mut c_int {
    unsafe extern "C" {
        // The C runtime's per-thread errno (msvcrt and ucrt both export it).
        fn _errno() -> *mut c_int;
    }
    // SAFETY: no preconditions.
    unsafe { _errno() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sets_errno() {
        super::set_errno(libc::ENOMEM);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOMEM)
        );
        super::set_errno(libc::EINVAL);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
