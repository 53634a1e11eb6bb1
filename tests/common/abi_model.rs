//! A reference model of the C ABI, shared by the model-based property test
//! (tests/model.rs) and the fuzz target (fuzz/fuzz_targets/abi_ops.rs).
//!
//! A `Checker` owns one semaphore and the model of its count; each `step`
//! draws an operation and its arguments (mostly edge values: NULL-free but
//! NaN, infinities, 0, negatives, INT64_MIN/MAX, huge n) from a `Source`,
//! applies it to both, and panics on the first difference. Nothing blocks for
//! long: blocking acquires run only when the model says they succeed at once.

use rsem::ffi::*;
use rsem::status::*;

/// Where the operations and arguments come from.
pub trait Source {
    fn next(&mut self) -> u64;

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The reference: what the semaphore must hold.
#[derive(Debug, Clone)]
pub struct Model {
    pub value: i64,
    pub max: i64,
    pub closed: bool,
}

pub struct Checker {
    sem: *mut rsem::Semaphore,
    model: Model,
    /// Operations checked so far.
    pub steps: u64,
}

impl Drop for Checker {
    fn drop(&mut self) {
        // SAFETY: `sem` came from `sem_new_ex` and nobody else uses it.
        unsafe { sem_free(self.sem) };
    }
}

/// A count argument: an edge value, one near the model's value or max, a
/// small one, or anything at all.
fn count_arg(src: &mut impl Source, m: &Model) -> i64 {
    let edges = [
        0,
        1,
        2,
        3,
        -1,
        i64::MIN,
        i64::MAX,
        SEM_COUNT_MAX,
        SEM_COUNT_MAX + 1,
        1 << 40,
        m.value,
        m.value.saturating_add(1),
        m.max,
        m.max.saturating_add(1),
        m.max - m.value,
        m.max - m.value + 1,
    ];
    match src.below(8) {
        0..=2 => 1 + src.below(4) as i64,
        3 => src.next() as i64,
        _ => src.pick(&edges),
    }
}

/// A timeout that never blocks for long: NaN, non-positive ones, or a tiny
/// positive one.
fn timeout_arg(src: &mut impl Source) -> f64 {
    src.pick(&[
        f64::NAN,
        -f64::NAN,
        0.0,
        -0.0,
        -1.0,
        f64::NEG_INFINITY,
        f64::MIN,
        -f64::MIN_POSITIVE,
        1e-9,
        1e-300,
    ])
}

/// What an acquire of `n` must return (`args_ok`: its other arguments, such
/// as the timeout, are valid); takes the permits from the model on success.
fn expect_acquire(m: &mut Model, n: i64, args_ok: bool) -> i32 {
    if !args_ok || n < 1 || n > m.max {
        return SEM_EINVAL;
    }
    if m.closed {
        return SEM_ECLOSED;
    }
    if m.value >= n {
        m.value -= n;
        SEM_OK
    } else {
        SEM_TIMEDOUT
    }
}

impl Checker {
    /// Creates a semaphore from drawn arguments (mostly valid ones) and
    /// checks that `sem_new_ex` accepts exactly the valid ones.
    pub fn create(src: &mut impl Source) -> Option<Checker> {
        let value = match src.below(4) {
            0 => count_arg(
                src,
                &Model {
                    value: 0,
                    max: 0,
                    closed: false,
                },
            ),
            _ => src.below(5) as i64,
        };
        let max = match src.below(8) {
            0 => {
                let any = src.next() as i64;
                src.pick(&[-1, 0, SEM_COUNT_MAX + 1, i64::MIN, any])
            }
            1 | 2 => SEM_COUNT_MAX,
            3 => value,
            _ => value.saturating_add(src.below(4) as i64),
        };
        let flags = match src.below(8) {
            0 => src.next() as u32,
            1 => 2,
            2..=4 => SEM_FIFO,
            _ => 0,
        };
        let valid = (0..=SEM_COUNT_MAX).contains(&value)
            && (value..=SEM_COUNT_MAX).contains(&max)
            && flags & !SEM_FIFO == 0;
        // SAFETY: no preconditions.
        let sem = unsafe { sem_new_ex(value, max, flags) };
        assert_eq!(!sem.is_null(), valid, "sem_new_ex({value}, {max}, {flags})");
        (!sem.is_null()).then(|| Checker {
            sem,
            model: Model {
                value,
                max,
                closed: false,
            },
            steps: 0,
        })
    }

    /// Applies one drawn operation to the semaphore and the model, and checks
    /// the result and the count afterwards.
    pub fn step(&mut self, src: &mut impl Source) {
        let s = self.sem;
        let m = &mut self.model;
        let before = m.clone();
        // SAFETY (every call below): `s` is a live handle owned by `self`.
        let (what, got, want): (String, i64, i64) = unsafe {
            match src.below(12) {
                0 => {
                    let want = expect_acquire(m, 1, true);
                    ("try_acquire".into(), sem_try_acquire(s).into(), want.into())
                }
                1 => {
                    let t = timeout_arg(src);
                    let want = expect_acquire(m, 1, !t.is_nan());
                    (
                        format!("acquire_timed({t})"),
                        sem_acquire_timed(s, t).into(),
                        want.into(),
                    )
                }
                2 => {
                    let n = count_arg(src, m);
                    let t = timeout_arg(src);
                    let want = expect_acquire(m, n, !t.is_nan());
                    let got = sem_acquire_many(s, n, t);
                    (format!("acquire_many({n}, {t})"), got.into(), want.into())
                }
                3 => {
                    let n = count_arg(src, m);
                    let now = sem_clock_ns();
                    let any = src.next() as i64 % now.max(1);
                    let d = src.pick(&[i64::MIN, -1, 0, now, now + 1000, any]);
                    let want = expect_acquire(m, n, true);
                    let got = sem_acquire_until(s, n, d);
                    (format!("acquire_until({n}, {d})"), got.into(), want.into())
                }
                4 if m.value >= 1 || m.closed || m.max == 0 => {
                    let want = expect_acquire(m, 1, true);
                    ("acquire".into(), sem_acquire(s).into(), want.into())
                }
                4 | 5 => {
                    let want = if m.value < m.max {
                        m.value += 1;
                        SEM_OK
                    } else {
                        SEM_EOVERFLOW
                    };
                    ("release".into(), sem_release(s).into(), want.into())
                }
                6 | 7 => {
                    let n = count_arg(src, m);
                    let want = if n < 1 {
                        SEM_EINVAL
                    } else if n > m.max - m.value {
                        SEM_EOVERFLOW
                    } else {
                        m.value += n;
                        SEM_OK
                    };
                    (
                        format!("release_n({n})"),
                        sem_release_n(s, n).into(),
                        want.into(),
                    )
                }
                8 => {
                    let want = std::mem::take(&mut m.value);
                    ("drain".into(), sem_drain(s), want)
                }
                9 if src.below(8) == 0 => {
                    m.closed = true;
                    ("shutdown".into(), sem_shutdown(s).into(), SEM_OK.into())
                }
                10 => ("max".into(), sem_max(s), m.max),
                _ => ("waiters".into(), sem_waiters(s), 0),
            }
        };
        assert_eq!(
            got, want,
            "{what} on {before:?} returned {got}, expected {want}"
        );
        // SAFETY: as above.
        let value = unsafe { sem_value(s) };
        assert_eq!(value, m.value, "value after {what} on {before:?}");
        self.steps += 1;
    }
}
