/* sem_shutdown wakes blocked single- and multi-permit waiters (timed and
 * unlimited, default and FIFO mode) with SEM_ECLOSED, refuses later acquires,
 * and keeps releases counting. */
#include "test_util.h"

struct waiter {
    rsem_semaphore *sem;
    int64_t n;
    double timeout;
    int result;
};

static void *wait_for(void *arg) {
    struct waiter *w = arg;
    w->result = sem_acquire_many(w->sem, w->n, w->timeout);
    return NULL;
}

static void run(uint32_t flags) {
    rsem_semaphore *s = sem_new_ex(1, 10, flags);
    CHECK(s != NULL);
    struct waiter w[4] = {{s, 2, INFINITY, -100}, {s, 5, 60.0, -100},
                          {s, 3, INFINITY, -100}, {s, 2, 30.0, -100}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(wait_for, &w[i]);
    EVENTUALLY(sem_waiters(s) == 4);
    double t0 = now_s();
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    for (int i = 0; i < 4; i++) join(t[i]);
    double took = now_s() - t0;
    for (int i = 0; i < 4; i++) CHECK_EQ(w[i].result, SEM_ECLOSED);
    printf("shutdown (%s): 4 waiters out in %.0f us\n", flags ? "fifo" : "default", took * 1e6);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_value(s), 1); /* nothing taken */
    CHECK_EQ(sem_try_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_release_n(s, 4), SEM_OK);
    CHECK_EQ(sem_value(s), 5);
    CHECK_EQ(sem_release_n(s, 6), SEM_EOVERFLOW); /* the maximum still holds */
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    CHECK_EQ(sem_drain(s), 5);
    sem_free(s);
}

int main(void) {
    run(0);
    run(SEM_FIFO);
    puts("shutdown: ok");
    return 0;
}
