"""rsem from Python through ctypes: no compiler, just the shared library.

    python3 examples/ffi/ctypes_example.py      (RSEM_LIBRARY=/path/to/librsem.so)

The status codes are macros in rsem.h, which an FFI cannot see: their values
are copied here (they never change; docs/ffi.md lists them). Every integer
parameter is int64_t and every status an int: declare argtypes/restype, or
ctypes passes Python ints as C int and truncates them. (For real Python use
prefer the `rsem` package in python/: a C extension, 20x faster per call.)
Exits 0 after checking what it prints."""
import ctypes
import os
import sys
import threading
import time

SEM_OK, SEM_TIMEDOUT, SEM_EINVAL, SEM_EOVERFLOW, SEM_ECLOSED = 0, 1, -1, -2, -3
SEM_COUNT_MAX = (1 << 60) - 1

path = os.environ.get("RSEM_LIBRARY") or os.path.join(
    os.path.dirname(__file__), "..", "..", "target", "release", "librsem.so")
lib = ctypes.CDLL(path)
sem_p = ctypes.c_void_p  # rsem_semaphore * (opaque)
for name, res, args in [
    ("sem_new", sem_p, [ctypes.c_int64]),
    ("sem_new_bounded", sem_p, [ctypes.c_int64]),
    ("sem_free", None, [sem_p]),
    ("sem_acquire", ctypes.c_int, [sem_p]),
    ("sem_try_acquire", ctypes.c_int, [sem_p]),
    ("sem_acquire_timed", ctypes.c_int, [sem_p, ctypes.c_double]),
    ("sem_acquire_many", ctypes.c_int, [sem_p, ctypes.c_int64, ctypes.c_double]),
    ("sem_release", ctypes.c_int, [sem_p]),
    ("sem_release_n", ctypes.c_int, [sem_p, ctypes.c_int64]),
    ("sem_value", ctypes.c_int64, [sem_p]),
    ("sem_max", ctypes.c_int64, [sem_p]),
    ("sem_waiters", ctypes.c_int64, [sem_p]),
    ("sem_shutdown", ctypes.c_int, [sem_p]),
]:
    f = getattr(lib, name)
    f.restype, f.argtypes = res, args

s = lib.sem_new(2)
assert s, "sem_new failed"
assert lib.sem_max(s) == SEM_COUNT_MAX          # a 64-bit result, not truncated
assert lib.sem_acquire_many(s, 2, 0.0) == SEM_OK
assert lib.sem_try_acquire(s) == SEM_TIMEDOUT
t0 = time.monotonic()
assert lib.sem_acquire_timed(s, 0.05) == SEM_TIMEDOUT
assert time.monotonic() - t0 >= 0.05

# A blocking acquire releases the GIL (ctypes does for CDLL calls), so
# another Python thread can release meanwhile.
got = []
t = threading.Thread(target=lambda: got.append(lib.sem_acquire(s)))
t.start()
while lib.sem_waiters(s) != 1:
    time.sleep(0.001)
assert lib.sem_release_n(s, 3) == SEM_OK
t.join()
assert got == [SEM_OK] and lib.sem_value(s) == 2

b = lib.sem_new_bounded(1)
assert lib.sem_release(b) == SEM_EOVERFLOW      # past its initial value
assert lib.sem_release_n(s, -1) == SEM_EINVAL
lib.sem_shutdown(s)
assert lib.sem_acquire(s) == SEM_ECLOSED
lib.sem_free(s)
lib.sem_free(b)
print("ctypes_example: ok")
sys.exit(0)
