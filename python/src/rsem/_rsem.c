/* The rsem Python extension: Semaphore and BoundedSemaphore with
 * threading's signatures, exceptions and messages, over the rsem C ABI.
 *
 * Blocking acquires release the GIL and wait in slices of at most 50 ms,
 * checking for signals between slices, so Ctrl-C (KeyboardInterrupt) ends a
 * blocked acquire promptly; a slice that times out has taken nothing, so an
 * interrupted acquire never loses a permit. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#include "rsem.h"

/* How long a blocked acquire waits before it checks for signals. */
#define SIGNAL_CHECK_NS (50 * 1000 * 1000LL)

static PyObject *ClosedError;

typedef struct {
    PyObject_HEAD
    rsem_semaphore *sem;
    int64_t initial;
    int bounded;
    /* Calls that use `sem` with the GIL released (blocked acquires): while
     * any is in progress, `__init__` must not replace (free) `sem`. */
    long busy;
} SemObject;

static PyTypeObject SemaphoreType;
static PyTypeObject BoundedSemaphoreType;

/* ---- creation --------------------------------------------------------- */

static int make(SemObject *self, PyObject *args, PyObject *kwds, int bounded) {
    static char *kwlist[] = {"value", "fifo", NULL};
    long long value = 1;
    int fifo = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|L$p", kwlist, &value, &fifo)) return -1;
    if (value < 0) {
        PyErr_SetString(PyExc_ValueError, "semaphore initial value must be >= 0");
        return -1;
    }
    if (value > SEM_COUNT_MAX) {
        PyErr_Format(PyExc_OverflowError, "semaphore initial value must be <= %lld",
                     (long long)SEM_COUNT_MAX);
        return -1;
    }
    rsem_semaphore *sem =
        sem_new_ex(value, bounded ? value : SEM_COUNT_MAX, fifo ? SEM_FIFO : 0);
    if (sem == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (self->sem != NULL) {
        /* __init__ called again, as threading allows: replace the semaphore,
         * but never free it under threads blocked on it. */
        if (self->busy > 0) {
            sem_free(sem);
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot re-initialize a semaphore while threads wait on it");
            return -1;
        }
        sem_free(self->sem);
    }
    self->sem = sem;
    self->initial = value;
    self->bounded = bounded;
    return 0;
}

static int Semaphore_init(SemObject *self, PyObject *args, PyObject *kwds) {
    return make(self, args, kwds, 0);
}

static int BoundedSemaphore_init(SemObject *self, PyObject *args, PyObject *kwds) {
    return make(self, args, kwds, 1);
}

static void Sem_dealloc(SemObject *self) {
    sem_free(self->sem);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(SemObject *self) {
    if (self->sem == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "semaphore not initialized (__init__ not called)");
        return 0;
    }
    return 1;
}

/* ---- acquiring -------------------------------------------------------- */

/* Maps a failed status to an exception; returns NULL. */
static PyObject *status_error(int status) {
    if (status == SEM_ECLOSED)
        PyErr_SetString(ClosedError, "semaphore was shut down");
    else
        PyErr_Format(PyExc_ValueError, "invalid argument (rsem status %d)", status);
    return NULL;
}

/* Takes n permits: blocking or not, with an optional timeout (None: no
 * limit). Returns True/False, or NULL with an exception. */
static PyObject *acquire_n(SemObject *self, int64_t n, int blocking, PyObject *timeout_obj) {
    if (!ready(self)) return NULL;
    if (!blocking && timeout_obj != Py_None) {
        PyErr_SetString(PyExc_ValueError, "can't specify timeout for non-blocking acquire");
        return NULL;
    }
    double timeout = -1.0;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred()) return NULL;
        if (isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
            return NULL;
        }
    }
    /* First a non-blocking attempt, without releasing the GIL. A semaphore
     * whose maximum is 0 can never hold a permit: rsem refuses to wait on it
     * (SEM_EINVAL), threading waits in vain; so do we. */
    int never = sem_max(self->sem) == 0;
    int status = never ? SEM_TIMEDOUT : sem_acquire_many(self->sem, n, 0.0);
    if (status == SEM_OK) Py_RETURN_TRUE;
    if (status != SEM_TIMEDOUT) return status_error(status);
    if (!blocking || (timeout_obj != Py_None && timeout <= 0)) Py_RETURN_FALSE;

    int64_t deadline = INT64_MAX;
    if (timeout_obj != Py_None) {
        double ns = timeout * 1e9;
        int64_t now = sem_clock_ns();
        deadline = ns >= (double)(INT64_MAX - now) ? INT64_MAX : now + (int64_t)ceil(ns);
    }
    for (;;) {
        int64_t now = sem_clock_ns();
        int64_t slice = deadline - now > SIGNAL_CHECK_NS ? now + SIGNAL_CHECK_NS : deadline;
        self->busy++;
        Py_BEGIN_ALLOW_THREADS
        if (never) {
            struct timespec ts = {(slice - now) / 1000000000LL, (slice - now) % 1000000000LL};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
            status = SEM_TIMEDOUT;
        } else {
            status = sem_acquire_until(self->sem, n, slice);
        }
        Py_END_ALLOW_THREADS
        self->busy--;
        if (status == SEM_OK) Py_RETURN_TRUE;
        if (status != SEM_TIMEDOUT) return status_error(status);
        if (slice == deadline) Py_RETURN_FALSE;
        /* Nothing was taken in this slice: safe to raise KeyboardInterrupt. */
        if (PyErr_CheckSignals() < 0) return NULL;
    }
}

/* Parses (blocking=True, timeout=None) from a vectorcall. */
static int parse_blocking_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                                  Py_ssize_t first, int *blocking, PyObject **timeout) {
    PyObject *b = NULL, *t = NULL;
    if (nargs - first > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
        return -1;
    }
    if (nargs - first >= 1) b = args[first];
    if (nargs - first >= 2) t = args[first + 1];
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            PyObject *val = args[nargs + i];
            if (PyUnicode_CompareWithASCIIString(key, "blocking") == 0 && b == NULL) {
                b = val;
            } else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0 && t == NULL) {
                t = val;
            } else {
                PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated keyword argument '%U'", key);
                return -1;
            }
        }
    }
    *blocking = 1;
    if (b != NULL) {
        int r = PyObject_IsTrue(b);
        if (r < 0) return -1;
        *blocking = r;
    }
    *timeout = t != NULL ? t : Py_None;
    return 0;
}

static PyObject *Sem_acquire(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    /* The common case, acquire() with no arguments, skips all parsing. */
    if (nargs == 0 && kwnames == NULL && self->sem != NULL && sem_try_acquire(self->sem) == SEM_OK)
        Py_RETURN_TRUE;
    int blocking;
    PyObject *timeout;
    if (parse_blocking_timeout(args, nargs, kwnames, 0, &blocking, &timeout) < 0) return NULL;
    return acquire_n(self, 1, blocking, timeout);
}

static PyObject *Sem_acquire_many(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "acquire_many() missing required argument 'n'");
        return NULL;
    }
    long long n = PyLong_AsLongLong(args[0]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (!ready(self)) return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "n must be one or more");
        return NULL;
    }
    if (n > sem_max(self->sem)) {
        PyErr_SetString(PyExc_ValueError, "n is larger than the semaphore's maximum");
        return NULL;
    }
    int blocking;
    PyObject *timeout;
    if (parse_blocking_timeout(args, nargs, kwnames, 1, &blocking, &timeout) < 0) return NULL;
    return acquire_n(self, n, blocking, timeout);
}

static PyObject *Sem_enter(SemObject *self, PyObject *unused) {
    (void)unused;
    return acquire_n(self, 1, 1, Py_None);
}

/* ---- releasing -------------------------------------------------------- */

static PyObject *release_n(SemObject *self, long long n) {
    if (!ready(self)) return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "n must be one or more");
        return NULL;
    }
    int status = n == 1 ? sem_release(self->sem) : sem_release_n(self->sem, n);
    if (status == SEM_OK) Py_RETURN_NONE;
    if (status == SEM_EOVERFLOW) {
        if (self->bounded)
            PyErr_SetString(PyExc_ValueError, "Semaphore released too many times");
        else
            PyErr_Format(PyExc_OverflowError, "semaphore value would exceed %lld",
                         (long long)SEM_COUNT_MAX);
        return NULL;
    }
    return status_error(status);
}

static PyObject *Sem_release(SemObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    long long n = 1;
    PyObject *arg = nargs >= 1 ? args[0] : NULL;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "release() takes at most 1 argument");
        return NULL;
    }
    if (kwnames != NULL) {
        if (PyTuple_GET_SIZE(kwnames) != 1 || arg != NULL ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "n") != 0) {
            PyErr_SetString(PyExc_TypeError, "release() takes one optional argument, n");
            return NULL;
        }
        arg = args[nargs];
    }
    if (arg != NULL) {
        n = PyLong_AsLongLong(arg);
        if (n == -1 && PyErr_Occurred()) return NULL;
    }
    return release_n(self, n);
}

static PyObject *Sem_exit(SemObject *self, PyObject *args) {
    (void)args;
    return release_n(self, 1);
}

/* ---- extras ------------------------------------------------------------ */

static PyObject *Sem_shutdown(SemObject *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    sem_shutdown(self->sem);
    Py_RETURN_NONE;
}

static PyObject *Sem_drain(SemObject *self, PyObject *unused) {
    (void)unused;
    if (!ready(self)) return NULL;
    return PyLong_FromLongLong(sem_drain(self->sem));
}

static PyObject *Sem_get_value(SemObject *self, void *closure) {
    (void)closure;
    if (!ready(self)) return NULL;
    return PyLong_FromLongLong(sem_value(self->sem));
}

static PyObject *Sem_get_waiters(SemObject *self, void *closure) {
    (void)closure;
    if (!ready(self)) return NULL;
    return PyLong_FromLongLong(sem_waiters(self->sem));
}

static PyObject *Sem_get_max(SemObject *self, void *closure) {
    (void)closure;
    if (!ready(self)) return NULL;
    return PyLong_FromLongLong(sem_max(self->sem));
}

static PyObject *Sem_get_initial(SemObject *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(self->initial);
}

static PyObject *Sem_repr(SemObject *self) {
    PyObject *type = (PyObject *)Py_TYPE(self);
    PyObject *module = PyObject_GetAttrString(type, "__module__");
    PyObject *qualname = PyObject_GetAttrString(type, "__qualname__");
    PyObject *result = NULL;
    if (module != NULL && qualname != NULL && ready(self)) {
        long long value = sem_value(self->sem);
        if (self->bounded)
            result = PyUnicode_FromFormat("<%S.%S at %p: value=%lld/%lld>", module, qualname,
                                          (void *)self, value, (long long)self->initial);
        else
            result = PyUnicode_FromFormat("<%S.%S at %p: value=%lld>", module, qualname,
                                          (void *)self, value);
    }
    Py_XDECREF(module);
    Py_XDECREF(qualname);
    return result;
}

static PyMethodDef Sem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Sem_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=None) -> bool\n\nAs threading.Semaphore.acquire."},
    {"acquire_many", (PyCFunction)(void (*)(void))Sem_acquire_many, METH_FASTCALL | METH_KEYWORDS,
     "acquire_many(n, blocking=True, timeout=None) -> bool\n\nTakes n permits at once, or none."},
    {"release", (PyCFunction)(void (*)(void))Sem_release, METH_FASTCALL | METH_KEYWORDS,
     "release(n=1)\n\nAs threading.Semaphore.release."},
    {"__enter__", (PyCFunction)Sem_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Sem_exit, METH_VARARGS, NULL},
    {"shutdown", (PyCFunction)Sem_shutdown, METH_NOARGS,
     "Blocked and later acquires raise ClosedError; releases keep working."},
    {"drain", (PyCFunction)Sem_drain, METH_NOARGS, "Takes every free permit; returns how many."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Sem_getset[] = {
    {"value", (getter)Sem_get_value, NULL, "free permits now (a snapshot)", NULL},
    {"_value", (getter)Sem_get_value, NULL, "as threading's _value", NULL},
    {"waiters", (getter)Sem_get_waiters, NULL, "threads blocked in an acquire now", NULL},
    {"max", (getter)Sem_get_max, NULL, "the largest value the semaphore accepts", NULL},
    {"_initial_value", (getter)Sem_get_initial, NULL, "the value given at creation", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SemaphoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem.Semaphore",
    .tp_basicsize = sizeof(SemObject),
    .tp_dealloc = (destructor)Sem_dealloc,
    .tp_repr = (reprfunc)Sem_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Semaphore(value=1, *, fifo=False): a drop-in threading.Semaphore.",
    .tp_methods = Sem_methods,
    .tp_getset = Sem_getset,
    .tp_init = (initproc)Semaphore_init,
    .tp_new = PyType_GenericNew,
};

static PyTypeObject BoundedSemaphoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem.BoundedSemaphore",
    .tp_basicsize = sizeof(SemObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "BoundedSemaphore(value=1, *, fifo=False): a drop-in threading.BoundedSemaphore.",
    .tp_init = (initproc)BoundedSemaphore_init,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rsem._rsem", "The rsem C extension.", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rsem(void) {
    BoundedSemaphoreType.tp_base = &SemaphoreType;
    if (PyType_Ready(&SemaphoreType) < 0 || PyType_Ready(&BoundedSemaphoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    ClosedError = PyErr_NewExceptionWithDoc("rsem.ClosedError",
                                            "The semaphore was shut down.", PyExc_RuntimeError, NULL);
    if (ClosedError == NULL || PyModule_AddObjectRef(m, "ClosedError", ClosedError) < 0 ||
        PyModule_AddObjectRef(m, "Semaphore", (PyObject *)&SemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "BoundedSemaphore", (PyObject *)&BoundedSemaphoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *count_max = PyLong_FromLongLong(SEM_COUNT_MAX);
    if (count_max == NULL || PyModule_AddObject(m, "COUNT_MAX", count_max) < 0) {
        Py_XDECREF(count_max);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
