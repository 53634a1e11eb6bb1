"""Drop-in replacements for threading.Semaphore and threading.BoundedSemaphore,
backed by the rsem C library.

    import rsem
    sem = rsem.Semaphore(3)          # as threading.Semaphore(3)
    with sem:
        ...

Beyond threading: ``Semaphore(value, fifo=True)`` serves blocked threads in
arrival order; ``acquire_many(n, timeout=None)`` takes n permits at once or
none; ``shutdown()`` makes blocked and later acquires raise ``ClosedError``;
``value``, ``waiters`` and ``max`` report the state; ``drain()`` takes every
free permit.
"""
from ._rsem import BoundedSemaphore, ClosedError, Semaphore, COUNT_MAX

__all__ = ["Semaphore", "BoundedSemaphore", "ClosedError", "COUNT_MAX"]
__version__ = "0.1.0"
