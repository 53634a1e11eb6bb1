//! Model-based property test of the C ABI: random single-threaded sequences
//! of every operation, with arguments drawn mostly from the edge values C can
//! pass, checked step by step against the reference model in
//! tests/common/abi_model.rs (which the fuzz target shares).
//!
//! Deterministic: each sequence comes from a seed; a failure names the seed.
//! `RSEM_MODEL_SEQUENCES` sets how many sequences run (default 400 in
//! `cargo test`; scripts/verify runs more).

mod common {
    pub mod abi_model;
}
use common::abi_model::{Checker, Source};

/// xorshift64*, seeded per sequence.
struct Rng(u64);

impl Source for Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Runs one sequence of up to 200 operations; returns how many it checked.
fn run_sequence(seed: u64) -> u64 {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(mut checker) = Checker::create(&mut rng) else {
            return 0;
        };
        for _ in 0..200 {
            checker.step(&mut rng);
        }
        checker.steps
    }));
    match outcome {
        Ok(steps) => steps,
        Err(_) => panic!("sequence with seed {seed} diverged from the model (see above)"),
    }
}

#[test]
fn random_sequences_match_the_model() {
    let sequences: u64 = std::env::var("RSEM_MODEL_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let checked: u64 = (0..sequences).map(run_sequence).sum();
    // About half the sequences create a valid semaphore; require a third.
    assert!(
        checked * 3 >= sequences * 200,
        "too few valid semaphores: {checked} operations"
    );
    println!("{sequences} sequences, {checked} operations matched the model");
}
