/* Timed acquires: never time out early, return soon after the timeout, wait
 * without limit for +inf, and are not cut short by signals (POSIX only:
 * Windows has no signals to send to a thread). */
#include "test_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#ifndef _WIN32
static atomic_long signals_caught;
static void on_signal(int sig) {
    (void)sig;
    atomic_fetch_add(&signals_caught, 1);
}
#endif

static void lengths_and_accuracy(void) {
    const double timeouts[] = {0.001, 0.01, 0.05, 0.2};
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        double t = timeouts[i];
        double t0 = now_s();
        CHECK_EQ(sem_acquire_timed(s, t), SEM_TIMEDOUT);
        double elapsed = now_s() - t0;
        printf("timed acquire %.3f s: returned after %.6f s (overshoot %.0f us)\n", t, elapsed,
               (elapsed - t) * 1e6);
        CHECK(elapsed >= t);
        CHECK(elapsed < t + 2.0); /* generous: shared, noisy machines */
    }
    /* The same through an absolute deadline. */
    int64_t deadline = sem_clock_ns() + 30 * 1000000;
    CHECK_EQ(sem_acquire_until(s, 1, deadline), SEM_TIMEDOUT);
    CHECK(sem_clock_ns() >= deadline);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

struct timed {
    rsem_semaphore *sem;
    double timeout;
    int result;
    double elapsed;
};

static void *timed_acquire(void *arg) {
    struct timed *t = arg;
    double t0 = now_s();
    t->result = sem_acquire_timed(t->sem, t->timeout);
    t->elapsed = now_s() - t0;
    return NULL;
}

static void unlimited_waits(void) {
    const double unlimited[] = {INFINITY, 1e300, 1e20};
    for (size_t i = 0; i < sizeof unlimited / sizeof unlimited[0]; i++) {
        rsem_semaphore *s = sem_new(0);
        CHECK(s != NULL);
        struct timed t = {s, unlimited[i], -100, 0};
        pthread_t th = spawn(timed_acquire, &t);
        EVENTUALLY(sem_waiters(s) == 1);
        CHECK_EQ(sem_release(s), SEM_OK);
        join(th);
        CHECK_EQ(t.result, SEM_OK);
        CHECK_EQ(sem_value(s), 0);
        sem_free(s);
    }
}

#ifndef _WIN32
static void signals_do_not_end_waits(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = 0; /* no SA_RESTART: interrupted system calls return EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

    /* A timed wait bombarded with signals still lasts its full timeout. */
    rsem_semaphore *s = sem_new(0);
    CHECK(s != NULL);
    struct timed t = {s, 0.25, -100, 0};
    pthread_t th = spawn(timed_acquire, &t);
    EVENTUALLY(sem_waiters(s) == 1);
    atomic_store(&signals_caught, 0);
    struct timespec pace = {0, 2000000};
    while (sem_waiters(s) == 1) {
        pthread_kill(th, SIGUSR1);
        nanosleep(&pace, NULL); /* pacing the signals, not a proof */
    }
    join(th);
    CHECK_EQ(t.result, SEM_TIMEDOUT);
    CHECK(t.elapsed >= 0.25);
    CHECK(atomic_load(&signals_caught) > 0);
    printf("timed wait with %ld signals: %.3f s\n", atomic_load(&signals_caught), t.elapsed);

    /* An unlimited wait stays blocked through signals, then takes a permit. */
    struct timed u = {s, INFINITY, -100, 0};
    th = spawn(timed_acquire, &u);
    EVENTUALLY(sem_waiters(s) == 1);
    long before = atomic_load(&signals_caught);
    for (int i = 0; i < 50; i++) {
        pthread_kill(th, SIGUSR1);
        nanosleep(&pace, NULL);
    }
    EVENTUALLY(atomic_load(&signals_caught) >= before + 1);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(u.result, -100);
    CHECK_EQ(sem_release(s), SEM_OK);
    join(th);
    CHECK_EQ(u.result, SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}
#endif

int main(void) {
    lengths_and_accuracy();
    unlimited_waits();
#ifndef _WIN32
    signals_do_not_end_waits();
#endif
    puts("timeouts: ok");
    return 0;
}
