"""rsem's Python binding against threading.Semaphore, in one process,
interleaved, 7 rounds; medians with min-max and the ratio.

usage: python3 bench/bench_python.py [--quick]   (after pip install ./python)
"""
import statistics
import sys
import threading
import time

import rsem

QUICK = "--quick" in sys.argv
ROUNDS = 1 if QUICK else 7


def uncontended(make, n=100_000 if not QUICK else 5_000):
    s = make(1)
    acquire, release = s.acquire, s.release
    start = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - start) / n * 1e9  # ns per pair


def failing_try(make, n=100_000 if not QUICK else 5_000):
    s = make(0)
    acquire = s.acquire
    start = time.perf_counter()
    for _ in range(n):
        acquire(False)
    return (time.perf_counter() - start) / n * 1e9


def contended(make, threads=4, n=20_000 if not QUICK else 1_000):
    s = make(2)

    def work():
        for _ in range(n):
            with s:
                pass

    ts = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return threads * n / (time.perf_counter() - start)  # pairs per second


def ping_pong(make, n=5_000 if not QUICK else 200):
    ping, pong = make(0), make(0)

    def other():
        for _ in range(n):
            ping.acquire()
            pong.release()

    t = threading.Thread(target=other)
    t.start()
    start = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    t.join()
    return elapsed / n * 1e6  # us per round trip


SCENARIOS = [
    ("uncontended acquire+release (ns)", uncontended, False),
    ("failing acquire(False) (ns)", failing_try, False),
    ("4 threads, 2 permits, with-block (pairs/s)", contended, True),
    ("ping-pong round trip (us)", ping_pong, False),
]
IMPLS = [("threading.Semaphore", threading.Semaphore), ("rsem.Semaphore", rsem.Semaphore)]


def main():
    results = {(s, i): [] for s, _, _ in SCENARIOS for i, _ in IMPLS}
    for r in range(ROUNDS):
        for name, fn, _ in SCENARIOS:
            order = IMPLS if r % 2 == 0 else IMPLS[::-1]
            for impl, make in order:
                results[(name, impl)].append(fn(make))
    print(f"python {sys.version.split()[0]}, {ROUNDS} round(s)" + (" (quick mode: not for figures)" if QUICK else ""))
    print(f"{'scenario':44} | {'threading.Semaphore':24} | {'rsem.Semaphore':24} | speed-up")
    for name, _, higher_better in SCENARIOS:
        cells = []
        meds = {}
        for impl, _ in IMPLS:
            v = results[(name, impl)]
            meds[impl] = statistics.median(v)
            cells.append(f"{meds[impl]:.4g} [{min(v):.3g}-{max(v):.3g}]")
        t, o = meds["threading.Semaphore"], meds["rsem.Semaphore"]
        speedup = o / t if higher_better else t / o
        print(f"{name:44} | {cells[0]:24} | {cells[1]:24} | {speedup:.1f}x")


if __name__ == "__main__":
    main()
