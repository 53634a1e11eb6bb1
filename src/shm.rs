//! Where a process-shared semaphore lives: a small shared mapping, named (a
//! file in `/dev/shm`) or anonymous (inherited by `fork()`ed children),
//! that holds the `Semaphore` at offset 0 and, after it, a header that says
//! it is one. How it waits is `shared.rs`'s.
//!
//! - **Create by name.** The creator makes an unnamed file (`O_TMPFILE` in
//!   `/dev/shm`), sizes it, maps it, writes the semaphore and then the
//!   header's magic, and only then gives it its name (`linkat`, which fails
//!   if the name exists). So a name always leads to a whole semaphore; a
//!   creator killed half-way leaves nothing behind, and two creators race
//!   for the name, the loser opening the winner's.
//! - **Open by name.** Map the file and check the header (magic, layout
//!   version, the parameters' bytes) before anything reads the semaphore.
//! - **Remove the name** with `unlink`: handles already open keep working;
//!   the memory goes when the last of them is unmapped (the kernel counts
//!   the file's users).
//! - **Free a handle**: unmap it.
//! - **Which handles are shared** is known per process, never read from the
//!   shared memory: other processes can write that memory, and a peer that
//!   flipped a "shared" flag there could otherwise send this process down
//!   the in-process paths, which follow pointers stored in the semaphore.
//!   The addresses of this process's mappings are kept in a small table
//!   (inherited by `fork()`, as the mappings are).

use core::ffi::{CStr, c_int, c_void};
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU64, AtomicUsize};
use std::ffi::CString;

use crate::recover::Recovery;
use crate::semaphore::Semaphore;
use crate::status::{SEM_CREATE, SEM_EXCL};

/// The mapping: the semaphore first (the handle points at it), then the
/// header, written last by the creator.
#[repr(C)]
struct Region {
    semaphore: Semaphore,
    /// `LAYOUT`: this library's layout of `Region`.
    layout: u64,
    /// `MAGIC` once the region is whole (stored last, with `Release`).
    magic: AtomicU64,
    /// Crash recovery (`recover.rs`); all zeros unless `SEM_RECOVER`.
    recovery: Recovery,
}

const MAGIC: u64 = u64::from_le_bytes(*b"rsem-shd");
/// This library's layout (sizes, offsets, pointer width, byte order, and
/// the shared word's version): a library of another layout refuses the
/// file (`EINVAL`).
const LAYOUT: u64 = (crate::semaphore::SHARED_LAYOUT ^ 2).wrapping_mul(0x0100_0000_01b3)
    ^ (core::mem::size_of::<Region>() as u64);

/// Where named semaphores live, and the prefix of their file names.
const DIR: &str = "/dev/shm";
const PREFIX: &str = "rsem.";

/// The addresses of this process's shared mappings: an open-addressing
/// table (linear probing from a hash of the address), 0 for a slot never
/// used, `FREED` for one whose mapping went (so that probes go on past it).
/// Lock-free: a slot is taken by compare-and-swap.
const TABLE: usize = 4096;
const FREED: usize = usize::MAX;
static MAPPED: [AtomicUsize; TABLE] = [const { AtomicUsize::new(0) }; TABLE];
/// How many slots hold an address: while 0 (a process with no shared
/// handle), `is_mapped` is one load of this rarely written word, which keeps
/// the in-process slow paths as they were.
static IN_USE: AtomicUsize = AtomicUsize::new(0);
/// Beside each slot of `MAPPED`, for a `SEM_RECOVER` handle: bit 63 set,
/// its file descriptor + 1 in bits 32..=62 (0: it has none) and its
/// recovery slot + 1 in the low 32 (0: none taken yet; `LOST`: it lost it).
/// 0 for any other handle.
static OWNERS: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];
/// The low half of an `OWNERS` entry whose handle lost its slot.
const LOST: u32 = u32::MAX;
/// Beside each `OWNERS` entry with a slot: the tag this handle wrote into
/// its slot when it took it (see `recover.rs`: a slot reclaimed from under
/// a live handle shows another tag).
static TAGS: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];

/// A `SEM_RECOVER` handle of this process: where its descriptor and slot
/// are kept.
pub(crate) struct Owner {
    index: usize,
    region: *mut Region,
}

impl Owner {
    /// The handle's own file description (-1 if a forked child could not
    /// reopen it).
    pub(crate) fn fd(&self) -> c_int {
        (((OWNERS[self.index].load(Acquire) >> 32) & 0x7FFF_FFFF) as c_int) - 1
    }

    /// The handle's recovery slot, once it has one (and until it lost it).
    pub(crate) fn slot(&self) -> Option<usize> {
        match OWNERS[self.index].load(Acquire) as u32 {
            LOST => None,
            k => k.checked_sub(1).map(|k| k as usize),
        }
    }

    /// Whether the handle lost its slot (`recover.rs`: it is dead).
    pub(crate) fn lost(&self) -> bool {
        OWNERS[self.index].load(Acquire) as u32 == LOST
    }

    /// Records that the handle lost its slot, for good (under the recovery
    /// mutex).
    pub(crate) fn set_lost(&self) {
        let fd = OWNERS[self.index].load(Acquire) & !0xFFFF_FFFF;
        TAGS[self.index].store(0, Release);
        OWNERS[self.index].store(fd | u64::from(LOST), Release);
    }

    /// The tag the handle wrote into its slot.
    pub(crate) fn tag(&self) -> u64 {
        TAGS[self.index].load(Acquire)
    }

    /// Records the handle's slot `k` and its tag (under the recovery
    /// mutex).
    pub(crate) fn set_slot(&self, k: usize, tag: u64) {
        let fd = OWNERS[self.index].load(Acquire) & !0xFFFF_FFFF;
        TAGS[self.index].store(tag, Release);
        OWNERS[self.index].store(fd | (k as u64 + 1), Release);
    }

    /// The semaphore's recovery area.
    pub(crate) fn recovery(&self) -> &Recovery {
        // SAFETY: the region is mapped while its handle is in use, which
        // outlives this `Owner` (made from the handle for one call).
        unsafe { &(*self.region).recovery }
    }
}

/// The packed `OWNERS` entry of descriptor `fd` (-1: none) without a slot.
fn owner_entry(fd: c_int) -> u64 {
    let fd = u64::try_from(fd.saturating_add(1)).unwrap_or(0) & 0x7FFF_FFFF;
    (1 << 63) | (fd << 32)
}

/// Where the probe for `address` starts.
fn home(address: usize) -> usize {
    let page = (address >> 12) as u64;
    (page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize % TABLE
}

/// Whether `semaphore` is one of this process's shared mappings (a few
/// loads: the table is sparse, and a probe ends at the first unused slot).
#[inline]
pub(crate) fn is_mapped(semaphore: *const Semaphore) -> bool {
    // A handle that is mapped was recorded before it was handed out, which
    // happens-before any use of it (by the caller's own synchronization).
    let address = semaphore as usize;
    // Mappings are page-aligned; heap semaphores mostly are not.
    if IN_USE.load(Relaxed) == 0 || !address.is_multiple_of(4096) {
        return false;
    }
    probe(address)
}

/// `is_mapped`'s probe of the table.
#[inline(never)]
fn probe(address: usize) -> bool {
    index_of(address).is_some()
}

/// Where the table holds `address`, if it does.
fn index_of(address: usize) -> Option<usize> {
    let mut i = home(address);
    for _ in 0..TABLE {
        match MAPPED[i].load(Acquire) {
            0 => return None,
            a if a == address => return Some(i),
            _ => i = (i + 1) % TABLE,
        }
    }
    None
}

/// The handle's `Owner` if it is a `SEM_RECOVER` handle of this process
/// (known from this process's table, never from the shared memory).
pub(crate) fn owner(semaphore: &Semaphore) -> Option<Owner> {
    let address = core::ptr::from_ref(semaphore) as usize;
    let index = index_of(address)?;
    (OWNERS[index].load(Acquire) != 0).then_some(Owner {
        index,
        region: address as *mut Region,
    })
}

/// Records `region` in the table, with its `OWNERS` entry (0, or a
/// recover-mode handle's descriptor); `ENFILE` if the table is full (4,096
/// shared handles open in this process).
fn remember(region: *mut Region, entry: u64) -> Result<(), c_int> {
    let address = region as usize;
    let mut i = home(address);
    let mut probes = 0;
    while probes < TABLE {
        let slot = MAPPED[i].load(Relaxed);
        if slot == 0 || slot == FREED {
            match MAPPED[i].compare_exchange(slot, address, AcqRel, Relaxed) {
                Ok(_) => {
                    OWNERS[i].store(entry, Release);
                    IN_USE.fetch_add(1, Release);
                    return Ok(());
                }
                // Taken, or cleared by `forget`: look at the same slot
                // again (moving on past a slot that became 0 would put the
                // address where a probe stopping at that 0 misses it).
                Err(_) => continue,
            }
        }
        i = (i + 1) % TABLE;
        probes += 1;
    }
    Err(libc::ENFILE)
}

/// Takes `region` out of the table.
fn forget(region: *mut Region) {
    let address = region as usize;
    let mut i = home(address);
    for _ in 0..TABLE {
        match MAPPED[i].load(Relaxed) {
            0 => return,
            a if a == address => {
                OWNERS[i].store(0, Release);
                TAGS[i].store(0, Release);
                MAPPED[i].store(FREED, Release);
                IN_USE.fetch_sub(1, Release);
                clear_from(i);
                return;
            }
            _ => i = (i + 1) % TABLE,
        }
    }
}

/// Turns `FREED` slots back to 0 from `i` backwards while the slot after
/// each is 0, so that tombstones do not pile up and lengthen the probes of
/// addresses that are not in the table. Sound because no probe chain
/// crosses a 0: an address is always placed at the first free slot of its
/// chain, and an insert that loses a slot to this looks at it again.
fn clear_from(mut i: usize) {
    for _ in 0..TABLE {
        if MAPPED[(i + 1) % TABLE].load(Acquire) != 0
            || MAPPED[i]
                .compare_exchange(FREED, 0, AcqRel, Relaxed)
                .is_err()
        {
            return;
        }
        i = (i + TABLE - 1) % TABLE;
    }
}

/// A region that is whole, as a handle: recorded in the table first (or
/// unmapped, with `ENFILE`). `fd` is the file's descriptor, if any
/// (closed): a managed semaphore's handle keeps a new description of the
/// file (and takes a recovery slot).
fn handle(region: *mut Region, fd: Option<c_int>) -> Result<*mut Semaphore, c_int> {
    handle_with(region, fd, None)
}

/// `handle`, with the managed handle's descriptor opened already (`lock`,
/// see `create`).
fn handle_with(
    region: *mut Region,
    fd: Option<c_int>,
    lock: Option<c_int>,
) -> Result<*mut Semaphore, c_int> {
    // SAFETY: the region is mapped and whole (checked or written).
    let recover = unsafe { (*region).recovery.managed() };
    // A managed handle's slot lock lives on a description that nothing but
    // this descriptor refers to: the mapping holds the description it was
    // made through (and a forked child inherits the mapping), so a lock on
    // that one would outlive the process, and survive the descriptor's
    // close.
    // (Reopened through `/proc`: without it, the errno of the open.)
    let reopened = match lock {
        Some(lock) => Some(Ok(lock)),
        None => fd.filter(|_| recover).map(|fd| match reopen(fd) {
            -1 => Err(errno()),
            new => Ok(new),
        }),
    };
    if let Some(fd) = fd {
        // SAFETY: `fd` is ours; the mapping keeps the file.
        unsafe { libc::close(fd) };
    }
    if let Some(Err(e)) = reopened {
        // SAFETY: nobody in this process has the handle yet.
        unsafe { unmap_region(region) };
        return Err(e);
    }
    let kept = reopened.and_then(Result::ok);
    let failed = |e: c_int| {
        if let Some(fd) = kept {
            // SAFETY: `fd` is ours and nothing else uses it.
            unsafe { libc::close(fd) };
        }
        // SAFETY: nobody in this process has the handle yet.
        unsafe { unmap_region(region) };
        Err(e)
    };
    if recover && kept.is_none() {
        return failed(libc::EINVAL);
    }
    if let Err(e) = remember(region, kept.map_or(0, owner_entry)) {
        return failed(e);
    }
    // A recover-mode handle takes its slot now, so that a full table is an
    // error of the open, not of a later call.
    // SAFETY: the region is mapped and recorded.
    let semaphore = unsafe { &(*region).semaphore };
    if let Some(owner) = owner(semaphore)
        && let Err(e) = semaphore.recover_join(&owner)
    {
        forget(region);
        return failed(e);
    }
    Ok(region.cast())
}

/// The mapping's length: `Region`, rounded up to whole pages.
fn length() -> usize {
    // SAFETY: sysconf has no memory-safety requirements.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    core::mem::size_of::<Region>().div_ceil(page.max(1)) * page.max(1)
}

/// The calling thread's errno.
fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The file of semaphore `name` ("/name" or "name": one component, 1 to 250
/// bytes, no '/'), or `EINVAL`.
fn path_of(name: &CStr) -> Result<CString, c_int> {
    let bytes = name.to_bytes();
    let bare = bytes.strip_prefix(b"/").unwrap_or(bytes);
    if bare.is_empty() || bare.len() > 250 || bare.contains(&b'/') {
        return Err(libc::EINVAL);
    }
    let mut path = Vec::with_capacity(DIR.len() + 1 + PREFIX.len() + bare.len());
    path.extend_from_slice(DIR.as_bytes());
    path.push(b'/');
    path.extend_from_slice(PREFIX.as_bytes());
    path.extend_from_slice(bare);
    CString::new(path).map_err(|_| libc::EINVAL)
}

/// Maps `length()` bytes of `fd` (or anonymous memory for `fd == -1`),
/// shared.
fn map(fd: c_int) -> Result<*mut Region, c_int> {
    let flags = if fd < 0 {
        libc::MAP_SHARED | libc::MAP_ANONYMOUS
    } else {
        libc::MAP_SHARED
    };
    // SAFETY: a fresh mapping chosen by the kernel (NULL hint) overlaps
    // nothing of ours; `fd` is open or -1 with MAP_ANONYMOUS.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            length(),
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(errno());
    }
    Ok(p.cast())
}

/// Unmaps a region mapped by `map`.
///
/// # Safety
/// `region` came from `map` and nothing of this process uses it any more.
unsafe fn unmap_region(region: *mut Region) {
    // SAFETY: by this function's contract.
    unsafe { libc::munmap(region.cast::<c_void>(), length()) };
}

/// Writes a new semaphore and then the header into a fresh region (in
/// place, field by field: see `Semaphore::init_shared`); `EINVAL` unless
/// `value <= max <= SHARED_COUNT_MAX`.
///
/// # Safety
/// `region` came from `map` of a new (all-zero) file or anonymous memory,
/// and nobody else can see it yet.
unsafe fn initialize(
    region: *mut Region,
    value: u64,
    max: u64,
    mode: u32,
    fd: c_int,
) -> Result<(), c_int> {
    // SAFETY: `region` is valid for writes of a `Region` (a mapping of at
    // least its size, page-aligned), all zeros, and nobody reads it yet.
    unsafe {
        let semaphore = core::ptr::addr_of_mut!((*region).semaphore);
        if !Semaphore::init_shared(semaphore, value, max, mode != 0) {
            return Err(libc::EINVAL);
        }
        if mode != 0 {
            Recovery::init(core::ptr::addr_of_mut!((*region).recovery), mode, fd)?;
        }
        core::ptr::addr_of_mut!((*region).layout).write(LAYOUT);
        (*region).magic.store(MAGIC, Release);
    }
    Ok(())
}

/// A new anonymous shared semaphore, for this process and the children it
/// forks after this; or an errno. A `recover` one lives in a `memfd` (its
/// slots' locks need a file), the others in anonymous memory.
pub(crate) fn create_anonymous(value: u64, max: u64, mode: u32) -> Result<*mut Semaphore, c_int> {
    let fd = if mode != 0 {
        // SAFETY: the name is a NUL-terminated string.
        let fd = unsafe { libc::memfd_create(c"rsem".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        let length = libc::off_t::try_from(length()).unwrap_or(0);
        // SAFETY: `fd` is our new memfd.
        if unsafe { libc::ftruncate(fd, length) } != 0 {
            let e = errno();
            // SAFETY: ours.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        Some(fd)
    } else {
        None
    };
    let close = |e: c_int| {
        if let Some(fd) = fd {
            // SAFETY: ours, used by nothing else.
            unsafe { libc::close(fd) };
        }
        Err(e)
    };
    let region = match map(fd.unwrap_or(-1)) {
        Ok(region) => region,
        Err(e) => return close(e),
    };
    // SAFETY: a fresh mapping (zeros) that only this thread knows.
    if let Err(e) = unsafe { initialize(region, value, max, mode, fd.unwrap_or(-1)) } {
        // SAFETY: nobody else saw it.
        unsafe { unmap_region(region) };
        return close(e);
    }
    handle(region, fd)
}

/// Opens (and, with `SEM_CREATE`, creates with `value`, `max` and the
/// managed `mode`, see `Recovery`) the named semaphore `name`, its file
/// made with permissions `file_mode`. Returns the handle or an errno.
pub(crate) fn open_named(
    name: &CStr,
    oflag: u32,
    file_mode: u32,
    value: u64,
    max: u64,
    mode: u32,
) -> Result<*mut Semaphore, c_int> {
    let path = path_of(name)?;
    // Another creator may win the name, and its semaphore may be removed
    // before we open it: a few rounds settle every such race.
    for _ in 0..16 {
        if oflag & SEM_EXCL == 0 {
            match open_existing(&path) {
                Err(libc::ENOENT) if oflag & SEM_CREATE != 0 => {}
                other => return other,
            }
        }
        match create(&path, file_mode, value, max, mode) {
            Err(libc::EEXIST) if oflag & SEM_EXCL == 0 => continue,
            other => return other,
        }
    }
    Err(libc::EAGAIN)
}

/// Opens the file at `path` and maps it, if it holds a whole semaphore of
/// this layout (`EINVAL` otherwise).
fn open_existing(path: &CStr) -> Result<*mut Semaphore, c_int> {
    // SAFETY: `path` is a NUL-terminated string.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    let region = match check_size(fd).and_then(|()| map(fd)) {
        Ok(region) => region,
        Err(e) => {
            // SAFETY: `fd` is ours.
            unsafe { libc::close(fd) };
            return Err(e);
        }
    };
    // SAFETY: the mapping is at least `length()` bytes (checked size);
    // `magic` and `layout` are plain integers, valid for any bytes, and the
    // semaphore is not read (beyond its checked bytes) before both match.
    unsafe {
        let whole = (*region).magic.load(Acquire) == MAGIC
            && core::ptr::addr_of!((*region).layout).read() == LAYOUT
            && Semaphore::is_shared_image(core::ptr::addr_of!((*region).semaphore));
        if !whole {
            unmap_region(region);
            libc::close(fd);
            return Err(libc::EINVAL);
        }
    }
    handle(region, Some(fd))
}

/// `Ok` if the file behind `fd` is long enough to hold a region.
fn check_size(fd: c_int) -> Result<(), c_int> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is valid for writes.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(errno());
    }
    match usize::try_from(st.st_size) {
        Ok(size) if size >= length() => Ok(()),
        _ => Err(libc::EINVAL),
    }
}

/// Creates the semaphore and links it at `path`; `EEXIST` if the name is
/// taken.
fn create(
    path: &CStr,
    file_mode: u32,
    value: u64,
    max: u64,
    mode: u32,
) -> Result<*mut Semaphore, c_int> {
    let dir = CString::new(DIR).map_err(|_| libc::EINVAL)?;
    // SAFETY: `dir` is a NUL-terminated string; O_TMPFILE takes a mode.
    let fd = unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            file_mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // A managed handle's own description, opened now: once the file is
    // named with `file_mode`, its owner may not be allowed to open it for
    // writing (0400: only the creator's descriptors can).
    let lock = match mode {
        0 => None,
        _ => match reopen_as_owner(fd) {
            Ok(lock) => Some(lock),
            Err(e) => {
                // SAFETY: `fd` is ours.
                unsafe { libc::close(fd) };
                return Err(e);
            }
        },
    };
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is valid for writes.
    unsafe { libc::fstat(fd, &mut st) };
    let result = fill_and_link(fd, path, value, max, mode);
    if result.is_err() {
        for fd in [Some(fd), lock].into_iter().flatten() {
            // SAFETY: ours.
            unsafe { libc::close(fd) };
        }
    }
    result
        .and_then(|region| handle_with(region, Some(fd), lock))
        .inspect_err(|_| {
            // Named, but no handle: take the name back (if it is still
            // this file's), so that a retry can create it.
            // SAFETY: an all-zero `stat` is a valid value to be overwritten.
            let mut now: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: `path` is a NUL-terminated string; `now` is valid.
            if unsafe { libc::stat(path.as_ptr(), &mut now) } == 0
                && (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
            {
                // SAFETY: as above.
                unsafe { libc::unlink(path.as_ptr()) };
            }
        })
}

/// A new description of the file behind `fd` (see `reopen`), opened for
/// writing even if the file's mode does not let its owner do that (the
/// mode is widened for the owner while it opens, then put back). An errno
/// if it cannot be opened (no `/proc`, or no descriptor left).
fn reopen_as_owner(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is valid for writes.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(errno());
    }
    let mode = st.st_mode & 0o7777;
    let widen = mode & 0o600 != 0o600;
    if widen {
        // SAFETY: `fd` is our new, unnamed file.
        unsafe { libc::fchmod(fd, mode | 0o600) };
    }
    let lock = reopen(fd);
    let e = errno();
    if widen {
        // SAFETY: as above.
        unsafe { libc::fchmod(fd, mode) };
    }
    match lock {
        -1 => Err(e),
        lock => Ok(lock),
    }
}

/// The rest of `create`, with the unnamed file open as `fd`: the region,
/// whole and named.
fn fill_and_link(
    fd: c_int,
    path: &CStr,
    value: u64,
    max: u64,
    mode: u32,
) -> Result<*mut Region, c_int> {
    let length = libc::off_t::try_from(length()).map_err(|_| libc::EINVAL)?;
    // (`AT_EMPTY_PATH` would need a capability; the `/proc` link does not.)
    let proc = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| libc::EINVAL)?;
    // SAFETY: `fd` is an open regular file.
    if unsafe { libc::ftruncate(fd, length) } != 0 {
        return Err(errno());
    }
    let region = map(fd)?;
    // SAFETY: a fresh mapping of a new (all-zero) file that has no name yet:
    // nobody else can see it.
    if let Err(e) = unsafe { initialize(region, value, max, mode, fd) } {
        // SAFETY: nobody else saw it.
        unsafe { unmap_region(region) };
        return Err(e);
    }
    // The file gets its name only now, whole.
    // SAFETY: both paths are NUL-terminated strings.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked != 0 {
        let e = errno();
        // SAFETY: nobody else saw the region.
        unsafe { unmap_region(region) };
        return Err(e);
    }
    Ok(region)
}

/// Removes the name `name`; open handles keep working.
pub(crate) fn unlink_named(name: &CStr) -> Result<(), c_int> {
    let path = path_of(name)?;
    // SAFETY: `path` is a NUL-terminated string.
    if unsafe { libc::unlink(path.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// Frees this process's handle: unmaps it.
///
/// # Safety
/// `semaphore` came from `create_anonymous` or `open_named` (in this
/// process or, for an anonymous one, in a parent before `fork()`), and no
/// thread of this process uses it any more.
pub(crate) unsafe fn unmap(semaphore: *mut Semaphore) {
    // SAFETY: the handle is mapped until the unmap below.
    let owner = owner(unsafe { &*semaphore });
    // A managed handle gives back what it holds, then lets go of its slot's
    // lock: closes its descriptor, if that is still its own (the program
    // may have closed ours and given the number to another file, or to
    // another handle).
    // SAFETY: as above.
    let ours = owner
        .as_ref()
        .is_some_and(|o| unsafe { (*semaphore).recover_leave(o) });
    let fd = owner.filter(|_| ours).map_or(-1, |o| o.fd());
    // Out of the table before the descriptor closes: a fork from another
    // thread must not reopen and close whatever file gets that number next.
    forget(semaphore.cast());
    if fd >= 0 {
        // SAFETY: the handle's own descriptor, used by nothing else now.
        unsafe { libc::close(fd) };
    }
    // SAFETY: the handle is the region's address (the semaphore is at
    // offset 0), by this function's contract.
    unsafe { unmap_region(semaphore.cast()) };
}

/// In a `fork()`ed child (the `pthread_atfork` child handler, while no
/// other thread runs): gives every `SEM_RECOVER` handle a file description
/// of its own, without a slot. The inherited descriptor shares the parent's
/// description, so its locks: the child's operations would count in the
/// parent's slot, and the parent's death would not show while the child
/// lives. Only async-signal-safe calls (`open`, `close`).
pub(crate) fn reopen_after_fork() {
    if IN_USE.load(Relaxed) == 0 {
        return;
    }
    for ((entry, tag), mapped) in OWNERS.iter().zip(&TAGS).zip(&MAPPED) {
        let packed = entry.load(Relaxed);
        let region = mapped.load(Relaxed);
        // (A lost handle stays lost, and its descriptor number is not ours
        // any more: the program closed ours.)
        if packed == 0 || packed as u32 == LOST || region == 0 || region == FREED {
            continue;
        }
        tag.store(0, Relaxed);
        let fd = (((packed >> 32) & 0x7FFF_FFFF) as c_int) - 1;
        // Not reopened in an earlier fork: nothing to reopen (and
        // "/proc/self/fd/-1" must not become descriptor 0's file).
        if fd < 0 {
            continue;
        }
        let new = reopen(fd);
        // The number may not be the handle's any more (the program closed
        // it and gave the number to another file, or another handle):
        // then it is neither kept nor closed, and the child's calls on
        // the handle return `SEM_EBUSY`.
        let slot = (packed as u32).checked_sub(1).map(|k| k as usize);
        // SAFETY: a handle recorded in the table is mapped (the child
        // inherited the parent's mappings).
        let recovery = unsafe { &(*(region as *const Region)).recovery };
        if !crate::recover::still_ours(recovery, fd, slot, new) {
            if new >= 0 {
                // SAFETY: ours, used by nothing else.
                unsafe { libc::close(new) };
            }
            entry.store(owner_entry(-1), Relaxed);
            continue;
        }
        // SAFETY: the inherited descriptor, this handle's.
        unsafe { libc::close(fd) };
        // (-1 if it could not be reopened: the handle's calls then return
        // `SEM_EBUSY`.)
        entry.store(owner_entry(new), Relaxed);
    }
}

/// A new file description of the file behind `fd` (opening
/// `/proc/self/fd/N`), close-on-exec; -1 if that fails. Async-signal-safe
/// (`open` only, the path built on the stack).
pub(crate) fn reopen(fd: c_int) -> c_int {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let (mut v, mut len) = (fd as u32, 0);
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        path[14 + i] = *d;
    }
    // SAFETY: `path` is NUL-terminated (the buffer ends in zeros past the
    // at most 10 digits).
    unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_semaphore_is_at_the_start_and_the_region_fits_a_page() {
        assert_eq!(core::mem::offset_of!(Region, semaphore), 0);
        assert!(core::mem::size_of::<Region>() <= 2 * 4096);
        assert_eq!(length() % 4096, 0);
    }

    #[test]
    fn the_table_finds_what_it_holds_past_freed_slots() {
        // Three fake page addresses with one home slot, then one freed.
        let home_of = |a: usize| home(a);
        let base = 0x7000_0000_0000usize;
        let same: Vec<usize> = (0..100_000)
            .map(|k| base + k * 4096)
            .filter(|&a| home_of(a) == home_of(base))
            .take(3)
            .collect();
        assert_eq!(same.len(), 3);
        let r = |a: usize| a as *mut Region;
        for &a in &same {
            remember(r(a), 0).unwrap();
        }
        assert!(same.iter().all(|&a| is_mapped(a as *const Semaphore)));
        forget(r(same[0]));
        assert!(!is_mapped(same[0] as *const Semaphore));
        assert!(is_mapped(same[2] as *const Semaphore)); // probed past FREED
        assert!(!is_mapped((base + 4096 * 7_777_777) as *const Semaphore));
        for &a in &same[1..] {
            forget(r(a));
        }
        assert!(same.iter().all(|&a| !is_mapped(a as *const Semaphore)));
        // The tombstones went back to 0: probes stay short.
        let h = home_of(base);
        assert!((0..3).all(|k| MAPPED[(h + k) % TABLE].load(Relaxed) == 0));
    }

    #[test]
    fn names_are_one_component() {
        let ok = |n: &str| path_of(&CString::new(n).unwrap());
        assert_eq!(ok("/a").unwrap().to_bytes(), b"/dev/shm/rsem.a");
        assert_eq!(ok("a").unwrap().to_bytes(), b"/dev/shm/rsem.a");
        assert_eq!(ok(""), Err(libc::EINVAL));
        assert_eq!(ok("/"), Err(libc::EINVAL));
        assert_eq!(ok("a/b"), Err(libc::EINVAL));
        assert_eq!(ok("//a"), Err(libc::EINVAL));
        assert_eq!(ok(&"x".repeat(251)), Err(libc::EINVAL));
        assert!(ok(&"x".repeat(250)).is_ok());
    }
}
