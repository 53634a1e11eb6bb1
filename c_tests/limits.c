/* Bounded over-release, overflow at SEM_COUNT_MAX, release_n all or nothing
 * and in time independent of n. */
#include "test_util.h"

static void bounded_refuses_over_release(void) {
    rsem_semaphore *s = sem_new_bounded(2);
    CHECK(s != NULL);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_acquire(s), SEM_OK);
    CHECK_EQ(sem_release_n(s, 2), SEM_EOVERFLOW); /* all or nothing */
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    CHECK_EQ(sem_value(s), 2);
    sem_free(s);

    /* A bounded semaphore of 0 can never be released, nor acquired: every
     * acquire is refused rather than left waiting forever. */
    s = sem_new_bounded(0);
    CHECK(s != NULL);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    CHECK_EQ(sem_try_acquire(s), SEM_EINVAL);
    CHECK_EQ(sem_acquire(s), SEM_EINVAL);
    CHECK_EQ(sem_acquire_timed(s, INFINITY), SEM_EINVAL);
    CHECK_EQ(sem_acquire_many(s, 1, 0.0), SEM_EINVAL);
    sem_free(s);
}

static void overflow_at_count_max(void) {
    rsem_semaphore *s = sem_new(SEM_COUNT_MAX - 2);
    CHECK(s != NULL);
    CHECK_EQ(sem_release_n(s, 3), SEM_EOVERFLOW);
    CHECK_EQ(sem_value(s), SEM_COUNT_MAX - 2);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    CHECK_EQ(sem_value(s), SEM_COUNT_MAX);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    CHECK_EQ(sem_release_n(s, INT64_MAX), SEM_EOVERFLOW);
    CHECK_EQ(sem_value(s), SEM_COUNT_MAX);
    /* Taking all of them at once works and leaves exactly zero. */
    CHECK_EQ(sem_acquire_many(s, SEM_COUNT_MAX, 0.0), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    sem_free(s);
}

static void release_n_is_o1_in_n(void) {
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    double t0 = now_s();
    CHECK_EQ(sem_release_n(s, (int64_t)1 << 40), SEM_OK);
    CHECK_EQ(sem_release_n(s, (int64_t)1 << 40), SEM_OK);
    double elapsed = now_s() - t0;
    CHECK_EQ(sem_value(s), (int64_t)1 << 41);
    /* A loop over n would take hours; this is one compare-and-swap. */
    CHECK(elapsed < 1.0);
    CHECK_EQ(sem_drain(s), (int64_t)1 << 41);
    sem_free(s);
}

int main(void) {
    bounded_refuses_over_release();
    overflow_at_count_max();
    release_n_is_o1_in_n();
    puts("limits: ok");
    return 0;
}
