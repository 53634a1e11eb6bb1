/* Each release wakes exactly one blocked thread; release_n(k) wakes exactly k;
 * a release wakes only the waiters its permits satisfy; back-to-back releases
 * wake every waiter they can (the libc++ / GCC PR 104928 lost wake-ups). */
#include "test_util.h"

#include <stdatomic.h>

#define WAITERS 6

struct waiter {
    rsem_semaphore *sem;
    int64_t n;
    atomic_int *done;
};

static void *wait_for(void *arg) {
    struct waiter *w = arg;
    int r = w->n == 1 ? sem_acquire(w->sem) : sem_acquire_many(w->sem, w->n, INFINITY);
    CHECK_EQ(r, SEM_OK);
    atomic_fetch_add(w->done, 1);
    return NULL;
}

static void one_release_wakes_one(void) {
    atomic_int done = 0;
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    struct waiter w = {s, 1, &done};
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) t[i] = spawn(wait_for, &w);
    EVENTUALLY(sem_waiters(s) == WAITERS);

    CHECK_EQ(sem_release(s), SEM_OK);
    EVENTUALLY(atomic_load(&done) == 1);
    /* The permit went to that one thread; the others still wait. */
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), WAITERS - 1);
    CHECK_EQ(atomic_load(&done), 1);

    CHECK_EQ(sem_release_n(s, 3), SEM_OK);
    EVENTUALLY(atomic_load(&done) == 4);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), WAITERS - 4);
    CHECK_EQ(atomic_load(&done), 4);

    /* More permits than waiters: the rest stays in the count. */
    CHECK_EQ(sem_release_n(s, 5), SEM_OK);
    for (int i = 0; i < WAITERS; i++) join(t[i]);
    CHECK_EQ(atomic_load(&done), WAITERS);
    CHECK_EQ(sem_value(s), 3);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

static void only_waiters_that_fit_are_woken(void) {
    /* Waiters for 3, 1, 1, queued in that order; releasing 2 serves the two
     * single-permit waiters, and the 3-permit waiter keeps waiting. */
    atomic_int done_big = 0, done_small = 0;
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    struct waiter big = {s, 3, &done_big}, small = {s, 1, &done_small};
    pthread_t t[3];
    t[0] = spawn(wait_for, &big);
    EVENTUALLY(sem_waiters(s) == 1);
    t[1] = spawn(wait_for, &small);
    EVENTUALLY(sem_waiters(s) == 2);
    t[2] = spawn(wait_for, &small);
    EVENTUALLY(sem_waiters(s) == 3);

    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    EVENTUALLY(atomic_load(&done_small) == 2);
    join(t[1]);
    join(t[2]);
    CHECK_EQ(atomic_load(&done_big), 0);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(sem_value(s), 0);

    CHECK_EQ(sem_release(s), SEM_OK); /* 1 free: the big waiter still needs 3 */
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    join(t[0]);
    CHECK_EQ(atomic_load(&done_big), 1);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

static void back_to_back_releases_wake_everyone(void) {
    /* Two waiters and two release(1) in a row, many times: both must wake. */
    long rounds = scaled(300);
    for (long r = 0; r < rounds; r++) {
        atomic_int done = 0;
        rsem_semaphore *s = sem_new(0);
        CHECK(s != NULL);
        struct waiter w = {s, 1, &done};
        pthread_t a = spawn(wait_for, &w), b = spawn(wait_for, &w);
        if (r % 2 == 0) EVENTUALLY(sem_waiters(s) == 2); /* odd rounds race the waits */
        CHECK_EQ(sem_release(s), SEM_OK);
        CHECK_EQ(sem_release(s), SEM_OK);
        join(a);
        join(b);
        CHECK_EQ(atomic_load(&done), 2);
        CHECK_EQ(sem_value(s), 0);
        sem_free(s);
    }
}

int main(void) {
    one_release_wakes_one();
    only_waiters_that_fit_are_woken();
    back_to_back_releases_wake_everyone();
    puts("wakeups: ok");
    return 0;
}
