/* An event loop that waits for semaphore permits without a thread per wait:
 * a single-threaded epoll loop runs jobs that each need a permit, while
 * worker threads elsewhere in the program take and return permits of the
 * same semaphore. The loop never blocks in rsem: it queues async acquires
 * on a notifier, polls the notifier's descriptor beside its other
 * descriptors, and drains completions in batches.
 *
 *   cc -std=c11 examples/epoll_loop.c -Iinclude -Ltarget/release -lrsem \
 *      -Wl,-rpath,$PWD/target/release -pthread -o epoll_loop && ./epoll_loop
 *
 * Linux only (epoll, eventfd). Exits 0 when every job ran with a permit. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rsem.h"

enum { JOBS = 200, WORKERS = 2, PERMITS = 3 };

typedef struct {
    rsem_ticket ticket; /* rsem's, from submit until the drain returns it */
    int id;
    int ran;
} job;

static rsem_semaphore *sem;

/* A thread of "the rest of the program": takes and returns permits. */
static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        if (sem_acquire(sem) != SEM_OK) return NULL;
        for (volatile int k = 0; k < 1000; k++) {
        }
        sem_release(sem);
    }
    return NULL;
}

int main(void) {
    sem = sem_new_ex(PERMITS, PERMITS, SEM_FIFO);
    rsem_notifier *nt = sem_notifier_new();
    if (sem == NULL || nt == NULL) return 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, sem_notifier_fd(nt), &ev);

    pthread_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&workers[i], NULL, worker, NULL);

    /* Queue every job; those that get a permit at once run first (they
     * hold it until all are queued), the others wait in the queue. */
    static job jobs[JOBS];
    int ran = 0, waited = 0, holding = 0;
    for (int i = 0; i < JOBS; i++) {
        jobs[i].id = i;
        /* Each job waits at most 5 s for its permit. */
        int64_t deadline = sem_clock_ns() + 5000000000LL;
        int r = sem_acquire_notify(sem, 1, deadline, nt, &jobs[i], &jobs[i].ticket);
        if (r == SEM_OK) {
            jobs[i].ran = 1;
            ran++;
            holding++;
        } else if (r == SEM_PENDING) {
            waited++;
        } else {
            fprintf(stderr, "job %d: status %d\n", i, r);
            return 1;
        }
    }
    if (holding > 0) sem_release_n(sem, holding);
    while (ran < JOBS) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 10000) != 1) {
            fprintf(stderr, "no completion in 10 s\n");
            return 1;
        }
        rsem_completion done[16];
        int64_t k;
        while ((k = sem_notifier_drain(nt, done, 16)) > 0) {
            for (int64_t i = 0; i < k; i++) {
                job *j = (job *)done[i].ctx;
                if (done[i].status != SEM_OK) {
                    fprintf(stderr, "job %d: status %d\n", j->id, done[i].status);
                    return 1;
                }
                j->ran = 1; /* the permit is ours: do the work, give it back */
                ran++;
                /* Quiet: a waiter of this loop that the release serves is
                 * queued without a system call; the next drain takes it. */
                sem_notifier_quiet(nt, 1);
                sem_release(sem);
                sem_notifier_quiet(nt, 0);
            }
        }
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
    for (int i = 0; i < JOBS; i++)
        if (!jobs[i].ran) return 1;
    int ok = sem_value(sem) == PERMITS && sem_waiters(sem) == 0 && sem_notifier_free(nt) == SEM_OK;
    close(ep);
    sem_free(sem);
    printf("epoll_loop: %d jobs ran (%d waited for a permit)%s\n", ran, waited, ok ? "" : " BAD STATE");
    return ok && waited > 0 ? 0 : 1;
}
