//! Concurrent soak test: many threads run random mixes of every operation of
//! the C ABI on shared semaphores (default and FIFO mode) for a while; at the
//! end the count must equal initial + released - acquired - drained, and no
//! thread may be left blocked. Every 20 ms the run pauses: each worker stops
//! between operations or stays asleep in the queue, and once every worker is
//! one or the other (seen in one snapshot of the queue), the liveness oracle
//! (src/oracle.rs) checks the queue: nobody asleep who could be served.
//!
//! Quick by default (about 2 s per mode); `RSEM_SOAK_SECS=300` for a long run.

use rsem::ffi::*;
use rsem::status::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const INITIAL: i64 = 3;
const MAX: i64 = 16;

struct Handle(*mut rsem::Semaphore);
// SAFETY: the semaphore is built for use from any thread; the pointer stays
// valid until the test frees it after joining every thread.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

#[derive(Default)]
struct Tally {
    acquired: AtomicI64,
    released: AtomicI64,
    drained: AtomicI64,
    operations: AtomicU64,
    /// Set by the main thread to pause the workers for an oracle check.
    pause: AtomicBool,
    /// Workers stopped between operations while `pause` is set.
    paused: AtomicUsize,
}

fn worker(id: u64, sem: &Handle, tally: &Tally, stop: &AtomicBool) {
    let s = sem.0;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(id + 1) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Permits this thread holds and will give back before leaving.
    let mut held: i64 = 0;
    while !stop.load(Relaxed) {
        if tally.pause.load(Relaxed) {
            tally.paused.fetch_add(1, Relaxed);
            while tally.pause.load(Relaxed) {
                thread::yield_now();
            }
            tally.paused.fetch_sub(1, Relaxed);
        }
        tally.operations.fetch_add(1, Relaxed);
        let n = 1 + (next() % 3) as i64;
        // Waiting without limit while holding permits could deadlock the
        // test itself (hold and wait), and even-numbered threads never wait
        // without limit, so someone always keeps releasing.
        let unlimited = held == 0 && id % 2 == 1;
        let (result, asked) = unsafe {
            match next() % 10 {
                0 if unlimited => (sem_acquire(s), 1),
                0 => (sem_acquire_timed(s, 0.001), 1),
                1 => (sem_try_acquire(s), 1),
                2 => (sem_acquire_timed(s, (next() % 300) as f64 / 1e6), 1),
                3 => (sem_acquire_many(s, n, (next() % 300) as f64 / 1e6), n),
                4 if unlimited => (sem_acquire_many(s, n, f64::INFINITY), n),
                4 => (sem_acquire_many(s, n, 0.001), n),
                5 => (
                    sem_acquire_until(s, n, sem_clock_ns() + (next() % 300_000) as i64),
                    n,
                ),
                6 => {
                    let d = sem_drain(s);
                    assert!(d >= 0);
                    tally.drained.fetch_add(d, Relaxed);
                    continue;
                }
                _ => {
                    // Give back what we hold, or add new permits.
                    let give = if held > 0 { held.min(n) } else { n };
                    match sem_release_n(s, give) {
                        SEM_OK => {
                            tally.released.fetch_add(give, Relaxed);
                            held = (held - give).max(0);
                        }
                        r => assert_eq!(r, SEM_EOVERFLOW),
                    }
                    assert!(sem_value(s) >= 0 && sem_value(s) <= MAX);
                    assert!(sem_waiters(s) >= 0);
                    continue;
                }
            }
        };
        match result {
            SEM_OK => {
                tally.acquired.fetch_add(asked, Relaxed);
                held += asked;
            }
            SEM_TIMEDOUT => {}
            SEM_ECLOSED => break,
            r => panic!("unexpected status {r}"),
        }
    }
    // Give back what we hold (releases work after a shutdown), unless others
    // added so many new permits meanwhile that they no longer fit; those stay
    // acquired, which the final tally accounts for.
    if held > 0 {
        match unsafe { sem_release_n(s, held) } {
            SEM_OK => {
                tally.released.fetch_add(held, Relaxed);
            }
            r => assert_eq!(r, SEM_EOVERFLOW),
        }
    }
}

fn soak(flags: u32, run_for: Duration) {
    let sem = Arc::new(Handle(unsafe { sem_new_ex(INITIAL, MAX, flags) }));
    assert!(!sem.0.is_null());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|id| {
            let (sem, tally, stop) = (sem.clone(), tally.clone(), stop.clone());
            thread::spawn(move || worker(id, &sem, &tally, &stop))
        })
        .collect();
    let start = Instant::now();
    let mut checks = 0;
    while start.elapsed() < run_for {
        thread::sleep(Duration::from_millis(20)); // pacing the run, not a proof
        // Every holder returns its permits eventually, so the count can never
        // be stuck above what the tally allows.
        assert!(unsafe { sem_value(sem.0) } <= MAX);
        checks += quiescent_check(&sem, &tally);
    }
    stop.store(true, Relaxed);
    // Threads blocked without limit need the shutdown to leave.
    assert_eq!(unsafe { sem_shutdown(sem.0) }, SEM_OK);
    for t in threads {
        t.join().expect("worker panicked");
    }
    let value = unsafe { sem_value(sem.0) };
    let (acquired, released, drained) = (
        tally.acquired.load(Relaxed),
        tally.released.load(Relaxed),
        tally.drained.load(Relaxed),
    );
    println!(
        "soak ({}): {} operations in {:?}; acquired {acquired}, released {released}, drained {drained}, left {value}; {checks} oracle checks",
        if flags == SEM_FIFO { "fifo" } else { "default" },
        tally.operations.load(Relaxed),
        run_for
    );
    assert!(checks > 0, "no quiescent moment was checked");
    assert_eq!(value, INITIAL + released - acquired - drained);
    assert_eq!(unsafe { sem_waiters(sem.0) }, 0);
    assert!(tally.operations.load(Relaxed) > 1000, "the soak barely ran");
    unsafe { sem_free(sem.0) };
}

/// Pauses the workers until each is stopped or asleep in the queue (in one
/// snapshot), and checks the liveness oracle there. Returns 1 if it checked,
/// 0 if no quiescent moment came within a second (all workers busy holding
/// permits in timed waits is possible, if unlikely).
fn quiescent_check(sem: &Handle, tally: &Tally) -> u32 {
    tally.pause.store(true, Relaxed);
    let start = Instant::now();
    let mut checked = 0;
    while start.elapsed() < Duration::from_secs(1) {
        let paused = tally.paused.load(Relaxed);
        // SAFETY: the handle is live until the test frees it at the end.
        let (queued, verdict) = unsafe { &*sem.0 }.liveness();
        if paused + queued == THREADS {
            if let Err(e) = verdict {
                panic!("liveness oracle: {e}");
            }
            checked = 1;
            break;
        }
        thread::yield_now();
    }
    tally.pause.store(false, Relaxed);
    checked
}

fn duration() -> Duration {
    let secs: f64 = std::env::var("RSEM_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

#[test]
fn soak_default_mode() {
    soak(0, duration());
}

#[test]
fn soak_fifo_mode() {
    soak(SEM_FIFO, duration());
}
