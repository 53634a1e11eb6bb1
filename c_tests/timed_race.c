/* Timed waiters racing releases: a waiter that times out just as a release
 * arrives either takes the permit or leaves it for someone else, never
 * swallows it (TizenRT 7487, boost.sync 11). Checked by conservation: the
 * final count is the initial value plus releases minus successful acquires. */
#include "test_util.h"

#include <stdatomic.h>

#define ACQUIRERS 4
#define RELEASERS 2
#define INITIAL 2

static rsem_semaphore *sem;
static atomic_long acquired, released;
static atomic_int releasers_done;
static long rounds;

static void *acquirer(void *arg) {
    uint32_t rng = 0x2545F491u * (uint32_t)(uintptr_t)arg + 7;
    while (atomic_load(&releasers_done) < RELEASERS) {
        int64_t n = 1 + next_rand(&rng) % 2;
        int r;
        if (next_rand(&rng) % 2) {
            r = sem_acquire_many(sem, n, (next_rand(&rng) % 300) / 1e6);
        } else {
            r = sem_acquire_until(sem, n, sem_clock_ns() + (int64_t)(next_rand(&rng) % 300000));
        }
        CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
        if (r == SEM_OK) atomic_fetch_add(&acquired, n);
    }
    return NULL;
}

static void *releaser(void *arg) {
    uint32_t rng = 0x68E31DA4u * (uint32_t)(uintptr_t)arg + 3;
    for (long i = 0; i < rounds; i++) {
        int64_t n = 1 + next_rand(&rng) % 3;
        CHECK_EQ(sem_release_n(sem, n), SEM_OK);
        atomic_fetch_add(&released, n);
        if (next_rand(&rng) % 4 == 0) sched_yield();
    }
    atomic_fetch_add(&releasers_done, 1);
    return NULL;
}

static void run(uint32_t flags) {
    pthread_t a[ACQUIRERS], r[RELEASERS];
    sem = sem_new_ex(INITIAL, SEM_COUNT_MAX, flags);
    CHECK(sem != NULL);
    atomic_store(&acquired, 0);
    atomic_store(&released, 0);
    atomic_store(&releasers_done, 0);
    for (long i = 0; i < ACQUIRERS; i++) a[i] = spawn(acquirer, (void *)(uintptr_t)(i + 1));
    for (long i = 0; i < RELEASERS; i++) r[i] = spawn(releaser, (void *)(uintptr_t)(i + 1));
    for (long i = 0; i < RELEASERS; i++) join(r[i]);
    for (long i = 0; i < ACQUIRERS; i++) join(a[i]);
    long value = (long)sem_value(sem);
    printf("timed_race (%s): released %ld, acquired %ld, left %ld\n", flags ? "fifo" : "default",
           atomic_load(&released), atomic_load(&acquired), value);
    CHECK_EQ(value, INITIAL + atomic_load(&released) - atomic_load(&acquired));
    CHECK_EQ(sem_waiters(sem), 0);
    /* Nothing is stranded: every free permit can still be taken. */
    CHECK_EQ(sem_drain(sem), value);
    sem_free(sem);
}

int main(void) {
    rounds = scaled(20000);
    run(0);
    run(SEM_FIFO);
    puts("timed_race: ok");
    return 0;
}
