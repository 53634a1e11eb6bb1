/* The rsem Python extension: Semaphore and BoundedSemaphore with
 * threading's signatures, exceptions and messages, over the rsem C ABI, and
 * the C half of asyncio support (Notifier, _acquire_notify, _cancel; the
 * Python half is in __init__.py).
 *
 * A blocking acquire that has to wait queues one async acquire (a ticket)
 * and releases the GIL; the ticket's callback wakes it through a private
 * rsem semaphore. It waits for that in slices of at most 50 ms, checking for
 * signals between slices, so Ctrl-C (KeyboardInterrupt) ends a blocked
 * acquire promptly, while the ticket keeps its place in the queue (FIFO
 * order and fairness hold through Python). On an exception the ticket is
 * cancelled; if a grant won that race, the permits are given back, so an
 * interrupted acquire never loses a permit. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "rsem.h"

/* How long a blocked acquire waits before it checks for signals. */
#define SIGNAL_CHECK_NS (50 * 1000 * 1000LL)
/* Default mode: how long an acquire first waits as a plain blocked thread
 * (spinning, then sleeping) before it queues for good. */
#define BRIEF_WAIT_NS (50 * 1000LL)

static PyObject *ClosedError;

/* A blocked thread's wait: the ticket, and the private semaphore its
 * callback releases. rsem touches neither after the callback's release,
 * and a release never touches its semaphore once the permit can be taken,
 * so the waiter may free both as soon as it has taken the permit. */
typedef struct {
    rsem_ticket ticket;
    rsem_semaphore *event;
    int status;
} BlockedWait;

/* Each thread's private event semaphore (count 0 between waits), made on
 * its first blocked acquire and freed when the thread exits. */
static pthread_key_t event_key;
static pthread_once_t event_once = PTHREAD_ONCE_INIT;

static void free_event(void *event) { sem_free((rsem_semaphore *)event); }
static void make_event_key(void) { (void)pthread_key_create(&event_key, free_event); }

static rsem_semaphore *thread_event(void) {
    (void)pthread_once(&event_once, make_event_key);
    rsem_semaphore *event = pthread_getspecific(event_key);
    if (event == NULL) {
        event = sem_new(0);
        if (event != NULL && pthread_setspecific(event_key, event) != 0) {
            sem_free(event);
            event = NULL;
        }
    }
    return event;
}

static void blocked_wait_done(void *ctx, rsem_ticket *ticket, int status) {
    BlockedWait *w = (BlockedWait *)ctx;
    (void)ticket;
    w->status = status; /* published by the release below */
    sem_release(w->event);
}

/* Waits, with the GIL released, until `w`'s completion; in slices, checking
 * for signals. Returns 0 once completed (w->status is the outcome), -1 with
 * an exception (the acquire was withdrawn, or its permits given back). */
static int wait_blocked(rsem_semaphore *sem, int64_t n, BlockedWait *w, long *busy) {
    for (;;) {
        int status;
        (*busy)++;
        Py_BEGIN_ALLOW_THREADS
        status = sem_acquire_timed(w->event, SIGNAL_CHECK_NS / 1e9);
        Py_END_ALLOW_THREADS
        (*busy)--;
        if (status == SEM_OK) return 0;
        if (PyErr_CheckSignals() < 0) {
            if (sem_cancel(sem, &w->ticket) != SEM_OK) {
                /* Completed first: its callback is about to release (or
                 * has released) the event; if it was a grant, give the
                 * permits back. */
                Py_BEGIN_ALLOW_THREADS
                sem_acquire(w->event);
                Py_END_ALLOW_THREADS
                if (w->status == SEM_OK) sem_release_n(sem, n);
            }
            return -1;
        }
    }
}

typedef struct {
    PyObject_HEAD
    rsem_semaphore *sem;
    int64_t initial;
    int bounded;
    int fifo;
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
    self->fifo = fifo;
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
    while (never) {
        int64_t now = sem_clock_ns();
        int64_t slice = deadline - now > SIGNAL_CHECK_NS ? now + SIGNAL_CHECK_NS : deadline;
        Py_BEGIN_ALLOW_THREADS
        struct timespec ts = {(slice - now) / 1000000000LL, (slice - now) % 1000000000LL};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        Py_END_ALLOW_THREADS
        if (slice == deadline) Py_RETURN_FALSE;
        if (PyErr_CheckSignals() < 0) return NULL;
    }
    /* Default mode (no arrival order promised): first a short wait as a
     * plain blocked thread, which spins briefly before it sleeps, so a
     * permit passed between running threads costs a cache-line transfer,
     * not a wake-up. FIFO mode goes straight to the queue. */
    if (!self->fifo) {
        int64_t now = sem_clock_ns();
        int64_t brief = deadline - now > BRIEF_WAIT_NS ? now + BRIEF_WAIT_NS : deadline;
        self->busy++;
        Py_BEGIN_ALLOW_THREADS
        status = sem_acquire_until(self->sem, n, brief);
        Py_END_ALLOW_THREADS
        self->busy--;
        if (status == SEM_OK) Py_RETURN_TRUE;
        if (status != SEM_TIMEDOUT) return status_error(status);
        if (brief == deadline) Py_RETURN_FALSE;
    }
    /* Queue once, and keep the place while waiting. */
    BlockedWait w;
    w.status = SEM_TIMEDOUT;
    w.event = thread_event();
    if (w.event == NULL) return PyErr_NoMemory();
    status = sem_acquire_async(self->sem, n, deadline, blocked_wait_done, &w, &w.ticket);
    if (status == SEM_PENDING) {
        self->busy++; /* the ticket uses self->sem until it completes */
        int r = wait_blocked(self->sem, n, &w, &self->busy);
        self->busy--;
        status = r < 0 ? SEM_CANCELLED : w.status;
    }
    /* (The event's count is 0 again: its one release was taken.) */
    if (status == SEM_CANCELLED) return NULL; /* the exception is set */
    if (status == SEM_OK) Py_RETURN_TRUE;
    if (status == SEM_TIMEDOUT) Py_RETURN_FALSE;
    if (status == SEM_ENOMEM) return PyErr_NoMemory();
    return status_error(status);
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

/* ---- asyncio: a notifier per event loop -------------------------------- */

/* A pending acquire of an asyncio task: the ticket, the future to resolve
 * and the semaphore (owned references, dropped when drained). Its memory is
 * owned by a capsule (the handle _cancel takes), so it outlives the drain
 * while the waiting coroutine still holds the handle: a late _cancel then
 * sees `drained` instead of an address another ticket may have reused. */
typedef struct {
    rsem_ticket ticket;
    PyObject *future;
    SemObject *sem;
    int64_t n;
    int drained;
    PyObject *capsule; /* the pending acquire's reference to its handle */
} AsyncWait;

static const char WAIT_CAPSULE[] = "rsem._AsyncWait";

static void free_async_wait(PyObject *capsule) {
    PyMem_Free(PyCapsule_GetPointer(capsule, WAIT_CAPSULE));
}

typedef struct {
    PyObject_HEAD
    rsem_notifier *nt;
} NotifierObject;

static int Notifier_init(NotifierObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
    if (self->nt != NULL) return 0;
    self->nt = sem_notifier_new();
    if (self->nt == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void Notifier_dealloc(NotifierObject *self) {
    /* Undrained completions keep it alive (SEM_EBUSY): then it is leaked,
     * never freed under them. */
    if (self->nt != NULL) sem_notifier_free(self->nt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Notifier_fileno(NotifierObject *self, PyObject *unused) {
    (void)unused;
    return PyLong_FromLong(sem_notifier_fd(self->nt));
}

/* Resolves one drained completion on the loop's thread. A future that was
 * cancelled (its task was) gets nothing: permits granted to it go back. */
static PyObject *str_cancelled, *str_set_result, *str_set_exception;

static int resolve(AsyncWait *w, int status) {
    int rc = 0;
    PyObject *r;
    /* Resolve first and ask whether the future was cancelled only if that
     * fails (one call instead of two on the common path). */
    if (status == SEM_OK || status == SEM_TIMEDOUT) {
        r = PyObject_CallMethodOneArg(w->future, str_set_result,
                                      status == SEM_OK ? Py_True : Py_False);
    } else {
        PyObject *e = status == SEM_ECLOSED
                          ? PyObject_CallFunction(ClosedError, "s", "semaphore was shut down")
                          : PyObject_CallFunction(PyExc_RuntimeError, "s", "acquire withdrawn");
        r = e == NULL ? NULL : PyObject_CallMethodOneArg(w->future, str_set_exception, e);
        Py_XDECREF(e);
    }
    if (r == NULL) {
        /* A cancelled future (its task was cancelled) refuses a result:
         * nothing to resolve, and permits granted to it go back. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *c = PyObject_CallMethodNoArgs(w->future, str_cancelled);
        int cancelled = c != NULL && PyObject_IsTrue(c) == 1;
        Py_XDECREF(c);
        if (cancelled) {
            PyErr_Clear();
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            if (status == SEM_OK) sem_release_n(w->sem->sem, w->n);
        } else {
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
            rc = -1;
        }
    }
    Py_XDECREF(r);
    w->sem->busy--;
    w->drained = 1;
    Py_CLEAR(w->future);
    Py_CLEAR(w->sem);
    Py_DECREF(w->capsule); /* last: may free `w` */
    return rc;
}

/* drain(): resolves every completion waiting on the notifier; returns how
 * many. Called by the loop's reader callback, and after releases made on
 * the loop's own thread (no wait for the descriptor). */
static PyObject *Notifier_drain(NotifierObject *self, PyObject *unused) {
    (void)unused;
    rsem_completion done[64];
    long total = 0;
    int failed = 0;
    for (;;) {
        int64_t k = sem_notifier_drain(self->nt, done, 64);
        for (int64_t i = 0; i < k; i++)
            if (resolve((AsyncWait *)done[i].ctx, done[i].status) < 0) failed = 1;
        total += (long)k;
        if (k < 64) break;
    }
    if (failed) return NULL;
    return PyLong_FromLong(total);
}

static PyMethodDef Notifier_methods[] = {
    {"fileno", (PyCFunction)Notifier_fileno, METH_NOARGS, "The descriptor to poll for reading."},
    {"drain", (PyCFunction)Notifier_drain, METH_NOARGS,
     "Resolves the futures of completed acquires; returns how many."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NotifierType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem._rsem.Notifier",
    .tp_basicsize = sizeof(NotifierObject),
    .tp_dealloc = (destructor)Notifier_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Notifier(): completions of asyncio acquires, behind a pollable descriptor.",
    .tp_methods = Notifier_methods,
    .tp_init = (initproc)Notifier_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *str_create_future;

/* _acquire_notify(n, deadline_ns, notifier, loop) -> True (acquired at
 * once), False (deadline already passed), or, queued, (future, handle):
 * the loop's new future, resolved when the acquire completes, and an int
 * handle for _cancel (valid until the completion is drained). */
static PyObject *Sem_acquire_notify(SemObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyObject_TypeCheck(args[2], &NotifierType)) {
        PyErr_SetString(PyExc_TypeError, "_acquire_notify(n, deadline_ns, notifier, loop)");
        return NULL;
    }
    long long n = PyLong_AsLongLong(args[0]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    long long deadline = PyLong_AsLongLong(args[1]);
    if (deadline == -1 && PyErr_Occurred()) return NULL;
    PyObject *notifier = args[2];
    if (!ready(self)) return NULL;
    /* Free now: nothing to allocate (the common case of `async with`). */
    if (n >= 1 && n <= sem_max(self->sem)) {
        int now = n == 1 ? sem_try_acquire(self->sem) : sem_acquire_many(self->sem, n, 0.0);
        if (now == SEM_OK) Py_RETURN_TRUE;
        if (now == SEM_ECLOSED) return status_error(now);
    }
    if (n < 1 || n > sem_max(self->sem)) {
        PyErr_SetString(PyExc_ValueError, "n must be between 1 and the semaphore's maximum");
        return NULL;
    }
    AsyncWait *w = PyMem_Malloc(sizeof *w);
    if (w == NULL) return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(w, WAIT_CAPSULE, free_async_wait);
    if (capsule == NULL) {
        PyMem_Free(w);
        return NULL;
    }
    PyObject *future = PyObject_CallMethodNoArgs(args[3], str_create_future);
    PyObject *pair = future == NULL ? NULL : PyTuple_Pack(2, future, capsule);
    if (pair == NULL) {
        Py_XDECREF(future);
        Py_DECREF(capsule); /* frees `w` */
        return NULL;
    }
    w->future = future; /* the reference from create_future */
    w->sem = self;
    w->n = n;
    w->drained = 0;
    w->capsule = capsule; /* its creation reference: dropped when drained */
    int status = sem_acquire_notify(self->sem, n, deadline, ((NotifierObject *)notifier)->nt, w,
                                    &w->ticket);
    if (status != SEM_PENDING) {
        Py_DECREF(pair);
        Py_DECREF(future);
        Py_DECREF(capsule); /* frees `w` */
        if (status == SEM_OK) Py_RETURN_TRUE;
        if (status == SEM_TIMEDOUT) Py_RETURN_FALSE;
        if (status == SEM_ENOMEM) return PyErr_NoMemory();
        return status_error(status);
    }
    Py_INCREF((PyObject *)self);
    self->busy++; /* __init__ must not replace the semaphore under it */
    return pair;
}

/* _release_here(notifier): a release made inside the notifier's loop, on
 * its thread (the end of `async with`): what it completes is queued without
 * touching the descriptor and resolved now (no system call, no extra turn
 * of the loop). */
static PyObject *Sem_release_here(SemObject *self, PyObject *notifier) {
    if (!PyObject_TypeCheck(notifier, &NotifierType)) {
        PyErr_SetString(PyExc_TypeError, "a Notifier is needed");
        return NULL;
    }
    if (!ready(self)) return NULL;
    if (sem_waiters(self->sem) == 0) return release_n(self, 1); /* nobody to resolve */
    rsem_notifier *nt = ((NotifierObject *)notifier)->nt;
    sem_notifier_quiet(nt, 1);
    PyObject *r = release_n(self, 1);
    sem_notifier_quiet(nt, 0);
    PyObject *d = Notifier_drain((NotifierObject *)notifier, NULL);
    if (r == NULL || d == NULL) {
        Py_XDECREF(r);
        Py_XDECREF(d);
        return NULL;
    }
    Py_DECREF(d);
    return r;
}

/* _cancel(handle) -> status of sem_cancel, or SEM_ENOTPENDING once the
 * completion was drained (the handle keeps the memory alive, so the ticket
 * address cannot belong to another acquire meanwhile). */
static PyObject *Sem_cancel(SemObject *self, PyObject *arg) {
    AsyncWait *w = PyCapsule_GetPointer(arg, WAIT_CAPSULE);
    if (w == NULL) return NULL;
    if (!ready(self)) return NULL;
    if (w->drained) return PyLong_FromLong(SEM_ENOTPENDING);
    return PyLong_FromLong(sem_cancel(self->sem, &w->ticket));
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
    {"_acquire_notify", (PyCFunction)(void (*)(void))Sem_acquire_notify, METH_FASTCALL, NULL},
    {"_cancel", (PyCFunction)Sem_cancel, METH_O, NULL},
    {"_release_here", (PyCFunction)Sem_release_here, METH_O, NULL},
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
    if (PyType_Ready(&SemaphoreType) < 0 || PyType_Ready(&BoundedSemaphoreType) < 0 ||
        PyType_Ready(&NotifierType) < 0)
        return NULL;
    str_cancelled = PyUnicode_InternFromString("cancelled");
    str_set_result = PyUnicode_InternFromString("set_result");
    str_set_exception = PyUnicode_InternFromString("set_exception");
    str_create_future = PyUnicode_InternFromString("create_future");
    if (str_cancelled == NULL || str_set_result == NULL || str_set_exception == NULL ||
        str_create_future == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    ClosedError = PyErr_NewExceptionWithDoc("rsem.ClosedError",
                                            "The semaphore was shut down.", PyExc_RuntimeError, NULL);
    if (ClosedError == NULL || PyModule_AddObjectRef(m, "ClosedError", ClosedError) < 0 ||
        PyModule_AddObjectRef(m, "Semaphore", (PyObject *)&SemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "BoundedSemaphore", (PyObject *)&BoundedSemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "Notifier", (PyObject *)&NotifierType) < 0 ||
        PyModule_AddIntConstant(m, "_OK", SEM_OK) < 0 ||
        PyModule_AddIntConstant(m, "_TIMEDOUT", SEM_TIMEDOUT) < 0 ||
        PyModule_AddIntConstant(m, "_PENDING", SEM_PENDING) < 0) {
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
