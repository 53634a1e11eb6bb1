/* Many threads on one semaphore: never more holders than permits, no permit
 * lost or created, nobody left blocked. */
#include "test_util.h"

#include <stdatomic.h>

#define PERMITS 3
#define THREADS 8

static rsem_semaphore *sem;
static atomic_long holders;
static atomic_long max_holders;
static long iterations;

static void hold(long n) {
    long now = atomic_fetch_add(&holders, n) + n;
    long seen = atomic_load(&max_holders);
    while (now > seen && !atomic_compare_exchange_weak(&max_holders, &seen, now)) {
    }
    CHECK(now <= PERMITS);
    atomic_fetch_sub(&holders, n);
}

static void *worker(void *arg) {
    uint32_t rng = 0x9E3779B9u * (uint32_t)(uintptr_t)arg + 1;
    for (long i = 0; i < iterations; i++) {
        switch (next_rand(&rng) % 5) {
        case 0:
            CHECK_EQ(sem_acquire(sem), SEM_OK);
            hold(1);
            CHECK_EQ(sem_release(sem), SEM_OK);
            break;
        case 1:
            if (sem_try_acquire(sem) == SEM_OK) {
                hold(1);
                CHECK_EQ(sem_release(sem), SEM_OK);
            }
            break;
        case 2: {
            int r = sem_acquire_timed(sem, (next_rand(&rng) % 200) / 1e6);
            CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
            if (r == SEM_OK) {
                hold(1);
                CHECK_EQ(sem_release(sem), SEM_OK);
            }
            break;
        }
        case 3: {
            int64_t n = 1 + next_rand(&rng) % PERMITS;
            CHECK_EQ(sem_acquire_many(sem, n, INFINITY), SEM_OK);
            hold(n);
            CHECK_EQ(sem_release_n(sem, n), SEM_OK);
            break;
        }
        default: {
            int64_t n = 1 + next_rand(&rng) % 2;
            int r = sem_acquire_until(sem, n, sem_clock_ns() + (int64_t)(next_rand(&rng) % 100000));
            CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
            if (r == SEM_OK) {
                hold(n);
                CHECK_EQ(sem_release_n(sem, n), SEM_OK);
            }
            break;
        }
        }
    }
    return NULL;
}

static void run(uint32_t flags) {
    pthread_t t[THREADS];
    sem = sem_new_ex(PERMITS, PERMITS, flags);
    CHECK(sem != NULL);
    atomic_store(&max_holders, 0);
    for (long i = 0; i < THREADS; i++) t[i] = spawn(worker, (void *)(uintptr_t)(i + 1));
    for (long i = 0; i < THREADS; i++) join(t[i]);
    CHECK_EQ(sem_value(sem), PERMITS);
    CHECK_EQ(sem_waiters(sem), 0);
    CHECK_EQ(atomic_load(&holders), 0);
    /* The bound was reached: the permits really were shared. */
    CHECK(atomic_load(&max_holders) >= 1 && atomic_load(&max_holders) <= PERMITS);
    printf("contention (%s): %d threads x %ld ops, most holders at once %ld\n",
           flags ? "fifo" : "default", THREADS, iterations, atomic_load(&max_holders));
    sem_free(sem);
}

int main(void) {
    iterations = scaled(20000);
    run(0);
    run(SEM_FIFO);
    puts("contention: ok");
    return 0;
}
