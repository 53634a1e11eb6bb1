"""rsem.SharedSemaphore against multiprocessing.Semaphore, in the same run.

    uncontended  acquire() + release() in one process, ns per pair (and
                 rsem.Semaphore, the in-process one, for reference)
    ping-pong    two processes pass a permit back and forth through two
                 semaphores, us per round trip
    contended    4 processes on 1 permit (and 4 on 2), each looping
                 acquire / release for a fixed time, thousands of ops/s

Implementations are interleaved round by round; figures are medians.

    python bench/bench_shared.py [--quick] [--rounds N]
"""
import multiprocessing as mp
import os
import sys
import time

import rsem

ctx = mp.get_context("fork")


def impls():
    return {
        "rsem.SharedSemaphore": lambda v: rsem.SharedSemaphore(value=v),
        "multiprocessing.Semaphore": lambda v: ctx.Semaphore(v),
    }


def uncontended(make, n):
    s = make(1)
    acquire, release = s.acquire, s.release
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - t0) / n * 1e9


def ping_pong(make, n):
    ping, pong = make(0), make(0)
    pid = os.fork()
    if pid == 0:
        for _ in range(n + 50):
            ping.acquire()
            pong.release()
        os._exit(0)
    for _ in range(50):
        ping.release()
        pong.acquire()
    t0 = time.perf_counter()
    for _ in range(n):
        ping.release()
        pong.acquire()
    us = (time.perf_counter() - t0) / n * 1e6
    os.waitpid(pid, 0)
    return us


def contended(make, procs, permits, seconds):
    s = make(permits)
    counts = ctx.Array("q", procs, lock=False)
    go = ctx.Event()
    stop = ctx.Value("b", 0, lock=False)

    def worker(i):
        go.wait()
        ops = 0
        while not stop.value:
            s.acquire()
            s.release()
            ops += 1
        counts[i] = ops

    ps = [ctx.Process(target=worker, args=(i,)) for i in range(procs)]
    for p in ps:
        p.start()
    t0 = time.perf_counter()
    go.set()
    time.sleep(seconds)
    stop.value = 1
    for p in ps:
        p.join()
    return sum(counts) / (time.perf_counter() - t0) / 1e3


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 5
    if "--rounds" in sys.argv:
        rounds = max(1, int(sys.argv[sys.argv.index("--rounds") + 1]))
    pairs, trips, secs = (2000, 200, 0.05) if quick else (300000, 5000, 0.3)
    named = impls()
    names = list(named)
    print(f"Python {sys.version.split()[0]}: rsem.SharedSemaphore vs multiprocessing.Semaphore, "
          f"median of {rounds} rounds")

    unc = {k: [] for k in names + ["rsem.Semaphore (in-process)"]}
    pp = {k: [] for k in names}
    shapes = [(4, 1), (4, 2)]
    con = {(k, sh): [] for k in names for sh in shapes}
    for r in range(rounds):
        order = names[r % 2:] + names[:r % 2]
        unc["rsem.Semaphore (in-process)"].append(uncontended(rsem.Semaphore, pairs))
        for k in order:
            unc[k].append(uncontended(named[k], pairs))
        for k in order:
            pp[k].append(ping_pong(named[k], trips))
        for sh in shapes:
            for k in order:
                con[(k, sh)].append(contended(named[k], *sh, secs))

    peer = "multiprocessing.Semaphore"
    print("\nuncontended acquire()+release() (ns per pair)")
    for k, v in unc.items():
        print(f"  {k:30} {median(v):8.0f}  ({median(v) / median(unc[peer]):.2f}x multiprocessing)")
    print("\nping-pong between two processes (us per round trip)")
    for k in names:
        print(f"  {k:30} {median(pp[k]):8.1f}  ({median(pp[k]) / median(pp[peer]):.2f}x)")
    print("\ncontended: processes on permits, acquire+release loop (thousand ops/s)")
    for sh in shapes:
        cells = "  ".join(f"{k} {median(con[(k, sh)]):7.0f}" for k in names)
        ratio = median(con[(names[0], sh)]) / median(con[(peer, sh)])
        print(f"  {sh[0]} procs / {sh[1]} permit{'s' if sh[1] > 1 else ' '}: {cells}  "
              f"({ratio:.2f}x multiprocessing)")


if __name__ == "__main__":
    main()
