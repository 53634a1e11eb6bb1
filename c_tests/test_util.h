/* Helpers shared by the C tests: checks that stop the test with a message,
 * a monotonic clock, threads, and waiting for a condition (never sleeping as
 * proof: EVENTUALLY polls a condition that the test then relies on). */
#ifndef RSEM_TEST_UTIL_H
#define RSEM_TEST_UTIL_H

#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rsem.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_EQ(actual, expected)                                             \
    do {                                                                       \
        long long a_ = (long long)(actual), e_ = (long long)(expected);        \
        if (a_ != e_) {                                                        \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",        \
                    __FILE__, __LINE__, #actual, a_, #expected, e_);           \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Seconds on the monotonic clock. */
static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Nanoseconds on the host's monotonic clock (CLOCK_MONOTONIC; MinGW's
 * winpthreads reads QueryPerformanceCounter for it). */
static inline int64_t host_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polls `cond` (yielding) until it holds; fails the test after 20 s. */
#define EVENTUALLY(cond)                                                       \
    do {                                                                       \
        double t0_ = now_s();                                                  \
        while (!(cond)) {                                                      \
            if (now_s() - t0_ > 20.0) {                                        \
                fprintf(stderr, "%s:%d: never became true: %s\n", __FILE__,    \
                        __LINE__, #cond);                                      \
                exit(1);                                                       \
            }                                                                  \
            sched_yield();                                                     \
        }                                                                      \
    } while (0)

static inline pthread_t spawn(void *(*fn)(void *), void *arg) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fn, arg) == 0);
    return t;
}

static inline void *join(pthread_t t) {
    void *ret = NULL;
    CHECK(pthread_join(t, &ret) == 0);
    return ret;
}

/* Sleeps for `ms` milliseconds (set-up only, never as proof). */
#ifdef _WIN32
#include <windows.h>
static inline void sleep_ms(long ms) { Sleep((DWORD)ms); }
#else
static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
#endif

static void *watchdog_thread(void *arg) {
    long seconds = (long)(intptr_t)arg;
    sleep_ms(seconds * 1000);
    fprintf(stderr, "watchdog: still running after %ld s: a hang\n", seconds);
    fflush(stderr);
    _Exit(3);
    return NULL;
}

/* Ends the program with a failure if it runs longer than `seconds` (ten
 * times longer under valgrind): for tests whose failure mode is a hang. */
static inline void start_watchdog(long seconds) {
    if (getenv("RSEM_TEST_SCALE")) seconds *= 10;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, watchdog_thread, (void *)(intptr_t)seconds) == 0);
    CHECK(pthread_detach(t) == 0);
}

/* Iteration counts are divided by RSEM_TEST_SCALE (set to a larger number
 * when the tests run under valgrind, which serialises threads). */
static inline long scaled(long n) {
    const char *s = getenv("RSEM_TEST_SCALE");
    long div = s ? atol(s) : 1;
    if (div < 1) div = 1;
    return n / div > 0 ? n / div : 1;
}

#if defined(__linux__)
#include <signal.h>
#include <string.h>
#endif
#if defined(__linux__) && defined(SIGEV_THREAD_ID)
#ifndef sigev_notify_thread_id /* older glibc names it only this way */
#define sigev_notify_thread_id _sigev_un._tid
#endif
/* Arms a POSIX timer that sends `signo` to thread `tid` (a kernel thread
 * id) every `period_ns` (< 1 s); 0, or -1 if the system refused. Signals
 * raised from the timer interrupt land wherever the thread is, even when
 * no core is free for a sending thread. (Needs _GNU_SOURCE and <signal.h>,
 * <time.h> before this header.) */
static inline int arm_thread_timer(pid_t tid, int signo, long period_ns, timer_t *timer) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = signo;
    ev.sigev_notify_thread_id = tid;
    if (timer_create(CLOCK_MONOTONIC, &ev, timer) != 0) return -1;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_nsec = period_ns;
    its.it_interval.tv_nsec = period_ns;
    return timer_settime(*timer, 0, &its, NULL);
}
#endif

/* A small xorshift generator, seeded per thread. */
static inline uint32_t next_rand(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

#endif
