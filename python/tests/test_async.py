"""asyncio on rsem.Semaphore: `await acquire_async()` and `async with`,
sharing one semaphore (and one queue) with plain threads; timeouts,
shutdown, and cancellation of the awaiting task (the request is withdrawn,
or the permits granted as it was cancelled are given back)."""
import asyncio
import threading
import time

import pytest

import rsem


def wait_for(cond, what, limit=20.0):
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < limit, f"never: {what}"
        time.sleep(0.001)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("kind", [rsem.Semaphore, rsem.BoundedSemaphore])
def test_async_with_and_acquire_async(kind):
    async def main():
        s = kind(1)
        async with s:
            assert s.value == 0
        assert s.value == 1
        assert await s.acquire_async() is True
        assert await s.acquire_async(timeout=0.02) is False
        s.release()
        assert s.value == 1

    run(main())
    assert issubclass(rsem.BoundedSemaphore, rsem.Semaphore)


@pytest.mark.parametrize("fifo", [False, True])
def test_contended_inside_one_loop(fifo):
    async def main():
        s = rsem.Semaphore(2, fifo=fifo)
        inside = peak = 0
        order = []

        async def task(i):
            nonlocal inside, peak
            async with s:
                inside += 1
                peak = max(peak, inside)
                order.append(i)
                await asyncio.sleep(0)
                inside -= 1

        await asyncio.gather(*(task(i) for i in range(50)))
        assert peak == 2 and sorted(order) == list(range(50))
        assert s.value == 2 and s.waiters == 0

    run(main())


def test_threads_and_tasks_share_the_semaphore():
    s = rsem.BoundedSemaphore(3)
    stop = threading.Event()
    inside = [0]
    lock = threading.Lock()
    worst = [0]

    def enter():
        with lock:
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])

    def leave():
        with lock:
            inside[0] -= 1

    def worker():
        while not stop.is_set():
            with s:
                enter()
                time.sleep(0.0001)
                leave()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()

    async def main():
        async def task():
            for _ in range(50):
                async with s:
                    enter()
                    await asyncio.sleep(0)
                    leave()

        await asyncio.gather(*(task() for _ in range(8)))

    try:
        run(main())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert worst[0] <= 3
    assert s.value == 3 and s.waiters == 0


def test_timeout_and_shutdown():
    async def main():
        s = rsem.Semaphore(0)
        t0 = time.monotonic()
        assert await s.acquire_async(timeout=0.05) is False
        assert time.monotonic() - t0 >= 0.05
        assert s.waiters == 0
        task = asyncio.ensure_future(s.acquire_async())
        while s.waiters == 0:
            await asyncio.sleep(0.001)
        s.shutdown()
        with pytest.raises(rsem.ClosedError):
            await task

    run(main())


async def _async_with(s):
    async with s:
        pass


# The two ways a task waits: `await acquire_async()` (a coroutine around
# the C awaitable) and `async with` (the C awaitable itself).
WAYS = {"acquire_async": lambda s: s.acquire_async(), "async with": _async_with}


@pytest.mark.parametrize("way", WAYS)
def test_cancelling_the_task_withdraws_the_request(way):
    async def main():
        s = rsem.Semaphore(0)
        task = asyncio.ensure_future(WAYS[way](s))
        while s.waiters == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert s.waiters == 0
        s.release()
        assert s.value == 1  # nothing went to the cancelled task

    run(main())


@pytest.mark.parametrize("way", WAYS)
def test_cancel_racing_a_grant_gives_the_permits_back(way):
    async def main():
        s = rsem.Semaphore(0)
        won = lost = 0
        for _ in range(200):
            task = asyncio.ensure_future(WAYS[way](s))
            while s.waiters == 0:
                await asyncio.sleep(0)
            # Granted now (completion queued, not yet drained), then
            # cancelled before the task runs again.
            s.release()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                lost += 1
            else:
                won += 1
                if way == "acquire_async":
                    s.release()  # it got the permit: give it back
            # Either way, the permit ends up free once the loop drained.
            for _ in range(100):
                if s.value == 1:
                    break
                await asyncio.sleep(0.001)
            assert s.value == 1 and s.waiters == 0
            assert s.acquire(False)
        assert lost > 0  # the race this test is about happened

    run(main())


def test_the_request_is_withdrawn_before_the_cancellation_reaches_the_task():
    async def main():
        s = rsem.Semaphore(0)
        seen = []

        async def waiter():
            entering = s.__aenter__()  # kept alive through the except
            try:
                await entering
            except asyncio.CancelledError:
                seen.append(s.waiters)
                raise

        task = asyncio.ensure_future(waiter())
        while s.waiters == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [0]

    run(main())


def test_an_awaitable_does_nothing_until_awaited_and_gives_up_when_dropped():
    async def main():
        s = rsem.Semaphore(1)
        # Never awaited: nothing taken, nothing queued (as a coroutine).
        for make in (s.__aenter__, lambda: s._acquiring(1)):
            a = make()
            del a
            assert s.value == 1 and s.waiters == 0
        assert s.acquire(False)
        # Queued (first step taken), then dropped: withdrawn.
        entering = s.__aenter__()
        assert entering.send(None) is not None  # yields the loop's future
        assert s.waiters == 1
        del entering
        assert s.waiters == 0
        # Granted, then dropped before anyone took the permit: it goes back.
        entering = s.__aenter__()
        entering.send(None)
        s.release()
        del entering
        rsem._loop_notifier().drain()
        assert s.value == 1 and s.waiters == 0
        assert s.acquire(False)
        # Queued, then closed (as when a coroutine awaiting it is closed).
        entering = s._acquiring(1)
        entering.send(None)
        assert s.waiters == 1
        entering.close()
        assert s.waiters == 0
        s.release()
        assert s.value == 1
        # A cancelled wrapper that never started takes nothing.
        task = asyncio.ensure_future(s.__aenter__())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert s.value == 1
        # throw() before the first step raises what was thrown (TypeError for
        # a non-exception), taking nothing.
        with pytest.raises(KeyError):
            s.__aenter__().throw(KeyError("k"))
        with pytest.raises(TypeError):
            s.__aenter__().throw(42)
        assert s.value == 1

    run(main())


def test_aexit_outside_a_loop_still_releases():
    # An abandoned task's coroutine closed by the garbage collector after its
    # loop was closed runs __aexit__ with no loop running: the permit must
    # still go back (here to a blocked thread).
    import gc

    s = rsem.Semaphore(1)

    async def warm():  # a contended acquire: the C half remembers this loop
        s2 = rsem.Semaphore(0)
        asyncio.get_running_loop().call_soon(s2.release)
        await s2.acquire_async()

    asyncio.run(warm())

    async def holder():
        async with s:
            await asyncio.Event().wait()  # never set

    loop = asyncio.new_event_loop()
    task = loop.create_task(holder())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task holds the permit
    loop.close()  # closed with the task pending
    got = []
    th = threading.Thread(target=lambda: got.append(s.acquire(timeout=10)))
    th.start()
    wait_for(lambda: s.waiters == 1, "the thread queued")
    del task
    gc.collect()  # the coroutine is closed: __aexit__ outside any loop
    th.join()
    assert got == [True]


def test_the_loop_cache_is_not_repointed_under_a_task():
    # Review finding (deterministic form): replacing the remembered loop
    # drops the old one, whose __del__ runs Python code; another thread
    # remembering its own loop meanwhile must not hand this task the other
    # loop's future.
    sem = rsem.Semaphore(0)
    in_del, other_done = threading.Event(), threading.Event()

    class SlowDelLoop(asyncio.SelectorEventLoop):
        def __del__(self):
            super().__del__()
            in_del.set()
            other_done.wait(2)  # stands for a GIL switch inside __del__

    async def contended():
        asyncio.get_running_loop().call_later(0.05, sem.release)
        ok = await sem.acquire_async()
        sem.release()
        return ok

    def first():
        with asyncio.Runner(loop_factory=SlowDelLoop) as r:
            assert r.run(contended())

    if not hasattr(asyncio, "Runner"):
        pytest.skip("asyncio.Runner is 3.11+")
    t = threading.Thread(target=first)
    t.start()
    t.join()
    assert sem.acquire(False)  # back to 0; the closed loop is only remembered now
    results = []

    def other():
        in_del.wait(5)

        async def m():
            fut = sem._submit()  # remembers this thread's loop
            other_done.set()
            await asyncio.sleep(0.3)
            sem.release()
            results.append(await fut)
            sem.release()

        asyncio.run(m())

    t = threading.Thread(target=other)
    t.start()
    assert asyncio.run(contended()) is True  # a RuntimeError if it got a foreign future
    t.join()
    assert results == [True]
    del SlowDelLoop


def test_loops_in_several_threads_never_mix_futures():
    # Each thread runs its own loop; contended acquires in all of them at
    # once: each task must always get its own loop's future.
    s = rsem.Semaphore(1)
    errors = []

    def worker():
        async def task():
            for _ in range(300):
                async with s:
                    await asyncio.sleep(0)

        async def main():
            await asyncio.gather(*(task() for _ in range(3)))

        try:
            asyncio.run(main())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        ts = [threading.Thread(target=worker) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert s.value == 1 and s.waiters == 0


def test_awaits_return_what_the_threading_and_asyncio_apis_do():
    async def main():
        s = rsem.Semaphore(1)
        async with s as got:
            assert got is None  # as asyncio.Semaphore's __aenter__
            queued = asyncio.ensure_future(_async_with(s))
            await asyncio.sleep(0.001)
            assert s.waiters == 1
        assert await queued is None
        assert await s.acquire_async(timeout=0) is True
        assert await s.acquire_async(timeout=0) is False   # at once
        assert await s.acquire_async(timeout=0.01) is False  # queued, timed out
        s.release()
        assert await s.acquire_async(2, timeout=0.01) is False
        assert s.value == 1 and s.waiters == 0
        s.acquire(False)
        for t in (float("-inf"), -1e300, -1):  # already passed: False at once
            assert await s.acquire_async(timeout=t) is False
        s.release()

    run(main())


def test_under_a_tracer():
    # With a trace function set, the interpreter drives awaitables through
    # __next__, send and throw instead of the send slot.
    import sys

    def main():
        async def go():
            s = rsem.Semaphore(1)
            inside = 0

            async def task():
                nonlocal inside
                for _ in range(200):
                    async with s:
                        inside += 1
                        assert inside == 1
                        await asyncio.sleep(0)
                        inside -= 1
                assert await s.acquire_async() is True
                s.release()

            await asyncio.gather(*(task() for _ in range(4)))
            blocked = asyncio.ensure_future(_async_with(s))
            async with s:
                await asyncio.sleep(0.001)
                assert s.waiters == 1
                blocked.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await blocked
                assert s.waiters == 0
            assert s.value == 1

        sys.settrace(lambda *a: None)
        try:
            run(go())
        finally:
            sys.settrace(None)

    main()


def test_blocking_acquire_keeps_its_place_in_the_fifo_queue():
    # A waits longer than the old 50 ms re-queue slice before B queues; one
    # release must go to A, which came first.
    s = rsem.Semaphore(0, fifo=True)
    order = []
    a = threading.Thread(target=lambda: (s.acquire(), order.append("A")))
    a.start()
    wait_for(lambda: s.waiters == 1, "A queued")
    time.sleep(0.15)
    b = threading.Thread(target=lambda: (s.acquire(), order.append("B")))
    b.start()
    wait_for(lambda: s.waiters == 2, "B queued")
    s.release()
    wait_for(lambda: order, "someone served")
    assert order == ["A"]
    s.release()
    a.join()
    b.join()
    assert order == ["A", "B"]


def test_a_blocked_thread_and_a_task_are_served_in_arrival_order():
    s = rsem.Semaphore(0, fifo=True)
    order = []
    t = threading.Thread(target=lambda: (s.acquire(), order.append("thread")))
    t.start()
    wait_for(lambda: s.waiters == 1, "thread queued")

    async def main():
        task = asyncio.ensure_future(s.acquire_async())
        while s.waiters < 2:
            await asyncio.sleep(0.001)
        s.release()  # FIFO: handed to the thread, which came first
        assert s.waiters == 1 and s.value == 0
        while not order:
            await asyncio.sleep(0.001)
        assert not task.done()
        s.release()
        await task
        order.append("task")

    run(main())
    t.join()
    assert order == ["thread", "task"]


def test_a_late_cancel_never_withdraws_another_tasks_request():
    # Review finding: a task is cancelled, then its (granted) completion is
    # drained before the task runs again; the task's cancel must not reach
    # the acquire that now reuses its memory.
    async def main():
        s = rsem.Semaphore(0)
        for _ in range(50):
            task = asyncio.ensure_future(s.acquire_async())
            while s.waiters == 0:
                await asyncio.sleep(0)
            task.cancel()              # its future is cancelled now
            s.release()                # granted to it...
            rsem._loop_notifier().drain()  # ...and drained: the permit goes back
            assert s.value == 1 and s.acquire(False)
            # Other acquires queue before the cancelled task runs again
            # (submitted directly, as a task's first step would): one of
            # them gets the memory the drained one had.
            others = [s._submit() for _ in range(5)]
            assert s.waiters == 5
            with pytest.raises(asyncio.CancelledError):
                await task             # its late cancel finds nothing
            assert s.waiters == 5 and not any(o.done() for o in others)
            s.release(5)
            rsem._loop_notifier().drain()
            assert [o.result() for o in others] == [True] * 5

    run(main())
