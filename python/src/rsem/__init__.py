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
import itertools
import os
import time
import weakref
from asyncio import get_running_loop as _get_running_loop
from asyncio.events import _get_running_loop as _running_loop_or_none

from . import _rsem
from ._rsem import ClosedError, COUNT_MAX, RECOVERED

__all__ = ["Semaphore", "BoundedSemaphore", "SharedSemaphore", "ClosedError", "COUNT_MAX",
           "RECOVERED"]
__version__ = "0.1.0"

_FOREVER = (1 << 63) - 1
# One notifier per event loop: its descriptor is registered with the loop's
# add_reader, and its drain() resolves the futures of completed acquires.
_notifiers = weakref.WeakKeyDictionary()


def _notifier(loop):
    """The loop's notifier, made and registered on first use."""
    nt = _notifiers.get(loop)
    if nt is None:
        nt = _rsem.Notifier()
        loop.add_reader(nt.fileno(), nt.drain)
        _notifiers[loop] = nt
    return nt


def _loop_notifier():
    """The running loop's notifier."""
    return _notifier(_get_running_loop())


# The C half remembers the last loop and its notifier, and asks _notifier
# when the running loop is another one.
_rsem._setup(_running_loop_or_none, _notifier)


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
    if ns <= 0:
        return now  # already passed (also for -inf)
    if ns >= _FOREVER - now:
        return _FOREVER
    return now + int(ns)


class _Async:
    """The asyncio half of Semaphore and BoundedSemaphore (`async with` is
    in the C half: __aenter__ and __aexit__ give awaitables that need no
    coroutine frame)."""

    __slots__ = ()

    async def acquire_async(self, n=1, timeout=None):
        """await acquire_async(n=1, timeout=None) -> bool

        Takes n permits without blocking the event loop: True once taken,
        False if `timeout` seconds passed first. Waits in the same queue as
        blocked threads. Cancelling the awaiting task withdraws the request,
        or gives back permits that were granted as it was cancelled."""
        if timeout is None:
            return await self._acquiring(n)
        return await self._acquiring(n, _deadline(timeout))


class Semaphore(_rsem.Semaphore, _Async):
    __slots__ = ()
    __doc__ = _rsem.Semaphore.__doc__


class BoundedSemaphore(_rsem.BoundedSemaphore, Semaphore):
    __slots__ = ()
    __doc__ = _rsem.BoundedSemaphore.__doc__


# Anonymous shared semaphores made by this process (or by a parent before it
# forked this one), by token: unpickling one in a forked child finds it here.
_anonymous = weakref.WeakValueDictionary()
_tokens = itertools.count()


def _open_named(name):
    return SharedSemaphore(name, create=False)


def _inherited(token):
    sem = _anonymous.get(token)
    if sem is None:
        raise RuntimeError(
            "an anonymous SharedSemaphore reaches only processes forked after it "
            "was made (multiprocessing's 'fork' start method); give it a name to "
            "share it with other processes")
    return sem


class SharedSemaphore(_rsem.SharedSemaphore):
    """SharedSemaphore(name=None, value=1, *, bounded=False, create=True,
    exclusive=False, mode=0o600, recover=False)

    A semaphore shared between processes, with threading.Semaphore's
    methods (acquire, release, with) and rsem's (acquire_many, value,
    waiters, max, drain, shutdown).

    name=None: anonymous, in memory that processes forked after this share
    (pass it to multiprocessing or concurrent.futures workers of the 'fork'
    start method, as an argument or inherited). With a name (such as
    "/jobs"): any process that opens the name gets the same semaphore;
    create=False only opens (FileNotFoundError if there is none),
    exclusive=True only creates (FileExistsError if the name is taken);
    value, bounded and mode apply when it is created. unlink() removes the
    name. Pickled, a named one reopens by name; an anonymous one is found
    again in forked processes.

    recover=True (when it is created): the permits a process took and did
    not give back return when it dies (killed, crashed or exited; at most
    128 processes use it at once); sleepers get them within about 0.1 s,
    and an acquire that takes them returns rsem.RECOVERED (true) instead of
    True: whatever they protected may need repair. Without it, permits held
    by a process that dies are lost, as with multiprocessing.Semaphore.

    Linux only (OSError ENOSYS elsewhere). The value is at most 2**31 - 1."""

    __slots__ = ("_token", "__weakref__")

    def __init__(self, name=None, value=1, **kwargs):
        super().__init__(name, value, **kwargs)
        if name is None:
            self._token = (os.getpid(), next(_tokens))
            _anonymous[self._token] = self

    def __reduce__(self):
        if self.name is not None:
            return (_open_named, (self.name,))
        return (_inherited, (self._token,))

    async def __aenter__(self):
        raise NotImplementedError(
            "a SharedSemaphore cannot be awaited (no async acquire across processes)")

    async def __aexit__(self, *exc):
        raise NotImplementedError(
            "a SharedSemaphore cannot be awaited (no async acquire across processes)")
