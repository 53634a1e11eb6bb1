/* A random concurrent mix of every operation, ended by sem_shutdown: the
 * permit count is conserved (initial + released - acquired - drained) and no
 * thread is left blocked. */
#include "test_util.h"

#include <stdatomic.h>

#define THREADS 6
#define INITIAL 4

static rsem_semaphore *sem;
static atomic_long acquired, released, drained;

static void *worker(void *arg) {
    uint32_t rng = 0x1B873593u * (uint32_t)(uintptr_t)arg + 11;
    /* Odd threads may block without limit; even ones only briefly, so some
     * thread always keeps releasing until the shutdown. */
    int unlimited = (uintptr_t)arg % 2 == 1;
    double forever = unlimited ? INFINITY : 0.002;
    for (;;) {
        int r;
        int64_t n = 1 + next_rand(&rng) % 3;
        switch (next_rand(&rng) % 8) {
        case 0: n = 1; r = unlimited ? sem_acquire(sem) : sem_acquire_timed(sem, forever); break;
        case 1: n = 1; r = sem_try_acquire(sem); break;
        case 2: n = 1; r = sem_acquire_timed(sem, (next_rand(&rng) % 500) / 1e6); break;
        case 3: r = sem_acquire_many(sem, n, forever); break;
        case 4: r = sem_acquire_until(sem, n, sem_clock_ns() + (int64_t)(next_rand(&rng) % 500000)); break;
        case 5: {
            int64_t d = sem_drain(sem);
            CHECK(d >= 0);
            atomic_fetch_add(&drained, d);
            continue;
        }
        default:
            r = sem_release_n(sem, n);
            CHECK(r == SEM_OK || r == SEM_EOVERFLOW);
            if (r == SEM_OK) atomic_fetch_add(&released, n);
            CHECK(sem_value(sem) >= 0);
            CHECK(sem_waiters(sem) >= 0);
            continue;
        }
        if (r == SEM_ECLOSED) return NULL;
        CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
        if (r == SEM_OK) {
            atomic_fetch_add(&acquired, n);
            /* Give most permits back, keep some. */
            if (next_rand(&rng) % 4 != 0) {
                CHECK_EQ(sem_release_n(sem, n), SEM_OK);
                atomic_fetch_add(&released, n);
            }
        }
    }
}

static void run(uint32_t flags) {
    sem = sem_new_ex(INITIAL, 64, flags);
    CHECK(sem != NULL);
    atomic_store(&acquired, 0);
    atomic_store(&released, 0);
    atomic_store(&drained, 0);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) t[i] = spawn(worker, (void *)(uintptr_t)(i + 1));
    /* Let the mix run for a number of operations, then shut down. */
    long target = scaled(50000);
    EVENTUALLY(atomic_load(&acquired) + atomic_load(&released) >= target);
    CHECK_EQ(sem_shutdown(sem), SEM_OK);
    for (int i = 0; i < THREADS; i++) join(t[i]);
    long value = (long)sem_value(sem);
    printf("mixed_shutdown (%s): acquired %ld released %ld drained %ld left %ld\n",
           flags ? "fifo" : "default", atomic_load(&acquired), atomic_load(&released),
           atomic_load(&drained), value);
    CHECK_EQ(value, INITIAL + atomic_load(&released) - atomic_load(&acquired) - atomic_load(&drained));
    CHECK_EQ(sem_waiters(sem), 0);
    sem_free(sem);
}

int main(void) {
    run(0);
    run(SEM_FIFO);
    puts("mixed_shutdown: ok");
    return 0;
}
