/* glibc bug 12674: a thread whose acquire returned may free the semaphore at
 * once, even while the release that woke it is still returning. Run under
 * valgrind (scripts/test) so that any touch of freed memory is reported. */
#include "test_util.h"

#include <stdatomic.h>

struct pair {
    rsem_semaphore *sem;
    int64_t n;
};

static void *release_it(void *arg) {
    struct pair *p = arg;
    CHECK_EQ(sem_release_n(p->sem, p->n), SEM_OK);
    return NULL;
}

/* Two acquirers; whichever returns second frees the semaphore. */
struct shared {
    rsem_semaphore *sem;
    atomic_int returned;
};

static void *acquire_then_maybe_free(void *arg) {
    struct shared *sh = arg;
    CHECK_EQ(sem_acquire_timed(sh->sem, 30.0), SEM_OK);
    if (atomic_fetch_add(&sh->returned, 1) == 1) sem_free(sh->sem);
    return NULL;
}

int main(void) {
    long rounds = scaled(3000);
    for (long i = 0; i < rounds; i++) {
        /* One waiter, one releaser. */
        struct pair p = {sem_new(0), 1};
        CHECK(p.sem != NULL);
        pthread_t t = spawn(release_it, &p);
        CHECK_EQ(sem_acquire(p.sem), SEM_OK);
        sem_free(p.sem);
        join(t);

        /* Two waiters woken by one release_n(2); the last one frees. */
        struct shared sh = {sem_new(0), 0};
        CHECK(sh.sem != NULL);
        struct pair q = {sh.sem, 2};
        pthread_t w = spawn(acquire_then_maybe_free, &sh);
        pthread_t r = spawn(release_it, &q);
        acquire_then_maybe_free(&sh);
        join(w);
        join(r);
        CHECK_EQ(atomic_load(&sh.returned), 2);
    }
    printf("free_after_acquire: %ld rounds\n", rounds);
    puts("free_after_acquire: ok");
    return 0;
}
