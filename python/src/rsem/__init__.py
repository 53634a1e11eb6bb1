"""Drop-in replacements for threading.Semaphore and threading.BoundedSemaphore,
backed by the rsem C library, that asyncio tasks can await too.

    import rsem
    sem = rsem.Semaphore(3)          # as threading.Semaphore(3)
    with sem:                        # in a thread
        ...
    async with sem:                  # in an asyncio task, on the same object
        ...

Beyond threading: ``Semaphore(value, fifo=True)`` serves waiters (threads and
tasks alike) in arrival order; ``acquire_many(n, timeout=None)`` takes n
permits at once or none; ``await acquire_async(n=1, timeout=None)`` waits
without blocking the event loop; ``shutdown()`` makes waiting and later
acquires raise ``ClosedError``; ``value``, ``waiters`` and ``max`` report the
state; ``drain()`` takes every free permit.

asyncio support needs a loop with ``add_reader`` (the default selector loop
on Unix): completions arrive through one eventfd per loop, drained on the
loop's thread.
"""
import asyncio
import time
import weakref
from asyncio import get_running_loop as _get_running_loop

from . import _rsem
from ._rsem import ClosedError, COUNT_MAX

__all__ = ["Semaphore", "BoundedSemaphore", "ClosedError", "COUNT_MAX"]
__version__ = "0.1.0"

_FOREVER = (1 << 63) - 1
# One notifier per event loop: its descriptor is registered with the loop's
# add_reader, and its drain() resolves the futures of completed acquires.
_notifiers = weakref.WeakKeyDictionary()
# The last (loop, notifier) looked up: one tuple, read once and replaced
# whole, so that threads running loops of their own never mix two pairs.
_last = (None, None)


def _notifier(loop):
    nt = _notifiers.get(loop)
    if nt is None:
        nt = _rsem.Notifier()
        loop.add_reader(nt.fileno(), nt.drain)
        _notifiers[loop] = nt
    _remember(loop, nt)
    return nt


def _remember(loop, nt):
    global _last
    _last = (loop, nt)


def _loop_notifier():
    """The running loop's notifier, if it has one."""
    loop = _get_running_loop()
    last = _last
    if last[0] is loop:
        return last[1]
    nt = _notifiers.get(loop)
    _remember(loop, nt)
    return nt


def _deadline(timeout):
    """A timeout in seconds (None: none) as a deadline on CLOCK_MONOTONIC ns,
    the clock of time.monotonic_ns() and of rsem's deadlines."""
    if timeout is None:
        return _FOREVER
    timeout = float(timeout)
    if timeout != timeout:
        raise ValueError("timeout must not be NaN")
    now = time.monotonic_ns()
    ns = timeout * 1e9
    if ns >= _FOREVER - now:
        return _FOREVER
    return now + max(0, int(ns))


class _Async:
    """The asyncio half of Semaphore and BoundedSemaphore."""

    __slots__ = ()

    async def acquire_async(self, n=1, timeout=None):
        """await acquire_async(n=1, timeout=None) -> bool

        Takes n permits without blocking the event loop: True once taken,
        False if `timeout` seconds passed first. Waits in the same queue as
        blocked threads. Cancelling the awaiting task withdraws the request,
        or gives back permits that were granted as it was cancelled."""
        if self.acquire_many(n, blocking=False):
            return True
        return await self._wait(n, _deadline(timeout))

    async def _wait(self, n, deadline):
        """Queues an acquire of n (the try failed) and awaits it."""
        loop = _get_running_loop()
        last = _last
        nt = last[1] if last[0] is loop else _loop_notifier()
        queued = self._acquire_notify(n, deadline, nt or _notifier(loop), loop)
        if queued is True or queued is False:
            return queued
        fut, handle = queued
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                # Not resolved yet, so the ticket is still ours to withdraw;
                # if a grant won the race, the drain gives the permits back.
                self._cancel(handle)
            elif fut.result():
                self.release(n)
            raise

    async def __aenter__(self):
        # `_wait` inlined: this is the hot path of `async with`.
        if self.acquire(False):
            return
        loop = _get_running_loop()
        last = _last
        nt = last[1] if last[0] is loop else _loop_notifier()
        queued = self._acquire_notify(1, _FOREVER, nt or _notifier(loop), loop)
        if queued is True:
            return
        fut, handle = queued
        try:
            await fut
        except asyncio.CancelledError:
            if fut.cancelled():
                self._cancel(handle)
            elif fut.result():
                self.release()
            raise

    async def __aexit__(self, *exc):
        loop, nt = _last
        if nt is not None and loop is _get_running_loop():
            # Tasks of this loop that the release serves are resolved now,
            # with no system call and no extra turn of the loop.
            self._release_here(nt)
        else:
            self.release()


class Semaphore(_rsem.Semaphore, _Async):
    __slots__ = ()
    __doc__ = _rsem.Semaphore.__doc__


class BoundedSemaphore(_rsem.BoundedSemaphore, Semaphore):
    __slots__ = ()
    __doc__ = _rsem.BoundedSemaphore.__doc__
