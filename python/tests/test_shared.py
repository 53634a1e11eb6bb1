"""rsem.SharedSemaphore: one semaphore for several processes (Linux)."""
import asyncio
import concurrent.futures as cf
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
import uuid

import pytest

import rsem

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="shared semaphores are Linux only")


def a_name():
    return "/pytest-" + uuid.uuid4().hex[:12]


def eventually(cond, seconds=20.0):
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < seconds, "never became true"
        time.sleep(0.001)


def wait_child(pid, seconds=20.0):
    """The exit code of forked child `pid`; fails (and kills it) if it hangs."""
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() - start > seconds:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("child hung")
        time.sleep(0.001)


def test_anonymous_has_the_semaphore_api():
    s = rsem.SharedSemaphore(value=2)
    assert s.name is None and s.value == 2 and s.max == 2**31 - 1
    assert s.acquire() and s.acquire(blocking=False)
    assert not s.acquire(blocking=False)
    t0 = time.monotonic()
    assert not s.acquire(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    assert s.waiters == 0
    s.release(2)
    assert s.acquire_many(2) and s.value == 0
    s.release()
    with s:
        assert s.value == 0
    assert s.value == 1
    b = rsem.SharedSemaphore(value=1, bounded=True)
    with pytest.raises(ValueError):
        b.release()
    with pytest.raises(ValueError):
        rsem.SharedSemaphore(value=-1)
    with pytest.raises(OverflowError):
        rsem.SharedSemaphore(value=2**31)
    assert isinstance(s, rsem._rsem.Semaphore)  # the C Semaphore's methods


def test_blocking_and_waking_across_fork():
    s = rsem.SharedSemaphore(value=0)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if s.acquire(timeout=20) else 1)
    eventually(lambda: s.waiters == 1)
    s.release()
    assert wait_child(pid) == 0
    assert s.value == 0 and s.waiters == 0


def test_named_open_create_exclusive_unlink():
    name = a_name()
    with pytest.raises(FileNotFoundError):
        rsem.SharedSemaphore(name, create=False)
    a = rsem.SharedSemaphore(name, 1, exclusive=True)
    assert a.name == name
    with pytest.raises(FileExistsError):
        rsem.SharedSemaphore(name, exclusive=True)
    b = rsem.SharedSemaphore(name, 5)  # opens: the creator's value stays
    assert b.value == 1
    assert b.acquire(blocking=False) and a.value == 0
    c = pickle.loads(pickle.dumps(a))  # reopens by name
    c.release()
    assert a.value == 1
    a.unlink()
    with pytest.raises(FileNotFoundError):
        a.unlink()
    with pytest.raises(FileNotFoundError):
        rsem.SharedSemaphore(name, create=False)
    assert b.acquire(blocking=False)  # open handles keep working
    with pytest.raises(ValueError):
        rsem.SharedSemaphore("a/b")
    with pytest.raises(ValueError):
        rsem.SharedSemaphore(name, exclusive=True, create=False)
    with pytest.raises(ValueError):
        rsem.SharedSemaphore(value=1).unlink()


def hold(sem, guard):
    """A pool task: inside `sem` (one permit), `guard` must be free."""
    with sem:
        if not guard.acquire(blocking=False):
            return -1
        time.sleep(0.001)
        guard.release()
        return os.getpid()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_share_it(method):
    named = method == "spawn"
    if named:
        sem, guard = rsem.SharedSemaphore(a_name(), 1), rsem.SharedSemaphore(a_name(), 1)
    else:
        sem, guard = rsem.SharedSemaphore(value=1), rsem.SharedSemaphore(value=1)
    try:
        with cf.ProcessPoolExecutor(3, mp_context=mp.get_context(method)) as pool:
            pids = list(pool.map(hold, [sem] * 30, [guard] * 30))
        assert -1 not in pids
        assert sem.value == 1 and guard.value == 1
    finally:
        if named:
            sem.unlink()
            guard.unlink()


def test_anonymous_does_not_reach_a_spawned_process():
    s = rsem.SharedSemaphore(value=1)
    # What a spawned process does with the pickle: the token is not there.
    token = pickle.dumps(s)
    assert pickle.loads(token) is s  # here it is (and in forked children)
    rsem._anonymous.clear()
    with pytest.raises(RuntimeError, match="forked after"):
        pickle.loads(token)
    # A spawned pool worker fails to unpickle its task and exits: the pool
    # reports it broken instead of running the task on some other memory.
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with pytest.raises(cf.process.BrokenProcessPool):
            pool.submit(hold, s, s).result()


@pytest.mark.parametrize("fifo", [False, True])
def test_a_blocked_acquire_ends_on_a_signal(fifo):
    s = rsem.SharedSemaphore(value=0, fifo=fifo)

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with pytest.raises(Alarm):
            s.acquire()
        assert time.monotonic() - t0 < 2.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert s.value == 0 and s.waiters == 0  # (FIFO: it left the queue)
    assert not s.acquire(timeout=0.05)  # a timed-out wait leaves too
    assert s.waiters == 0
    s.release()
    assert s.acquire(blocking=False)  # nobody left queued ahead


@pytest.mark.parametrize("recover", [False, True])
def test_fifo_keeps_the_turn_of_a_waiter_that_looks_for_signals(recover):
    # The parent's acquire waits in 50 ms slices and looks for signals
    # between them (a Python handler runs only there); a child queues after
    # it. Once a handler has run while both waited, the parent has been
    # away from the queue and back: the release must still go to it.
    s = rsem.SharedSemaphore(value=0, fifo=True, recover=recover)
    handled = threading.Event()
    old = signal.signal(signal.SIGUSR1, lambda *_: handled.set())
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(r)
            while s.waiters < 1:  # queue after the parent
                time.sleep(0.001)
            got = s.acquire(timeout=20)
            os.write(w, b"c")
            os._exit(0 if got else 1)
        os.close(w)
        main = threading.get_ident()

        def release_once_the_parent_was_away():
            while s.waiters < 2:
                time.sleep(0.001)
            signal.pthread_kill(main, signal.SIGUSR1)
            handled.wait(20)
            s.release()

        t = threading.Thread(target=release_once_the_parent_was_away)
        t.start()
        assert s.acquire(timeout=20)  # first in line
        t.join()
        assert handled.is_set()
        assert s.waiters == 1  # the child still waits
        s.release()
        assert os.read(r, 1) == b"c"
        assert wait_child(pid) == 0
        assert s.value == 0 and s.waiters == 0
    finally:
        signal.signal(signal.SIGUSR1, old)
        os.close(r)


def test_it_cannot_be_awaited():
    s = rsem.SharedSemaphore(value=1)

    async def main():
        async with s:
            pass

    with pytest.raises(NotImplementedError):
        asyncio.run(main())
    assert s.value == 1


def test_recover_gives_a_dead_holders_permits_back():
    s = rsem.SharedSemaphore(value=2, recover=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            s.acquire_many(2)
            os.write(w, b"h")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(w)
    assert os.read(r, 1) == b"h"
    os.close(r)
    assert not s.acquire(timeout=0.05)  # the holder lives: nothing comes back
    os.kill(pid, signal.SIGKILL)
    assert wait_child(pid) == -signal.SIGKILL
    got = s.acquire_many(2, timeout=5)
    assert got is rsem.RECOVERED and got and repr(got) == "rsem.RECOVERED"
    s.release(2)
    assert s.acquire() is True  # told once
    s.release()
    assert rsem.SharedSemaphore(value=1).acquire() is True  # without recover: True


def hold_until_killed(sem, path):
    """A pool task that takes the permit and never gives it back."""
    sem.acquire()
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


def use(sem):
    """A pool task: takes the permit (telling whether it came back from a
    dead process) and gives it back."""
    got = sem.acquire(timeout=20)
    if not got:
        return "timeout"
    sem.release()
    return "recovered" if got is rsem.RECOVERED else "ok"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_pool_worker_killed_while_holding_does_not_stop_the_pool(method, tmp_path):
    named = method == "spawn"
    name = a_name() if named else None
    sem = rsem.SharedSemaphore(name, 1, recover=True)
    path = tmp_path / "holder"
    pool = mp.get_context(method).Pool(2)
    try:
        pool.apply_async(hold_until_killed, (sem, str(path)))
        eventually(lambda: path.exists() and path.read_text() != "")
        results = [pool.apply_async(use, (sem,)) for _ in range(6)]
        os.kill(int(path.read_text()), signal.SIGKILL)
        outcomes = sorted(r.get(timeout=30) for r in results)
        # The pool replaced the dead worker and every task got the permit;
        # the first to take it was told it came back from a dead process.
        assert outcomes == ["ok"] * 5 + ["recovered"], outcomes
        assert sem.value == 1
    finally:
        pool.terminate()
        pool.join()
        if named:
            sem.unlink()
