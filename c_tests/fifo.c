/* SEM_FIFO: strict arrival order (multi-permit waiters included), no
 * barging, head-of-line blocking, and its release when the head leaves
 * (golang/go#37852). */
#include "test_util.h"

#include <stdatomic.h>

#define N 6

static atomic_int next_slot;
static int order[N];

struct waiter {
    rsem_semaphore *sem;
    int id;
    int64_t n;
    double timeout;
    int result;
};

static void *wait_and_record(void *arg) {
    struct waiter *w = arg;
    w->result = sem_acquire_many(w->sem, w->n, w->timeout);
    if (w->result == SEM_OK) order[atomic_fetch_add(&next_slot, 1)] = w->id;
    return NULL;
}

static void arrival_order(void) {
    rsem_semaphore *s = sem_new_ex(0, 100, SEM_FIFO);
    CHECK(s != NULL);
    struct waiter w[N];
    pthread_t t[N];
    atomic_store(&next_slot, 0);
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){s, i, 1 + (i % 3 == 1), INFINITY, -100};
        t[i] = spawn(wait_and_record, &w[i]);
        EVENTUALLY(sem_waiters(s) == i + 1); /* queued one by one */
    }
    /* Release one permit at a time, exactly what the waiters need in
     * arrival order: each is served in turn, a 2-permit waiter after its
     * second permit. (A release may find the queue lock held and leave its
     * permit to the holder, who hands it on before unlocking: the count is
     * not 0 at once then, so the test counts permits, not sem_value.) */
    for (int i = 0; i < N; i++) {
        for (int64_t k = 0; k < w[i].n; k++) {
            CHECK_EQ(sem_release(s), SEM_OK);
            /* No barging: every permit released so far is owed to a waiter
             * that came first. */
            CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
        }
        EVENTUALLY(atomic_load(&next_slot) == i + 1);
        CHECK_EQ(sem_value(s), 0);
    }
    for (int i = 0; i < N; i++) join(t[i]);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(w[i].result, SEM_OK);
        CHECK_EQ(order[i], i);
    }
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

static void head_of_line_blocking_and_timeout(void) {
    rsem_semaphore *s = sem_new_ex(0, 10, SEM_FIFO);
    CHECK(s != NULL);
    atomic_store(&next_slot, 0);
    struct waiter head = {s, 0, 3, 0.2, -100}, behind = {s, 1, 1, INFINITY, -100};
    pthread_t th = spawn(wait_and_record, &head);
    EVENTUALLY(sem_waiters(s) == 1);
    pthread_t tb = spawn(wait_and_record, &behind);
    EVENTUALLY(sem_waiters(s) == 2);

    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    /* The head needs 3: the permits wait for it, nobody may take them. */
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_timed(s, 0.0), SEM_TIMEDOUT);
    CHECK_EQ(sem_drain(s), 0);
    CHECK_EQ(atomic_load(&next_slot), 0);

    /* The head times out; the waiter behind it now fits and is served. */
    join(th);
    CHECK_EQ(head.result, SEM_TIMEDOUT);
    join(tb);
    CHECK_EQ(behind.result, SEM_OK);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    sem_free(s);
}

static void head_served_when_it_fits(void) {
    rsem_semaphore *s = sem_new_ex(0, 10, SEM_FIFO);
    CHECK(s != NULL);
    atomic_store(&next_slot, 0);
    struct waiter head = {s, 0, 3, INFINITY, -100}, behind = {s, 1, 1, INFINITY, -100};
    pthread_t th = spawn(wait_and_record, &head);
    EVENTUALLY(sem_waiters(s) == 1);
    pthread_t tb = spawn(wait_and_record, &behind);
    EVENTUALLY(sem_waiters(s) == 2);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_waiters(s), 2);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_release(s), SEM_OK); /* 3 free: exactly the head's need */
    join(th);
    CHECK_EQ(head.result, SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(atomic_load(&next_slot), 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    join(tb);
    CHECK_EQ(behind.result, SEM_OK);
    CHECK_EQ(order[0], 0);
    CHECK_EQ(order[1], 1);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

int main(void) {
    arrival_order();
    head_of_line_blocking_and_timeout();
    head_served_when_it_fits();
    puts("fifo: ok");
    return 0;
}
