/* Thread cancellation: rsem's blocking acquires are not cancellation points
 * (unwinding through the library's frames is not allowed), so a thread
 * cancelled (deferred, the default) while blocked stays blocked until its
 * acquire returns, and is cancelled at its next cancellation point. The
 * documented pattern, as for a mutex: a cleanup handler that gives back what
 * the thread holds. Checked: the cancelled thread keeps waiting; once a
 * permit comes it takes it, is cancelled at pthread_testcancel, and its
 * cleanup handler returns the permit (none lost); and a timed acquire ended
 * by sem_shutdown leaves the thread holding nothing to give back.
 * POSIX only: Windows threads have no cancellation here. */
#ifndef _WIN32
#define _GNU_SOURCE /* pthread_tryjoin_np */
#endif
#include "test_util.h"

#ifndef _WIN32
#include <stdatomic.h>
#include <string.h>

struct holder {
    rsem_semaphore *sem;
    int timed;             /* sem_acquire_timed(30 s) rather than sem_acquire */
    atomic_int result;     /* the acquire's status, -100 until it returns */
    atomic_int held;       /* permits held, for the cleanup handler */
    atomic_int cleaned_up; /* the cleanup handler ran */
    atomic_int returned;   /* the thread function returned normally */
};

/* The cleanup handler: gives back the permit the thread holds, if any. */
static void release_held(void *arg) {
    struct holder *h = arg;
    if (atomic_load(&h->held)) {
        CHECK_EQ(sem_release(h->sem), SEM_OK);
        atomic_store(&h->held, 0);
    }
    atomic_store(&h->cleaned_up, 1);
}

static void *cancellable(void *arg) {
    struct holder *h = arg;
    pthread_cleanup_push(release_held, h);
    int r = h->timed ? sem_acquire_timed(h->sem, 30.0) : sem_acquire(h->sem);
    if (r == SEM_OK) atomic_store(&h->held, 1);
    atomic_store(&h->result, r);
    pthread_testcancel(); /* a cancellation request ends the thread here */
    pthread_cleanup_pop(0);
    atomic_store(&h->returned, 1);
    return NULL;
}

/* Cancels `t`, blocked in an acquire on `h->sem`, and checks that it stays
 * blocked: the acquire is not a cancellation point. (Watching for 50 ms is a
 * set-up check, not the proof: the proof is the result after the thread is
 * let go, which must be the acquire's own, not a cancellation inside it.) */
static void cancel_blocked(pthread_t t, struct holder *h) {
    EVENTUALLY(sem_waiters(h->sem) == 1);
    CHECK_EQ(pthread_cancel(t), 0);
    double t0 = now_s();
    while (now_s() - t0 < 0.05) {
        CHECK_EQ(sem_waiters(h->sem), 1);
        CHECK_EQ(atomic_load(&h->result), -100);
        CHECK(!atomic_load(&h->cleaned_up));
        sched_yield();
    }
    CHECK_EQ(pthread_tryjoin_np(t, NULL), EBUSY);
}

/* Blocked in sem_acquire, cancelled, then given a permit: takes it, is
 * cancelled at pthread_testcancel, and its cleanup handler gives it back. */
static void cancelled_then_released(uint32_t flags) {
    rsem_semaphore *s = sem_new_ex(0, SEM_COUNT_MAX, flags);
    CHECK(s != NULL);
    struct holder h;
    memset(&h, 0, sizeof h);
    h.sem = s;
    h.timed = 0;
    atomic_store(&h.result, -100);
    pthread_t t = spawn(cancellable, &h);
    cancel_blocked(t, &h);

    CHECK_EQ(sem_release(s), SEM_OK);
    void *ret = join(t);
    CHECK(ret == PTHREAD_CANCELED);
    CHECK_EQ(atomic_load(&h.result), SEM_OK); /* the acquire completed */
    CHECK(atomic_load(&h.cleaned_up));
    CHECK(!atomic_load(&h.returned));
    CHECK_EQ(atomic_load(&h.held), 0);
    CHECK_EQ(sem_value(s), 1); /* 0 + 2 released - 1 acquired: none lost */
    CHECK_EQ(sem_waiters(s), 0);
    /* The permit the handler gave back is a permit like any other. */
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

/* Blocked in a 30 s timed acquire, cancelled, then the semaphore shut down:
 * the acquire ends with SEM_ECLOSED, the thread is cancelled at
 * pthread_testcancel holding nothing, and the count is unchanged. */
static void cancelled_then_shut_down(uint32_t flags) {
    rsem_semaphore *s = sem_new_ex(0, SEM_COUNT_MAX, flags);
    CHECK(s != NULL);
    struct holder h;
    memset(&h, 0, sizeof h);
    h.sem = s;
    h.timed = 1;
    atomic_store(&h.result, -100);
    double t0 = now_s();
    pthread_t t = spawn(cancellable, &h);
    cancel_blocked(t, &h);

    CHECK_EQ(sem_shutdown(s), SEM_OK);
    void *ret = join(t);
    CHECK(ret == PTHREAD_CANCELED);
    CHECK_EQ(atomic_load(&h.result), SEM_ECLOSED);
    CHECK(now_s() - t0 < 25.0); /* ended by the shutdown, not the timeout */
    CHECK(atomic_load(&h.cleaned_up));
    CHECK(!atomic_load(&h.returned));
    CHECK_EQ(atomic_load(&h.held), 0);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_release(s), SEM_OK); /* releases still work after shutdown */
    CHECK_EQ(sem_value(s), 1);
    sem_free(s);
}

int main(void) {
    start_watchdog(60);
    cancelled_then_released(0);
    cancelled_then_released(SEM_FIFO);
    cancelled_then_shut_down(0);
    cancelled_then_shut_down(SEM_FIFO);
    puts("cancel: ok");
    return 0;
}
#else
int main(void) {
    puts("cancel: skipped on Windows: no thread cancellation");
    puts("cancel: ok");
    return 0;
}
#endif
