"""rsem.Semaphore / BoundedSemaphore against threading's semantics, plus the
extras, Ctrl-C, and use from many threads."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import rsem

KINDS = [rsem.Semaphore, rsem.BoundedSemaphore]


def wait_for(cond, what, limit=20.0):
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < limit, f"never: {what}"
        time.sleep(0.001)


@pytest.mark.parametrize("kind", KINDS)
def test_counts_like_threading(kind):
    s = kind(2)
    assert s.acquire() is True
    assert s.acquire(blocking=False) is True
    assert s.acquire(False) is False
    assert s.acquire(timeout=0.01) is False
    assert s.value == 0 and s._value == 0
    s.release()
    s.release()
    assert s.value == 2


def test_default_value_is_one():
    assert rsem.Semaphore().value == 1
    assert rsem.BoundedSemaphore().value == 1


@pytest.mark.parametrize("kind", KINDS)
def test_same_errors_and_messages_as_threading(kind):
    tkind = getattr(threading, kind.__name__)
    for make in (kind, tkind):
        with pytest.raises(ValueError, match="semaphore initial value must be >= 0"):
            make(-1)
        s = make(1)
        with pytest.raises(ValueError, match="can't specify timeout for non-blocking acquire"):
            s.acquire(False, 1.0)
        with pytest.raises(ValueError, match="n must be one or more"):
            s.release(0)
        with pytest.raises(ValueError, match="n must be one or more"):
            s.release(-3)


def test_bounded_refuses_over_release_like_threading():
    for make in (rsem.BoundedSemaphore, threading.BoundedSemaphore):
        s = make(2)
        with pytest.raises(ValueError, match="Semaphore released too many times"):
            s.release()
        s.acquire()
        with pytest.raises(ValueError, match="Semaphore released too many times"):
            s.release(2)
        s.release()
    s = rsem.BoundedSemaphore(2)
    assert s.value == 2


def test_release_n():
    s = rsem.Semaphore(0)
    s.release(5)
    assert s.value == 5
    s.release(n=2)
    assert s.value == 7
    with pytest.raises(OverflowError):
        s.release(rsem.COUNT_MAX)


@pytest.mark.parametrize("kind", KINDS)
def test_repr_like_threading(kind):
    s = kind(3)
    t = getattr(threading, kind.__name__)(3)
    ours = re.sub(r"0x[0-9a-f]+", "0xADDR", repr(s))
    theirs = re.sub(r"0x[0-9a-f]+", "0xADDR", repr(t))
    value = "value=3/3" if kind.__name__ == "BoundedSemaphore" else "value=3"
    assert ours == f"<rsem.{kind.__name__} at 0xADDR: {value}>"
    if sys.version_info >= (3, 11):  # threading's repr shows the value since 3.11
        assert ours == theirs.replace("threading.", "rsem.")
    assert f"{id(s):#x}" in repr(s)


def test_context_manager():
    s = rsem.Semaphore(1)
    with s as got:
        assert got is True
        assert s.value == 0
    assert s.value == 1


def test_timeouts_wait_at_least_the_timeout():
    s = rsem.Semaphore(0)
    for timeout in (0.01, 0.05):
        start = time.monotonic()
        assert s.acquire(timeout=timeout) is False
        assert time.monotonic() - start >= timeout
    assert s.acquire(timeout=-1) is False  # as threading: a non-blocking try
    with pytest.raises(ValueError):
        s.acquire(timeout=float("nan"))


def test_blocked_acquire_is_woken_by_release():
    s = rsem.Semaphore(0)
    got = []
    t = threading.Thread(target=lambda: got.append(s.acquire()))
    t.start()
    wait_for(lambda: s.waiters == 1, "waiter blocked")
    s.release()
    t.join()
    assert got == [True] and s.value == 0 and s.waiters == 0


def test_release_n_wakes_exactly_n():
    s = rsem.Semaphore(0)
    done = []
    threads = [threading.Thread(target=lambda: done.append(s.acquire())) for _ in range(5)]
    for t in threads:
        t.start()
    wait_for(lambda: s.waiters == 5, "all blocked")
    s.release(3)
    wait_for(lambda: len(done) == 3, "three woke")
    assert s.waiters == 2 and s.value == 0
    s.release(2)
    for t in threads:
        t.join()
    assert len(done) == 5


def test_fifo_and_acquire_many():
    s = rsem.Semaphore(0, fifo=True)
    order = []

    def take(name, n):
        assert s.acquire_many(n)
        order.append(name)

    big = threading.Thread(target=take, args=("big", 3))
    big.start()
    wait_for(lambda: s.waiters == 1, "big queued")
    small = threading.Thread(target=take, args=("small", 1))
    small.start()
    wait_for(lambda: s.waiters == 2, "small queued")
    s.release(2)
    assert s.acquire(blocking=False) is False  # FIFO: no barging past the head
    assert order == []
    s.release(1)  # 3 free: exactly the head's need
    big.join()
    assert order == ["big"] and s.waiters == 1 and s.value == 0
    s.release(1)
    small.join()
    assert order == ["big", "small"]
    assert s.value == 0
    assert s.acquire_many(1, timeout=0.01) is False
    with pytest.raises(ValueError):
        s.acquire_many(0)
    with pytest.raises(ValueError):
        rsem.BoundedSemaphore(2).acquire_many(3)


def test_shutdown_wakes_blocked_threads_with_closed_error():
    s = rsem.Semaphore(0)
    errors = []

    def blocked():
        try:
            s.acquire()
        except rsem.ClosedError as e:
            errors.append(e)

    threads = [threading.Thread(target=blocked) for _ in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: s.waiters == 3, "all blocked")
    s.shutdown()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert len(errors) == 3
    with pytest.raises(rsem.ClosedError):
        s.acquire(blocking=False)
    s.release(2)  # releases keep working
    assert s.value == 2 and s.drain() == 2
    assert issubclass(rsem.ClosedError, RuntimeError)


def test_introspection():
    s = rsem.BoundedSemaphore(4)
    assert (s.value, s.max, s.waiters, s._initial_value) == (4, 4, 0, 4)
    assert rsem.Semaphore(0).max == rsem.COUNT_MAX


def test_many_threads_conserve_permits():
    s = rsem.BoundedSemaphore(3)
    inside = [0]
    most = [0]
    lock = threading.Lock()

    def work():
        for i in range(2000):
            if i % 3 == 0:
                got = s.acquire(timeout=0.001)
            else:
                got = s.acquire()
            if not got:
                continue
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            with lock:
                inside[0] -= 1
            s.release()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.value == 3 and s.waiters == 0
    assert 1 <= most[0] <= 3


CTRL_C_CHILD = r"""
import sys, threading, time
import rsem
s = rsem.Semaphore(0)
def report():
    while s.waiters != 1:
        time.sleep(0.001)
    print("blocked", flush=True)
threading.Thread(target=report, daemon=True).start()
try:
    s.acquire()
    print("acquired?!", flush=True)
except KeyboardInterrupt:
    t = time.monotonic()
    # The interrupted acquire took nothing and left the queue.
    s.release()
    ok = s.acquire(blocking=False) and s.value == 0 and s.waiters == 0
    print("interrupted", "ok" if ok else "LOST", flush=True)
"""


def test_ctrl_c_ends_a_blocked_acquire_without_losing_a_permit():
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "blocked"
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().strip()
        elapsed = time.monotonic() - start
        assert line == "interrupted ok", line
        assert elapsed < 0.5, f"Ctrl-C took {elapsed:.3f} s"
        assert child.wait(10) == 0
    finally:
        child.kill()


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_a_semaphore_of_zero_maximum_acquires_like_threading(kind):
    # BoundedSemaphore(0) can never hold a permit: threading's acquire
    # returns False (non-blocking) or after the timeout, never raises.
    for module in (threading, rsem):
        s = getattr(module, kind)(0)
        assert s.acquire(False) is False
        assert s.acquire(blocking=False) is False
        start = time.monotonic()
        assert s.acquire(timeout=0.05) is False
        assert time.monotonic() - start >= 0.05


def test_reinit_while_a_thread_waits_is_refused_and_the_waiter_survives():
    s = rsem.Semaphore(0)
    got = []
    t = threading.Thread(target=lambda: got.append(s.acquire(timeout=30)))
    t.start()
    deadline = time.monotonic() + 20
    while s.waiters == 0:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with pytest.raises(RuntimeError):
        s.__init__(5)
    s.release()
    t.join()
    assert got == [True]
    # With nobody waiting, __init__ again starts afresh, as threading does.
    s.__init__(2)
    assert s.acquire(False) and s.acquire(False) and not s.acquire(False)
