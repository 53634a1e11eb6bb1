"""rsem's Python binding against threading.Semaphore, and its asyncio side
against asyncio.Semaphore, in one process, interleaved, 7 rounds; medians
with min-max and the ratio.

usage: python3 bench/bench_python.py [--quick] [--only threads|asyncio]
       (after pip install ./python)
"""
import asyncio
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


# ---- asyncio: rsem.Semaphore against asyncio.Semaphore ----------------------
#
# asyncio.Semaphore is not thread-safe: threads use it the way asyncio's docs
# say, through run_coroutine_threadsafe / call_soon_threadsafe.


class AsyncioFromThreads:
    """An asyncio.Semaphore plus the loop it lives in, for threads."""

    def __init__(self, sem, loop):
        self.sem, self.loop = sem, loop

    def acquire(self):
        asyncio.run_coroutine_threadsafe(self.sem.acquire(), self.loop).result()

    def release(self):
        self.loop.call_soon_threadsafe(self.sem.release)


def a_uncontended(make, n=50_000 if not QUICK else 2_000):
    async def main():
        s = make(1)
        start = time.perf_counter()
        for _ in range(n):
            async with s:
                pass
        return (time.perf_counter() - start) / n * 1e9

    return asyncio.run(main())  # ns per async-with


def a_contended(make, tasks=8, n=5_000 if not QUICK else 200):
    async def main():
        s = make(2)

        async def task():
            for _ in range(n):
                async with s:
                    await asyncio.sleep(0)

        start = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(tasks)))
        return tasks * n / (time.perf_counter() - start)

    return asyncio.run(main())  # acquires per second


def a_mixed(make, tasks=4, threads=2, n=2_000 if not QUICK else 100):
    async def main():
        loop = asyncio.get_running_loop()
        s = make(2)
        shared = s if isinstance(s, rsem.Semaphore) else AsyncioFromThreads(s, loop)

        def thread_work():
            for _ in range(n):
                shared.acquire()
                shared.release()

        async def task():
            for _ in range(n):
                async with s:
                    await asyncio.sleep(0)

        start = time.perf_counter()
        workers = [loop.run_in_executor(None, thread_work) for _ in range(threads)]
        await asyncio.gather(*(task() for _ in range(tasks)), *workers)
        return (tasks + threads) * n / (time.perf_counter() - start)

    return asyncio.run(main())  # acquires per second


def a_wakeup(make, n=2_000 if not QUICK else 100):
    """A thread releases; the time until the awaiting coroutine runs."""

    async def main():
        loop = asyncio.get_running_loop()
        s = make(0)
        release = s.release if isinstance(s, rsem.Semaphore) else (
            lambda: loop.call_soon_threadsafe(s.release))
        gaps = []
        stamp = [0.0]
        go = threading.Semaphore(0)

        def releaser():
            for _ in range(n):
                go.acquire()
                time.sleep(0.0001)  # let the coroutine block first
                stamp[0] = time.perf_counter()
                release()

        t = threading.Thread(target=releaser)
        t.start()
        for _ in range(n):
            go.release()
            await s.acquire_async() if isinstance(s, rsem.Semaphore) else await s.acquire()
            gaps.append(time.perf_counter() - stamp[0])
        t.join()
        return statistics.median(gaps) * 1e6

    return asyncio.run(main())  # us, median


ASYNC_SCENARIOS = [
    ("async with, uncontended (ns)", a_uncontended, False),
    ("8 tasks, 2 permits, one loop (acq/s)", a_contended, True),
    ("4 tasks + 2 threads, 2 permits (acq/s)", a_mixed, True),
    ("release on a thread -> task runs (us)", a_wakeup, False),
]
ASYNC_IMPLS = [("asyncio.Semaphore", asyncio.Semaphore), ("rsem.Semaphore", rsem.Semaphore)]


def table(title, scenarios, impls):
    results = {(s, i): [] for s, _, _ in scenarios for i, _ in impls}
    for r in range(ROUNDS):
        for name, fn, _ in scenarios:
            order = impls if r % 2 == 0 else impls[::-1]
            for impl, make in order:
                results[(name, impl)].append(fn(make))
    (peer, _), (ours, _) = impls
    print(f"{title:44} | {peer:24} | {ours:24} | speed-up")
    for name, _, higher_better in scenarios:
        cells = []
        meds = {}
        for impl, _ in impls:
            v = results[(name, impl)]
            meds[impl] = statistics.median(v)
            cells.append(f"{meds[impl]:.4g} [{min(v):.3g}-{max(v):.3g}]")
        t, o = meds[peer], meds[ours]
        speedup = o / t if higher_better else t / o
        print(f"{name:44} | {cells[0]:24} | {cells[1]:24} | {speedup:.2f}x")


def main():
    print(f"python {sys.version.split()[0]}, {ROUNDS} round(s)" + (" (quick mode: not for figures)" if QUICK else ""))
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if only in (None, "threads"):
        table("threads", SCENARIOS, IMPLS)
    if only in (None, "asyncio"):
        table("asyncio", ASYNC_SCENARIOS, ASYNC_IMPLS)


if __name__ == "__main__":
    main()
