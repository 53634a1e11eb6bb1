//! Fuzz target: arbitrary sequences of C ABI calls with arbitrary arguments
//! (NaN, infinities, INT64_MIN/MAX, huge n, unknown flags), checked step by
//! step against the reference model that tests/model.rs also uses.
//!
//! Run: cargo +nightly fuzz run abi_ops fuzz/corpus/abi_ops -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/abi_model.rs"]
mod abi_model;
use abi_model::{Checker, Source};

/// Reads the fuzzer's bytes as the source of operations and arguments.
struct Bytes<'a>(&'a [u8]);

impl Source for Bytes<'_> {
    fn next(&mut self) -> u64 {
        let take = self.0.len().min(8);
        let mut word = [0u8; 8];
        word[..take].copy_from_slice(&self.0[..take]);
        self.0 = &self.0[take..];
        u64::from_le_bytes(word)
    }

    // Small choices take one byte, so that mutations map to operations.
    fn below(&mut self, n: u64) -> u64 {
        if n <= 256 {
            let Some((&byte, rest)) = self.0.split_first() else {
                return 0;
            };
            self.0 = rest;
            u64::from(byte) % n
        } else {
            self.next() % n
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes(data);
    if let Some(mut checker) = Checker::create(&mut src) {
        while !src.0.is_empty() && checker.steps < 2000 {
            checker.step(&mut src);
        }
    }
});
