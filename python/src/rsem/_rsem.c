/* The rsem Python extension: Semaphore and BoundedSemaphore with
 * threading's signatures, exceptions and messages, over the rsem C ABI, and
 * the C half of asyncio support (Notifier, _aenter, _aexit, _withdraw; the
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
#include <string.h>
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
    /* Acquires of asyncio tasks queued and not drained yet. */
    struct AsyncWait *pending;
    /* A SharedSemaphore: its name (NULL: anonymous). */
    int shared;
    PyObject *name;
} SemObject;

static int is_shared(SemObject *self) { return self->shared; }

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
    self->shared = 0;
    Py_CLEAR(self->name);
    return 0;
}

static PyObject *status_error(int status);

/* rsem.RECOVERED: what an acquire returns instead of True when some of the
 * permits it took came back from a process that died holding them (a
 * SharedSemaphore made with recover=True). True in a boolean context. */
static PyObject *Recovered;

static int recovered_bool(PyObject *o) {
    (void)o;
    return 1;
}

static PyObject *recovered_repr(PyObject *o) {
    (void)o;
    return PyUnicode_FromString("rsem.RECOVERED");
}

static PyNumberMethods RecoveredNumber = {.nb_bool = recovered_bool};

static PyTypeObject RecoveredType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rsem.Recovered",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_repr = recovered_repr,
    .tp_as_number = &RecoveredNumber,
    .tp_doc = "The type of rsem.RECOVERED (true: the permits were acquired, and some "
              "came back from a process that died holding them).",
};

/* For a status that means the permits were taken: returns True, or
 * rsem.RECOVERED. */
#define RETURN_IF_ACQUIRED(status)                                             \
    do {                                                                       \
        if ((status) == SEM_OK) Py_RETURN_TRUE;                                \
        if ((status) == SEM_RECOVERED) return Py_NewRef(Recovered);            \
    } while (0)

/* SharedSemaphore(name=None, value=1, *, bounded=False, create=True,
 * exclusive=False, mode=0o600, fifo=False, recover=False): a process-shared
 * semaphore, anonymous (inherited by forked children) or named. */
static int SharedSemaphore_init(SemObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"name",      "value", "bounded", "create", "exclusive",
                             "mode",      "fifo",  "recover", NULL};
    PyObject *name = Py_None;
    long long value = 1;
    int bounded = 0, create = 1, exclusive = 0, fifo = 0, recover = 0;
    unsigned int mode = 0600;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OL$pppIpp", kwlist, &name, &value, &bounded,
                                     &create, &exclusive, &mode, &fifo, &recover))
        return -1;
    uint32_t flags = (recover ? SEM_RECOVER : 0) | (fifo ? SEM_FIFO : 0);
    if (self->sem != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a SharedSemaphore cannot be re-initialized");
        return -1;
    }
    if (value < 0) {
        PyErr_SetString(PyExc_ValueError, "semaphore initial value must be >= 0");
        return -1;
    }
    if (value > SEM_SHARED_MAX) {
        PyErr_Format(PyExc_OverflowError, "shared semaphore initial value must be <= %lld",
                     (long long)SEM_SHARED_MAX);
        return -1;
    }
    if (exclusive && !create) {
        PyErr_SetString(PyExc_ValueError, "exclusive=True needs create=True");
        return -1;
    }
    int64_t max = bounded ? value : SEM_SHARED_MAX;
    rsem_semaphore *sem;
    if (name == Py_None) {
        sem = sem_new_shared(value, max, flags);
    } else {
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "name must be a str or None");
            return -1;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &len);
        if (utf8 == NULL) return -1;
        if ((size_t)len != strlen(utf8)) {
            PyErr_SetString(PyExc_ValueError, "name must not contain NUL");
            return -1;
        }
        uint32_t oflag = (create ? SEM_CREATE : 0) | (exclusive ? SEM_EXCL : 0);
        sem = sem_open_named(utf8, oflag, mode, value, max, flags);
    }
    if (sem == NULL) {
        if (errno == EINVAL && name != Py_None)
            PyErr_Format(PyExc_ValueError,
                         "invalid name %R, mode or value (or the file is not an rsem semaphore)", name);
        else
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name == Py_None ? NULL : name);
        return -1;
    }
    self->sem = sem;
    self->initial = value;
    self->bounded = bounded;
    self->fifo = fifo;
    self->shared = 1;
    if (name != Py_None) self->name = Py_NewRef(name);
    return 0;
}

static PyObject *Shared_unlink(SemObject *self, PyObject *unused) {
    (void)unused;
    if (self->name == NULL) {
        PyErr_SetString(PyExc_ValueError, "an anonymous SharedSemaphore has no name to remove");
        return NULL;
    }
    const char *utf8 = PyUnicode_AsUTF8(self->name);
    if (utf8 == NULL) return NULL;
    int status = sem_unlink_named(utf8);
    if (status == SEM_ESYS) return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, self->name);
    if (status != SEM_OK) return status_error(status);
    Py_RETURN_NONE;
}

static PyObject *Shared_get_name(SemObject *self, void *closure) {
    (void)closure;
    return Py_NewRef(self->name != NULL ? self->name : Py_None);
}

static int Semaphore_init(SemObject *self, PyObject *args, PyObject *kwds) {
    return make(self, args, kwds, 0);
}

static int BoundedSemaphore_init(SemObject *self, PyObject *args, PyObject *kwds) {
    return make(self, args, kwds, 1);
}

static void Sem_dealloc(SemObject *self) {
    sem_free(self->sem);
    Py_XDECREF(self->name);
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
    else if (status == SEM_EBUSY)
        PyErr_SetString(PyExc_RuntimeError,
                        "semaphore busy: its lock is held by this thread (a signal handler?), "
                        "or this process has no slot in it (SEM_RECOVER_SLOTS handles at once)");
    else if (status == SEM_ENOTSUP)
        PyErr_SetString(PyExc_NotImplementedError,
                        "a SharedSemaphore cannot be awaited (no async acquire across processes)");
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
    RETURN_IF_ACQUIRED(status);
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
     * not a wake-up. FIFO mode goes straight to the queue. (A shared
     * semaphore's first slice below spins the same way; and one opened by
     * name may be in FIFO mode whatever this handle was asked for.) */
    if (!self->fifo && !is_shared(self)) {
        int64_t now = sem_clock_ns();
        int64_t brief = deadline - now > BRIEF_WAIT_NS ? now + BRIEF_WAIT_NS : deadline;
        self->busy++;
        Py_BEGIN_ALLOW_THREADS
        status = sem_acquire_until(self->sem, n, brief);
        Py_END_ALLOW_THREADS
        self->busy--;
        RETURN_IF_ACQUIRED(status);
        if (status != SEM_TIMEDOUT) return status_error(status);
        if (brief == deadline) Py_RETURN_FALSE;
    }
    /* A process-shared semaphore (no async acquires across processes):
     * wait in slices, checking for signals between them; the wait keeps
     * its place in `place` between slices (its turn, in FIFO mode), and
     * leaves when the deadline or an exception ends it. */
    if (is_shared(self)) {
        rsem_ticket place;
        memset(&place, 0, sizeof place);
        for (;;) {
            int64_t now = sem_clock_ns();
            int64_t slice = deadline - now > SIGNAL_CHECK_NS ? now + SIGNAL_CHECK_NS : deadline;
            self->busy++;
            Py_BEGIN_ALLOW_THREADS
            status = sem_acquire_slice(self->sem, n, slice, &place);
            Py_END_ALLOW_THREADS
            self->busy--;
            RETURN_IF_ACQUIRED(status); /* (the wait ended: nothing kept) */
            if (status != SEM_PENDING) return status_error(status);
            int stop = slice == deadline ? 0 : PyErr_CheckSignals();
            if (slice == deadline || stop < 0) {
                self->busy++;
                Py_BEGIN_ALLOW_THREADS
                sem_acquire_leave(self->sem, &place);
                Py_END_ALLOW_THREADS
                self->busy--;
                if (stop < 0) return NULL;
                Py_RETURN_FALSE;
            }
        }
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
    if (nargs == 0 && kwnames == NULL && self->sem != NULL) {
        int status = sem_try_acquire(self->sem);
        RETURN_IF_ACQUIRED(status);
    }
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
 * and the semaphore (owned references, dropped when drained). It is linked
 * into its semaphore's list of pending acquires until it is drained, so
 * that _withdraw finds it by its future: a late _withdraw (after the drain)
 * finds nothing, never an address another ticket reuses. Everything here
 * runs with the GIL held. */
typedef struct AsyncWait {
    rsem_ticket ticket;
    PyObject *future;
    SemObject *sem;
    int64_t n;
    struct AsyncWait *prev, *next; /* in sem->pending; `next` in the free list */
} AsyncWait;

/* Drained records, kept for the next acquire (no allocation per wait). */
#define FREE_WAITS_MAX 64
static AsyncWait *free_waits;
static int free_waits_len;

static AsyncWait *new_wait(void) {
    AsyncWait *w = free_waits;
    if (w != NULL) {
        free_waits = w->next;
        free_waits_len--;
        return w;
    }
    return PyMem_Malloc(sizeof *w);
}

static void drop_wait(AsyncWait *w) {
    if (free_waits_len < FREE_WAITS_MAX) {
        w->next = free_waits;
        free_waits = w;
        free_waits_len++;
    } else {
        PyMem_Free(w);
    }
}

static void link_wait(SemObject *s, AsyncWait *w) {
    w->prev = NULL;
    w->next = s->pending;
    if (s->pending != NULL) s->pending->prev = w;
    s->pending = w;
}

static void unlink_wait(SemObject *s, AsyncWait *w) {
    if (w->prev != NULL) w->prev->next = w->next;
    else s->pending = w->next;
    if (w->next != NULL) w->next->prev = w->prev;
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
    SemObject *sem = w->sem;
    PyObject *future = w->future;
    unlink_wait(sem, w);
    int64_t n = w->n;
    drop_wait(w); /* nothing below reads it */
    /* Resolve first and ask whether the future was cancelled only if that
     * fails (one call instead of two on the common path). */
    if (status == SEM_OK || status == SEM_TIMEDOUT) {
        r = PyObject_CallMethodOneArg(future, str_set_result,
                                      status == SEM_OK ? Py_True : Py_False);
    } else {
        PyObject *e = status == SEM_ECLOSED
                          ? PyObject_CallFunction(ClosedError, "s", "semaphore was shut down")
                          : PyObject_CallFunction(PyExc_RuntimeError, "s", "acquire withdrawn");
        r = e == NULL ? NULL : PyObject_CallMethodOneArg(future, str_set_exception, e);
        Py_XDECREF(e);
    }
    if (r == NULL) {
        /* A cancelled future (its task was cancelled) refuses a result:
         * nothing to resolve, and permits granted to it go back. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *c = PyObject_CallMethodNoArgs(future, str_cancelled);
        int cancelled = c != NULL && PyObject_IsTrue(c) == 1;
        Py_XDECREF(c);
        if (cancelled) {
            PyErr_Clear();
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            if (status == SEM_OK) sem_release_n(sem->sem, n);
        } else {
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
            rc = -1;
        }
    }
    Py_XDECREF(r);
    sem->busy--;
    Py_DECREF(future);
    Py_DECREF((PyObject *)sem);
    return rc;
}

/* drain(): resolves every completion waiting on the notifier; returns how
 * many. Called by the loop's reader callback, and after releases made on
 * the loop's own thread (no wait for the descriptor). */
static PyObject *Notifier_drain(NotifierObject *self, PyObject *unused) {
    (void)unused;
    rsem_completion done[64];
    long total = 0;
    /* The first failure's exception, kept aside: every completion is still
     * resolved, each with no exception set. */
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    for (;;) {
        int64_t k = sem_notifier_drain(self->nt, done, 64);
        for (int64_t i = 0; i < k; i++) {
            if (resolve((AsyncWait *)done[i].ctx, done[i].status) < 0) {
                if (type == NULL) PyErr_Fetch(&type, &value, &tb);
                else PyErr_Clear();
            }
        }
        total += (long)k;
        if (k < 64) break;
    }
    if (type != NULL) {
        PyErr_Restore(type, value, tb);
        return NULL;
    }
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

/* Set by __init__.py through _setup(): asyncio's _get_running_loop (None
 * outside a loop), and notifier_for(loop), which makes or finds the loop's
 * Notifier (and registers its descriptor with the loop). The last loop seen
 * and its notifier are kept (strong references) so that the common case is
 * one pointer comparison. */
static PyObject *get_running_loop, *notifier_for;
static PyObject *last_loop, *last_nt;
static PyObject *str_create_future;

static PyObject *module_setup(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_setup(_get_running_loop, notifier_for)");
        return NULL;
    }
    Py_XSETREF(get_running_loop, Py_NewRef(args[0]));
    Py_XSETREF(notifier_for, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* The running loop and its notifier, as new references: 0, or -1 with an
 * exception (no running loop). The cache's globals are read once and
 * replaced whole, old values dropped last: dropping a loop may run Python
 * code, and another thread may then replace the cache again. */
static int running_loop(PyObject **loop_out, NotifierObject **nt_out) {
    if (get_running_loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "rsem._rsem._setup was not called");
        return -1;
    }
    PyObject *loop = PyObject_CallNoArgs(get_running_loop);
    if (loop == NULL) return -1;
    if (loop == Py_None) {
        Py_DECREF(loop);
        PyErr_SetString(PyExc_RuntimeError, "no running event loop");
        return -1;
    }
    if (loop == last_loop && last_nt != NULL) {
        *loop_out = loop;
        *nt_out = (NotifierObject *)Py_NewRef(last_nt);
        return 0;
    }
    PyObject *nt = PyObject_CallOneArg(notifier_for, loop);
    if (nt == NULL) {
        Py_DECREF(loop);
        return -1;
    }
    if (!PyObject_TypeCheck(nt, &NotifierType)) {
        Py_DECREF(loop);
        Py_DECREF(nt);
        PyErr_SetString(PyExc_TypeError, "notifier_for must return a Notifier");
        return -1;
    }
    PyObject *old_loop = last_loop, *old_nt = last_nt;
    last_loop = Py_NewRef(loop);
    last_nt = Py_NewRef(nt);
    Py_XDECREF(old_loop);
    Py_XDECREF(old_nt);
    *loop_out = loop;
    *nt_out = (NotifierObject *)nt;
    return 0;
}

/* Queues an acquire of n permits (deadline on CLOCK_MONOTONIC ns) for the
 * running loop's task: True (acquired at once), False (the deadline already
 * passed), or the loop's new future, resolved when the acquire completes
 * (True, False, or an exception); NULL with an exception. */
static PyObject *submit(SemObject *self, long long n, long long deadline) {
    if (!ready(self)) return NULL;
    if (n < 1 || n > sem_max(self->sem)) {
        PyErr_SetString(PyExc_ValueError, "n must be between 1 and the semaphore's maximum");
        return NULL;
    }
    /* Free now: nothing to allocate (the common case of `async with`). */
    int now = n == 1 ? sem_try_acquire(self->sem) : sem_acquire_many(self->sem, n, 0.0);
    RETURN_IF_ACQUIRED(now);
    if (now == SEM_ECLOSED) return status_error(now);
    PyObject *loop;
    NotifierObject *nt;
    if (running_loop(&loop, &nt) < 0) return NULL;
    PyObject *future = PyObject_CallMethodNoArgs(loop, str_create_future);
    Py_DECREF(loop);
    if (future == NULL) {
        Py_DECREF(nt);
        return NULL;
    }
    AsyncWait *w = new_wait();
    if (w == NULL) {
        Py_DECREF(nt);
        Py_DECREF(future);
        return PyErr_NoMemory();
    }
    w->future = future; /* the reference from create_future */
    w->sem = self;
    w->n = n;
    link_wait(self, w);
    int status = sem_acquire_notify(self->sem, n, deadline, nt->nt, w, &w->ticket);
    /* The loop's notifier object lives as long as the loop (which the
     * future keeps alive), and sem_notifier_free refuses while acquires
     * are pending: the rsem_notifier outlives this acquire. */
    Py_DECREF(nt);
    if (status != SEM_PENDING) {
        unlink_wait(self, w);
        drop_wait(w);
        Py_DECREF(future);
        if (status == SEM_OK) Py_RETURN_TRUE;
        if (status == SEM_TIMEDOUT) Py_RETURN_FALSE;
        if (status == SEM_ENOMEM) return PyErr_NoMemory();
        return status_error(status);
    }
    Py_INCREF((PyObject *)self);
    self->busy++; /* __init__ must not replace the semaphore under it */
    return Py_NewRef(future);
}

/* Parses (n=1, deadline_ns=forever). */
static int parse_n_deadline(PyObject *const *args, Py_ssize_t nargs, long long *n,
                            long long *deadline) {
    *n = 1;
    *deadline = INT64_MAX;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "expected (n=1, deadline_ns=forever)");
        return -1;
    }
    if (nargs >= 1) {
        *n = PyLong_AsLongLong(args[0]);
        if (*n == -1 && PyErr_Occurred()) return -1;
    }
    if (nargs == 2) {
        *deadline = PyLong_AsLongLong(args[1]);
        if (*deadline == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* _submit(n=1, deadline_ns=forever) -> submit()'s result (for tests). */
static PyObject *Sem_submit(SemObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long n, deadline;
    if (parse_n_deadline(args, nargs, &n, &deadline) < 0) return NULL;
    return submit(self, n, deadline);
}

/* Withdraws the pending acquire `future` belongs to: the status of
 * sem_cancel, or SEM_ENOTPENDING if it has none (drained already). */
static int withdraw(SemObject *self, PyObject *future) {
    for (AsyncWait *w = self->pending; w != NULL; w = w->next)
        if (w->future == future) return sem_cancel(self->sem, &w->ticket);
    return SEM_ENOTPENDING;
}

/* The awaiter of `future` (an acquire of n) stops waiting without taking
 * its result (its task was cancelled, or closed, or the awaitable dropped):
 * a pending acquire is withdrawn, and permits already granted go back.
 * Keeps the exception being raised, if any. */
static PyObject *str_done, *str_cancel, *str_result;

static void give_up(SemObject *self, PyObject *future, int64_t n) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *done = PyObject_CallMethodNoArgs(future, str_done);
    if (done == Py_False) {
        /* Cancelled, a later grant is given back by the drain. */
        Py_XDECREF(PyObject_CallMethodNoArgs(future, str_cancel));
    }
    Py_XDECREF(done);
    PyErr_Clear();
    PyObject *c = PyObject_CallMethodNoArgs(future, str_cancelled);
    if (c == Py_True) {
        /* Not resolved, so the acquire is still ours to withdraw; if a grant
         * won the race, the drain gives the permits back. */
        (void)withdraw(self, future);
    } else if (c == Py_False) {
        PyObject *r = PyObject_CallMethodNoArgs(future, str_result);
        if (r == Py_True) sem_release_n(self->sem, n);
        Py_XDECREF(r);
    }
    Py_XDECREF(c);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

/* The awaitable of `async with` and acquire_async. Like a coroutine, it
 * does nothing until awaited: its first step takes the permits if they are
 * free (the await returns at once) or queues the acquire and waits for the
 * loop's future (through the future's own iterator, so the task sees a
 * plain asyncio future). If the await ends any other way than by taking the
 * result (cancelled, something thrown in, closed, or dropped while
 * waiting), the acquire is given up: withdrawn, or its grant given back. */
enum { ACQ_NEW, ACQ_WAITING, ACQ_DONE };

typedef struct {
    PyObject_HEAD
    SemObject *sem;
    PyObject *future;  /* while waiting */
    PyObject *it;      /* the future's iterator, while waiting */
    int64_t n, deadline;
    int want_result;   /* 1: the await returns True/False; 0: None */
    int state;
} AcquiringObject;

static PyTypeObject AcquiringType;

static PyObject *acquiring_new(SemObject *sem, int64_t n, int64_t deadline, int want_result) {
    AcquiringObject *a = PyObject_GC_New(AcquiringObject, &AcquiringType);
    if (a == NULL) return NULL;
    a->sem = (SemObject *)Py_NewRef((PyObject *)sem);
    a->future = NULL;
    a->it = NULL;
    a->n = n;
    a->deadline = deadline;
    a->want_result = want_result;
    a->state = ACQ_NEW;
    PyObject_GC_Track(a);
    return (PyObject *)a;
}

/* Ends the wait: gives the acquire up if it was still waiting. */
static void acquiring_finish(AcquiringObject *a) {
    if (a->state == ACQ_WAITING) give_up(a->sem, a->future, a->n);
    a->state = ACQ_DONE;
    Py_CLEAR(a->it);
    Py_CLEAR(a->future);
}

static PySendResult Acquiring_send(AcquiringObject *a, PyObject *arg, PyObject **result) {
    *result = NULL;
    if (a->state == ACQ_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an awaited rsem acquire");
        return PYGEN_ERROR;
    }
    if (a->state == ACQ_NEW) {
        PyObject *s = submit(a->sem, a->n, a->deadline);
        if (s == NULL) {
            a->state = ACQ_DONE;
            return PYGEN_ERROR;
        }
        if (PyBool_Check(s)) {
            a->state = ACQ_DONE;
            if (!a->want_result) Py_SETREF(s, Py_NewRef(Py_None));
            *result = s;
            return PYGEN_RETURN;
        }
        a->future = s;
        a->state = ACQ_WAITING;
        PyAsyncMethods *am = Py_TYPE(s)->tp_as_async;
        a->it = am != NULL && am->am_await != NULL ? am->am_await(s)
                                                   : PyObject_CallMethod(s, "__await__", NULL);
        if (a->it == NULL) {
            acquiring_finish(a);
            return PYGEN_ERROR;
        }
        arg = Py_None; /* the first send into the future's iterator */
    }
    PySendResult r = PyIter_Send(a->it, arg, result);
    if (r == PYGEN_RETURN) {
        a->state = ACQ_DONE; /* the awaiter has the outcome */
        Py_CLEAR(a->it);
        Py_CLEAR(a->future);
        if (!a->want_result) Py_SETREF(*result, Py_NewRef(Py_None));
    } else if (r == PYGEN_ERROR) {
        acquiring_finish(a); /* e.g. the future was cancelled */
    }
    return r;
}

/* Raises StopIteration(value), as a generator's return does. */
static void set_stop_iteration(PyObject *value) {
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
}

/* For callers that do not use am_send (a tracer is set, or `yield from`). */
static PyObject *Acquiring_next(AcquiringObject *a) {
    PyObject *result;
    PySendResult r = Acquiring_send(a, Py_None, &result);
    if (r == PYGEN_NEXT) return result;
    if (r == PYGEN_RETURN) {
        if (result != Py_None) set_stop_iteration(result);
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *Acquiring_send_method(AcquiringObject *a, PyObject *arg) {
    PyObject *result;
    PySendResult r = Acquiring_send(a, arg, &result);
    if (r == PYGEN_NEXT) return result;
    if (r == PYGEN_RETURN) {
        set_stop_iteration(result);
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *str_throw;

/* Raises what throw(typ[, val[, tb]]) was given, as a generator that is not
 * running would; a TypeError for something that is not an exception. */
static void raise_thrown(PyObject *const *args, Py_ssize_t nargs) {
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : Py_None;
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val == Py_None ? NULL : val);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
    }
}

/* throw(...): while waiting, passed to the future's iterator, which raises
 * it; the acquire is then given up. */
static PyObject *Acquiring_throw(AcquiringObject *a, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    if (a->state != ACQ_WAITING) {
        a->state = ACQ_DONE; /* as a coroutine that never ran: nothing taken */
        raise_thrown(args, nargs);
        return NULL;
    }
    PyObject *call[4] = {a->it, args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL};
    PyObject *r = PyObject_VectorcallMethod(str_throw, call, 1 + (size_t)nargs, NULL);
    if (r == NULL) acquiring_finish(a);
    return r;
}

static PyObject *Acquiring_close(AcquiringObject *a, PyObject *unused) {
    (void)unused;
    acquiring_finish(a);
    Py_RETURN_NONE;
}

/* Dropped while waiting (its task was destroyed): the acquire is given up.
 * A finalizer rather than tp_clear, so that it runs before any reference
 * is cleared, and may call the future's methods. */
static void Acquiring_finalize(AcquiringObject *a) {
    if (a->state == ACQ_WAITING) acquiring_finish(a); /* keeps the exception state */
}

static int Acquiring_traverse(AcquiringObject *a, visitproc visit, void *arg) {
    Py_VISIT(a->sem);
    Py_VISIT(a->future);
    Py_VISIT(a->it);
    return 0;
}

static int Acquiring_clear(AcquiringObject *a) {
    Py_CLEAR(a->it);
    Py_CLEAR(a->future);
    Py_CLEAR(a->sem);
    return 0;
}

static void Acquiring_dealloc(AcquiringObject *a) {
    if (PyObject_CallFinalizerFromDealloc((PyObject *)a) < 0) return; /* resurrected */
    PyObject_GC_UnTrack(a);
    (void)Acquiring_clear(a);
    PyObject_GC_Del(a);
}

static PyObject *Acquiring_await(PyObject *self) { return Py_NewRef(self); }

static PyAsyncMethods Acquiring_async = {
    .am_await = Acquiring_await,
    .am_send = (sendfunc)Acquiring_send,
};

static PyMethodDef Acquiring_methods[] = {
    {"send", (PyCFunction)Acquiring_send_method, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))Acquiring_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)Acquiring_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AcquiringType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem._rsem._Acquiring",
    .tp_basicsize = sizeof(AcquiringObject),
    .tp_dealloc = (destructor)Acquiring_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The awaitable of an asyncio acquire.",
    .tp_traverse = (traverseproc)Acquiring_traverse,
    .tp_clear = (inquiry)Acquiring_clear,
    .tp_as_async = &Acquiring_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Acquiring_next,
    .tp_methods = Acquiring_methods,
    .tp_finalize = (destructor)Acquiring_finalize,
};

/* _acquiring(n=1, deadline_ns=forever): the awaitable of acquire_async,
 * whose await returns True or False. */
static PyObject *Sem_acquiring(SemObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long n, deadline;
    if (parse_n_deadline(args, nargs, &n, &deadline) < 0) return NULL;
    return acquiring_new(self, n, deadline, 1);
}

/* __aenter__(): as acquire_async(), its await returning None. */
static PyObject *Sem_aenter(SemObject *self, PyObject *unused) {
    (void)unused;
    return acquiring_new(self, 1, INT64_MAX, 0);
}

/* An awaitable whose await returns None at once (what __aexit__ gives). */
static PyObject *Done_await(PyObject *self) { return Py_NewRef(self); }
static PyObject *Done_next(PyObject *self) {
    (void)self;
    return NULL; /* StopIteration(None) */
}
static PySendResult Done_send(PyObject *self, PyObject *arg, PyObject **result) {
    (void)self;
    (void)arg;
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}
static PyAsyncMethods Done_async = {.am_await = Done_await, .am_send = Done_send};
static PyTypeObject DoneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem._rsem._Done",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_as_async = &Done_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = Done_next,
};
static PyObject *done_none;

/* __aexit__(*exc): a release that, inside the loop whose notifier was used
 * last, resolves what it completes now (no system call, no extra turn of
 * the loop); elsewhere (another loop, or none running) a plain release. */
static PyObject *Sem_aexit(SemObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (!ready(self)) return NULL;
    PyObject *notifier = NULL;
    if (sem_waiters(self->sem) != 0 && last_nt != NULL && get_running_loop != NULL) {
        PyObject *loop = PyObject_CallNoArgs(get_running_loop);
        if (loop == NULL) {
            PyErr_Clear(); /* the release comes first */
        } else {
            /* A running loop is alive: dropping it runs no code, and the
             * globals cannot change between the comparison and the read. */
            if (loop == last_loop) notifier = Py_NewRef(last_nt);
            Py_DECREF(loop);
        }
    }
    PyObject *r;
    if (notifier == NULL) {
        r = release_n(self, 1);
    } else {
        rsem_notifier *nt = ((NotifierObject *)notifier)->nt;
        sem_notifier_quiet(nt, 1);
        r = release_n(self, 1);
        sem_notifier_quiet(nt, 0);
        if (r != NULL) {
            PyObject *d = Notifier_drain((NotifierObject *)notifier, NULL);
            if (d == NULL) Py_CLEAR(r);
            Py_XDECREF(d);
        } else {
            /* Keep the release's error; what it completed (nothing, as it
             * failed) is drained with a clean error state. */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            Py_XDECREF(Notifier_drain((NotifierObject *)notifier, NULL));
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
        }
        Py_DECREF(notifier);
    }
    if (r == NULL) return NULL;
    Py_DECREF(r);
    return Py_NewRef(done_none);
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
    {"__aenter__", (PyCFunction)Sem_aenter, METH_NOARGS, NULL},
    {"__aexit__", (PyCFunction)(void (*)(void))Sem_aexit, METH_FASTCALL, NULL},
    {"_acquiring", (PyCFunction)(void (*)(void))Sem_acquiring, METH_FASTCALL, NULL},
    {"_submit", (PyCFunction)(void (*)(void))Sem_submit, METH_FASTCALL, NULL},
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

static PyMethodDef Shared_methods[] = {
    {"unlink", (PyCFunction)Shared_unlink, METH_NOARGS,
     "Removes the semaphore's name (as sem_unlink): handles keep working; a later\n"
     "SharedSemaphore(name) makes a new one."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Shared_getset[] = {
    {"name", (getter)Shared_get_name, NULL, "the name, or None for an anonymous one", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SharedSemaphoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem.SharedSemaphore",
    .tp_basicsize = sizeof(SemObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "SharedSemaphore(name=None, value=1, *, bounded=False, create=True, "
              "exclusive=False, mode=0o600): a semaphore shared between processes.",
    .tp_methods = Shared_methods,
    .tp_getset = Shared_getset,
    .tp_init = (initproc)SharedSemaphore_init,
};

static PyTypeObject BoundedSemaphoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rsem.BoundedSemaphore",
    .tp_basicsize = sizeof(SemObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "BoundedSemaphore(value=1, *, fifo=False): a drop-in threading.BoundedSemaphore.",
    .tp_init = (initproc)BoundedSemaphore_init,
};

static PyMethodDef module_methods[] = {
    {"_setup", (PyCFunction)(void (*)(void))module_setup, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rsem._rsem", "The rsem C extension.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rsem(void) {
    BoundedSemaphoreType.tp_base = &SemaphoreType;
    SharedSemaphoreType.tp_base = &SemaphoreType;
    if (PyType_Ready(&SemaphoreType) < 0 || PyType_Ready(&BoundedSemaphoreType) < 0 ||
        PyType_Ready(&SharedSemaphoreType) < 0 || PyType_Ready(&RecoveredType) < 0 ||
        PyType_Ready(&NotifierType) < 0 || PyType_Ready(&AcquiringType) < 0)
        return NULL;
    str_cancelled = PyUnicode_InternFromString("cancelled");
    str_set_result = PyUnicode_InternFromString("set_result");
    str_set_exception = PyUnicode_InternFromString("set_exception");
    str_create_future = PyUnicode_InternFromString("create_future");
    str_done = PyUnicode_InternFromString("done");
    str_cancel = PyUnicode_InternFromString("cancel");
    str_result = PyUnicode_InternFromString("result");
    str_throw = PyUnicode_InternFromString("throw");
    if (str_done == NULL || str_cancel == NULL || str_result == NULL || str_throw == NULL)
        return NULL;
    if (PyType_Ready(&DoneType) < 0) return NULL;
    done_none = PyType_GenericAlloc(&DoneType, 0);
    if (done_none == NULL) return NULL;
    if (str_cancelled == NULL || str_set_result == NULL || str_set_exception == NULL ||
        str_create_future == NULL)
        return NULL;
    Recovered = PyObject_New(PyObject, &RecoveredType);
    if (Recovered == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    ClosedError = PyErr_NewExceptionWithDoc("rsem.ClosedError",
                                            "The semaphore was shut down.", PyExc_RuntimeError, NULL);
    if (ClosedError == NULL || PyModule_AddObjectRef(m, "ClosedError", ClosedError) < 0 ||
        PyModule_AddObjectRef(m, "Semaphore", (PyObject *)&SemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "BoundedSemaphore", (PyObject *)&BoundedSemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "SharedSemaphore", (PyObject *)&SharedSemaphoreType) < 0 ||
        PyModule_AddObjectRef(m, "Notifier", (PyObject *)&NotifierType) < 0 ||
        PyModule_AddObjectRef(m, "RECOVERED", Recovered) < 0 ||
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
