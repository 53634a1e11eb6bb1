//! Model-based property test of the C ABI: random single-threaded sequences
//! of every operation, with arguments drawn mostly from the edge values C can
//! pass, checked step by step against a reference model of the count.
//!
//! Deterministic: each sequence comes from a seed; a failure names the seed
//! and the step. `RSEM_MODEL_SEQUENCES` sets how many sequences run (default
//! 400 in `cargo test`; scripts/verify runs more).

use rsem::ffi::*;
use rsem::status::*;

/// The reference: what the semaphore must hold.
#[derive(Debug, Clone)]
struct Model {
    value: i64,
    max: i64,
    closed: bool,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A count argument: an edge value, or one near the model's value or max.
fn count_arg(rng: &mut Rng, m: &Model) -> i64 {
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
    if rng.below(3) == 0 {
        1 + rng.below(4) as i64
    } else {
        rng.pick(&edges)
    }
}

/// A timeout that never blocks for long: NaN, non-positive ones, or a tiny
/// positive one.
fn timeout_arg(rng: &mut Rng) -> f64 {
    rng.pick(&[
        f64::NAN,
        0.0,
        -0.0,
        -1.0,
        f64::NEG_INFINITY,
        f64::MIN,
        1e-9,
        1e-300,
    ])
}

/// What an acquire of `n` must return (`args_ok`: the other arguments, such
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

/// Runs one sequence; returns how many operations it checked.
fn run_sequence(seed: u64) -> u64 {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Mostly valid semaphores (small, huge, bounded), sometimes refused ones.
    let value = match rng.below(4) {
        0 => count_arg(
            &mut rng,
            &Model {
                value: 0,
                max: 0,
                closed: false,
            },
        ),
        _ => rng.below(5) as i64,
    };
    let max = match rng.below(8) {
        0 => rng.pick(&[-1, 0, SEM_COUNT_MAX + 1, i64::MIN]),
        1 | 2 => SEM_COUNT_MAX,
        3 => value,
        _ => value.saturating_add(rng.below(4) as i64),
    };
    let flags = rng.pick(&[0, 0, 0, SEM_FIFO, SEM_FIFO, 2, 1 << 31]);
    let valid = (0..=SEM_COUNT_MAX).contains(&value)
        && (value..=SEM_COUNT_MAX).contains(&max)
        && flags & !SEM_FIFO == 0;
    let s = unsafe { sem_new_ex(value, max, flags) };
    assert_eq!(
        !s.is_null(),
        valid,
        "seed {seed}: sem_new_ex({value}, {max}, {flags})"
    );
    if s.is_null() {
        return 0;
    }
    let mut m = Model {
        value,
        max,
        closed: false,
    };

    for step in 0..200 {
        let before = m.clone();
        let op = rng.below(12);
        let (what, got, want): (String, i64, i64) = unsafe {
            match op {
                0 => {
                    let want = expect_acquire(&mut m, 1, true);
                    ("try_acquire".into(), sem_try_acquire(s).into(), want.into())
                }
                1 => {
                    let t = timeout_arg(&mut rng);
                    let want = expect_acquire(&mut m, 1, !t.is_nan());
                    (
                        format!("acquire_timed({t})"),
                        sem_acquire_timed(s, t).into(),
                        want.into(),
                    )
                }
                2 => {
                    let n = count_arg(&mut rng, &m);
                    let t = timeout_arg(&mut rng);
                    let want = expect_acquire(&mut m, n, !t.is_nan());
                    (
                        format!("acquire_many({n}, {t})"),
                        sem_acquire_many(s, n, t).into(),
                        want.into(),
                    )
                }
                3 => {
                    let n = count_arg(&mut rng, &m);
                    let d = rng.pick(&[i64::MIN, -1, 0, sem_clock_ns(), sem_clock_ns() + 1000]);
                    let want = expect_acquire(&mut m, n, true);
                    (
                        format!("acquire_until({n}, {d})"),
                        sem_acquire_until(s, n, d).into(),
                        want.into(),
                    )
                }
                4 if m.value >= 1 || m.closed || m.max == 0 => {
                    let want = expect_acquire(&mut m, 1, true);
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
                    let n = count_arg(&mut rng, &m);
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
                9 if rng.below(8) == 0 => {
                    m.closed = true;
                    ("shutdown".into(), sem_shutdown(s).into(), SEM_OK.into())
                }
                10 => ("max".into(), sem_max(s), m.max),
                _ => ("waiters".into(), sem_waiters(s), 0),
            }
        };
        assert_eq!(
            got, want,
            "seed {seed}, step {step}: {what} on {before:?} returned {got}, expected {want}"
        );
        let value = unsafe { sem_value(s) };
        assert_eq!(
            value, m.value,
            "seed {seed}, step {step}: value after {what}"
        );
    }
    unsafe { sem_free(s) };
    200
}

#[test]
fn random_sequences_match_the_model() {
    let sequences: u64 = std::env::var("RSEM_MODEL_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let checked: u64 = (0..sequences).map(run_sequence).sum();
    assert!(
        checked >= sequences * 100,
        "too few valid semaphores: {checked} operations"
    );
    println!("{sequences} sequences, {checked} operations matched the model");
}
