/* Every function and every return code, from one thread: the C contract of
 * include/rsem.h, value by value. */
#include "test_util.h"

#include <string.h>

static void creation(void) {
    rsem_semaphore *s;

    s = sem_new(3);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), 3);
    CHECK_EQ(sem_max(s), SEM_COUNT_MAX);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);

    s = sem_new(0);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);

    s = sem_new(SEM_COUNT_MAX);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), SEM_COUNT_MAX);
    sem_free(s);

    /* Refused values: NULL with errno EINVAL. */
    const int64_t bad[] = {-1, INT64_MIN, SEM_COUNT_MAX + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK(sem_new(bad[i]) == NULL);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK(sem_new_bounded(bad[i]) == NULL);
        CHECK_EQ(errno, EINVAL);
        errno = 0;
        CHECK(sem_new_ex(bad[i], SEM_COUNT_MAX, 0) == NULL);
        CHECK_EQ(errno, EINVAL);
    }

    s = sem_new_bounded(2);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_max(s), 2);
    sem_free(s);

    /* sem_new_ex: 0 <= value <= max <= SEM_COUNT_MAX, flags 0 or SEM_FIFO. */
    s = sem_new_ex(1, 5, SEM_FIFO);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_max(s), 5);
    sem_free(s);
    s = sem_new_ex(0, 0, 0);
    CHECK(s != NULL);
    CHECK_EQ(sem_max(s), 0);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    sem_free(s);
    struct { int64_t value, max; uint32_t flags; } refused[] = {
        {2, 1, 0}, {0, -1, 0}, {-1, 5, 0}, {0, SEM_COUNT_MAX + 1, 0},
        {0, INT64_MIN, 0}, {0, 1, 2}, {0, 1, SEM_FIFO | 4}, {0, 1, 0xFFFFFFFFu},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        errno = 0;
        CHECK(sem_new_ex(refused[i].value, refused[i].max, refused[i].flags) == NULL);
        CHECK_EQ(errno, EINVAL);
    }

    sem_free(NULL); /* a no-op */
}

static void acquire_and_release(void) {
    rsem_semaphore *s = sem_new(2);
    CHECK(s != NULL);
    CHECK_EQ(sem_acquire(s), SEM_OK);
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_release_n(s, 4), SEM_OK);
    CHECK_EQ(sem_value(s), 5);
    for (int i = 0; i < 5; i++) CHECK_EQ(sem_acquire(s), SEM_OK);
    CHECK_EQ(sem_value(s), 0);

    /* release_n refuses n < 1 and changes nothing. */
    const int64_t bad_n[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        CHECK_EQ(sem_release_n(s, bad_n[i]), SEM_EINVAL);
        CHECK_EQ(sem_value(s), 0);
    }
    /* More than the maximum can never fit. */
    CHECK_EQ(sem_release_n(s, INT64_MAX), SEM_EOVERFLOW);
    CHECK_EQ(sem_release_n(s, SEM_COUNT_MAX + 1), SEM_EOVERFLOW);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

static void timed_edge_values(void) {
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    /* NaN is refused, nothing taken. */
    CHECK_EQ(sem_acquire_timed(s, NAN), SEM_EINVAL);
    CHECK_EQ(sem_acquire_timed(s, -NAN), SEM_EINVAL);
    /* <= 0 is a non-blocking attempt. */
    const double tries[] = {0.0, -0.0, -1.0, -1e300, -INFINITY};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        CHECK_EQ(sem_acquire_timed(s, tries[i]), SEM_TIMEDOUT);
    }
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_acquire_timed(s, NAN), SEM_EINVAL);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_acquire_timed(s, 0.0), SEM_OK);
    /* +inf and huge timeouts take a free permit at once. */
    CHECK_EQ(sem_release_n(s, 3), SEM_OK);
    CHECK_EQ(sem_acquire_timed(s, INFINITY), SEM_OK);
    CHECK_EQ(sem_acquire_timed(s, 1e300), SEM_OK);
    CHECK_EQ(sem_acquire_timed(s, 1e-300), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    /* A tiny positive timeout waits, briefly, and times out. */
    CHECK_EQ(sem_acquire_timed(s, 1e-300), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_timed(s, 0.001), SEM_TIMEDOUT);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

static void multi_permit_and_deadlines(void) {
    rsem_semaphore *s = sem_new_ex(5, 10, 0);
    CHECK(s != NULL);
    CHECK_EQ(sem_acquire_many(s, 3, 0.0), SEM_OK);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_acquire_many(s, 3, 0.0), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_many(s, 3, 0.01), SEM_TIMEDOUT);
    CHECK_EQ(sem_value(s), 2);
    const int64_t bad_n[] = {0, -1, 11, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        CHECK_EQ(sem_acquire_many(s, bad_n[i], 0.0), SEM_EINVAL);
        CHECK_EQ(sem_acquire_until(s, bad_n[i], 0), SEM_EINVAL);
    }
    CHECK_EQ(sem_acquire_many(s, 1, NAN), SEM_EINVAL);
    CHECK_EQ(sem_acquire_many(s, 10, 0.0), SEM_TIMEDOUT); /* possible later */
    CHECK_EQ(sem_acquire_many(s, 2, INFINITY), SEM_OK);
    CHECK_EQ(sem_value(s), 0);

    /* Deadlines are on the host's clock: CLOCK_MONOTONIC on POSIX,
     * QueryPerformanceCounter on Windows (read around sem_clock_ns). */
    {
        int64_t before = host_monotonic_ns();
        int64_t ours = sem_clock_ns();
        int64_t after = host_monotonic_ns();
        CHECK(before <= ours + 1 && ours <= after + 1); /* (QPC rounding) */
        /* A deadline computed from the host clock times out then, not at
         * some other time: 20 ms from now on CLOCK_MONOTONIC. */
        int64_t deadline = host_monotonic_ns() + 20000000;
        CHECK_EQ(sem_acquire_until(s, 1, deadline), SEM_TIMEDOUT);
        int64_t woke = host_monotonic_ns();
        CHECK(woke >= deadline);
        /* Not seconds late (ten times more slack under valgrind). */
        CHECK(woke < deadline + (getenv("RSEM_TEST_SCALE") ? 20000000000LL : 2000000000LL));
    }

    /* Deadlines: past ones are non-blocking attempts. */
    int64_t now = sem_clock_ns();
    CHECK(now >= 0);
    CHECK_EQ(sem_acquire_until(s, 1, INT64_MIN), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_until(s, 1, 0), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_until(s, 1, now), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_until(s, 1, sem_clock_ns() + 2000000), SEM_TIMEDOUT);
    CHECK(sem_clock_ns() >= now + 2000000);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    CHECK_EQ(sem_acquire_until(s, 1, now), SEM_OK);
    CHECK_EQ(sem_acquire_until(s, 1, INT64_MAX), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

static void drain_and_shutdown(void) {
    rsem_semaphore *s = sem_new(7);
    CHECK(s != NULL);
    CHECK_EQ(sem_drain(s), 7);
    CHECK_EQ(sem_drain(s), 0);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    /* Every acquire is refused at once, even with permits free. */
    CHECK_EQ(sem_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_try_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_acquire_timed(s, 1.0), SEM_ECLOSED);
    CHECK_EQ(sem_acquire_timed(s, INFINITY), SEM_ECLOSED);
    CHECK_EQ(sem_acquire_many(s, 1, 1.0), SEM_ECLOSED);
    CHECK_EQ(sem_acquire_until(s, 1, INT64_MAX), SEM_ECLOSED);
    CHECK_EQ(sem_value(s), 2);
    /* Releases keep counting; shutting down again is harmless. */
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 3);
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    CHECK_EQ(sem_drain(s), 3);
    sem_free(s);
}

static void null_handles(void) {
    CHECK_EQ(sem_acquire(NULL), SEM_EINVAL);
    CHECK_EQ(sem_try_acquire(NULL), SEM_EINVAL);
    CHECK_EQ(sem_acquire_timed(NULL, 1.0), SEM_EINVAL);
    CHECK_EQ(sem_acquire_timed(NULL, NAN), SEM_EINVAL);
    CHECK_EQ(sem_acquire_many(NULL, 1, 1.0), SEM_EINVAL);
    CHECK_EQ(sem_acquire_until(NULL, 1, INT64_MAX), SEM_EINVAL);
    CHECK_EQ(sem_release(NULL), SEM_EINVAL);
    CHECK_EQ(sem_release_n(NULL, 1), SEM_EINVAL);
    CHECK_EQ(sem_value(NULL), SEM_EINVAL);
    CHECK_EQ(sem_max(NULL), SEM_EINVAL);
    CHECK_EQ(sem_waiters(NULL), SEM_EINVAL);
    CHECK_EQ(sem_drain(NULL), SEM_EINVAL);
    CHECK_EQ(sem_shutdown(NULL), SEM_EINVAL);
    sem_free(NULL);
}

static void status_values_are_fixed(void) {
    CHECK_EQ(SEM_OK, 0);
    CHECK_EQ(SEM_TIMEDOUT, 1);
    CHECK_EQ(SEM_EINVAL, -1);
    CHECK_EQ(SEM_EOVERFLOW, -2);
    CHECK_EQ(SEM_ECLOSED, -3);
    CHECK_EQ(SEM_FIFO, 1);
    CHECK(SEM_COUNT_MAX >= 2147483647);
    CHECK(sizeof(SEM_COUNT_MAX) == sizeof(int64_t));
    /* The macros survive being used inside expressions. */
    CHECK_EQ(10-SEM_EINVAL, 11);
    CHECK_EQ(-SEM_ECLOSED, 3);
}

int main(void) {
    status_values_are_fixed();
    creation();
    acquire_and_release();
    timed_edge_values();
    multi_permit_and_deadlines();
    drain_and_shutdown();
    null_handles();
    puts("api_basic: ok");
    return 0;
}
