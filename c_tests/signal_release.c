/* sem_release and sem_release_n are async-signal-safe (as POSIX sem_post),
 * including when the handler interrupts a thread that is inside any rsem call
 * on the same or another semaphore. A signal storm: a sender thread hits the
 * workers with SIGUSR1 as fast as it can; the handler releases S (and every
 * third time T) while the interrupted workers are in timed, non-blocking and
 * multi-permit acquires and releases on S and T, so that signals land in the
 * slow paths (queue walks, parking, timeouts). Checked afterwards: every
 * release and acquire is accounted for on both semaphores, nobody is left
 * queued, and the library still works on fresh semaphores. Once with S in
 * the default mode and T in FIFO mode, once the other way round.
 * On Linux, per-worker POSIX timers (SIGEV_THREAD_ID, every 20 us) add
 * signals raised from the timer interrupt, which land wherever a running
 * worker is, even when no core is free for the sender thread: on a loaded
 * two-core machine, pthread_kill alone hit the library's locked sections in
 * far fewer runs.
 * A hang is the failure (a handler waiting for a lock that the thread it
 * interrupted holds): a watchdog ends the program. POSIX only: Windows has
 * no signals to send to a thread. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* SIGEV_THREAD_ID, syscall(SYS_gettid) */
#endif
#include "test_util.h"

#ifndef _WIN32
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__linux__) && defined(SIGEV_THREAD_ID)
#include <sys/syscall.h>
#include <unistd.h>
#define TIMER_SIGNALS 1
#else
#define TIMER_SIGNALS 0
#endif

#define WORKERS 3

/* The handler's semaphores: set before a storm starts, unchanged during it. */
static rsem_semaphore *S, *T;

/* Counted by the handler (lock-free atomics are async-signal-safe). */
static atomic_long handler_runs, handler_released_s, handler_released_t, handler_failures;
/* Counted by the workers. */
static atomic_long worker_acquired_s, worker_acquired_t, worker_released_s, worker_released_t;
static atomic_int stop;
#if TIMER_SIGNALS
/* The workers' kernel thread ids, for their timers. */
static pid_t worker_tids[WORKERS];
static atomic_int workers_started;
#endif

static void on_sigusr1(int sig) {
    (void)sig;
    int saved_errno = errno;
    long run = atomic_fetch_add(&handler_runs, 1);
    if (sem_release(S) == SEM_OK) {
        atomic_fetch_add(&handler_released_s, 1);
    } else {
        atomic_fetch_add(&handler_failures, 1);
    }
    if (run % 3 == 0) {
        if (sem_release_n(T, 1) == SEM_OK) {
            atomic_fetch_add(&handler_released_t, 1);
        } else {
            atomic_fetch_add(&handler_failures, 1);
        }
    }
    errno = saved_errno;
}

/* A short timeout, 0.1 to 1 ms: long enough to queue and park, short enough
 * that most waits end by timing out (another slow path). */
static double tiny_timeout(uint32_t *rng) { return (100 + next_rand(rng) % 901) / 1e6; }

/* Keeps calling into S and T, mostly acquiring and draining (so that, the
 * handler being the main source of permits, the counts stay near zero and
 * threads are queued most of the time), and now and then giving back one of
 * the permits it holds. */
static void *worker(void *arg) {
    uint32_t rng = 0x9E3779B9u * (uint32_t)((uintptr_t)arg + 1);
    long held_s = 0, held_t = 0;
#if TIMER_SIGNALS
    worker_tids[(uintptr_t)arg] = (pid_t)syscall(SYS_gettid);
    atomic_fetch_add(&workers_started, 1);
#endif
    while (!atomic_load(&stop)) {
        int on_s = next_rand(&rng) % 4 != 0; /* S gets 3 of 4 handler releases */
        rsem_semaphore *sem = on_s ? S : T;
        long *held = on_s ? &held_s : &held_t;
        atomic_long *acquired = on_s ? &worker_acquired_s : &worker_acquired_t;
        int r;
        switch (next_rand(&rng) % 8) {
        case 0:
        case 1:
        case 2:
            r = sem_acquire_timed(sem, tiny_timeout(&rng));
            CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
            if (r == SEM_OK) {
                atomic_fetch_add(acquired, 1);
                (*held)++;
            }
            break;
        case 3:
            r = sem_try_acquire(sem);
            CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
            if (r == SEM_OK) {
                atomic_fetch_add(acquired, 1);
                (*held)++;
            }
            break;
        case 4:
        case 5:
            r = sem_acquire_many(sem, 2, tiny_timeout(&rng));
            CHECK(r == SEM_OK || r == SEM_TIMEDOUT);
            if (r == SEM_OK) {
                atomic_fetch_add(acquired, 2);
                *held += 2;
            }
            break;
        case 6: {
            /* Takes the permits that piled up, so that the count stays near 0
             * and the acquires above queue instead of taking a free permit. */
            int64_t got = sem_drain(sem);
            CHECK(got >= 0);
            atomic_fetch_add(acquired, got);
            *held += got;
            break;
        }
        default:
            if (*held > 0) {
                CHECK_EQ(sem_release(sem), SEM_OK);
                atomic_fetch_add(on_s ? &worker_released_s : &worker_released_t, 1);
                (*held)--;
            }
            break;
        }
    }
    return NULL;
}

struct storm {
    pthread_t workers[WORKERS];
    double seconds;
    long sent;
    long queued_s, queued_t; /* signals sent while threads were queued */
};

/* Sends SIGUSR1 to the workers in turn, yielding between signals, for the
 * storm's duration. It is joined before the workers are told to stop, so
 * every target of pthread_kill is alive. */
static void *sender(void *arg) {
    struct storm *st = arg;
    double t0 = now_s();
    long sent = 0;
    long queued_s = 0, queued_t = 0;
    while (now_s() - t0 < st->seconds) {
        queued_s += sem_waiters(S) > 0;
        queued_t += sem_waiters(T) > 0;
        CHECK_EQ(pthread_kill(st->workers[sent % WORKERS], SIGUSR1), 0);
        sent++;
        sched_yield();
    }
    st->sent = sent;
    st->queued_s = queued_s;
    st->queued_t = queued_t;
    return NULL;
}

#if TIMER_SIGNALS
/* Arms, for each worker, a timer that sends it SIGUSR1 every 20 us (slower
 * under valgrind). Deleted before the workers stop, so every target is
 * alive (a thread id is not reused while its thread runs). */
static void start_timers(timer_t *timers) {
    EVENTUALLY(atomic_load(&workers_started) == WORKERS);
    long period_ns = 20000L * (1000 / scaled(1000));
    for (int i = 0; i < WORKERS; i++)
        CHECK(arm_thread_timer(worker_tids[i], SIGUSR1, period_ns, &timers[i]) == 0);
}

static void stop_timers(timer_t *timers) {
    for (int i = 0; i < WORKERS; i++) CHECK(timer_delete(timers[i]) == 0);
}
#endif

static void storm(const char *label, uint32_t s_flags, uint32_t t_flags, double seconds) {
    S = sem_new_ex(0, SEM_COUNT_MAX, s_flags);
    T = sem_new_ex(0, SEM_COUNT_MAX, t_flags);
    CHECK(S != NULL && T != NULL);
    atomic_store(&stop, 0);
    atomic_store(&handler_runs, 0);
    atomic_store(&handler_released_s, 0);
    atomic_store(&handler_released_t, 0);
    atomic_store(&handler_failures, 0);
    atomic_store(&worker_acquired_s, 0);
    atomic_store(&worker_acquired_t, 0);
    atomic_store(&worker_released_s, 0);
    atomic_store(&worker_released_t, 0);

    struct storm st;
    memset(&st, 0, sizeof st);
    st.seconds = seconds;
#if TIMER_SIGNALS
    atomic_store(&workers_started, 0);
#endif
    for (uintptr_t i = 0; i < WORKERS; i++) st.workers[i] = spawn(worker, (void *)i);
#if TIMER_SIGNALS
    timer_t timers[WORKERS];
    start_timers(timers);
#endif
    pthread_t snd = spawn(sender, &st);
    join(snd);
#if TIMER_SIGNALS
    stop_timers(timers);
#endif
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) join(st.workers[i]);

    /* Every handler run finished on a worker before it exited. */
    long runs = atomic_load(&handler_runs);
    printf("%s: %ld signals sent by pthread_kill (%.0f%% with threads queued on S, %.0f%% on T), "
           "%ld handled in all; handler released S %ld, T %ld; workers acquired S %ld, T %ld\n",
           label, st.sent, 100.0 * (double)st.queued_s / (double)(st.sent ? st.sent : 1),
           100.0 * (double)st.queued_t / (double)(st.sent ? st.sent : 1), runs,
           atomic_load(&handler_released_s), atomic_load(&handler_released_t),
           atomic_load(&worker_acquired_s), atomic_load(&worker_acquired_t));
    CHECK_EQ(atomic_load(&handler_failures), 0);
    CHECK(runs > 0);
    CHECK_EQ(atomic_load(&handler_released_s), runs);
    /* Conservation: initial (0) + releases (handler and workers) - acquires. */
    CHECK_EQ(sem_value(S), atomic_load(&handler_released_s) + atomic_load(&worker_released_s) -
                               atomic_load(&worker_acquired_s));
    CHECK_EQ(sem_value(T), atomic_load(&handler_released_t) + atomic_load(&worker_released_t) -
                               atomic_load(&worker_acquired_t));
    CHECK_EQ(sem_waiters(S), 0);
    CHECK_EQ(sem_waiters(T), 0);
    sem_free(S);
    sem_free(T);
    S = T = NULL;
}

/* The library as a whole still works: a lock left held (for example by a
 * handler stuck on it) would stop every semaphore that hashes to it. */
static void library_still_works(void) {
    rsem_semaphore *fresh[16];
    for (int i = 0; i < 16; i++) {
        fresh[i] = sem_new(0);
        CHECK(fresh[i] != NULL);
    }
    for (int i = 0; i < 16; i++) {
        double t0 = now_s();
        CHECK_EQ(sem_acquire_timed(fresh[i], 0.001), SEM_TIMEDOUT);
        CHECK_EQ(sem_release(fresh[i]), SEM_OK);
        CHECK_EQ(sem_acquire(fresh[i]), SEM_OK);
        CHECK(now_s() - t0 < 5.0); /* generous: shared, noisy machines */
        CHECK_EQ(sem_value(fresh[i]), 0);
        CHECK_EQ(sem_waiters(fresh[i]), 0);
    }
    for (int i = 0; i < 16; i++) sem_free(fresh[i]);
}

int main(void) {
    start_watchdog(60);
    CHECK(ATOMIC_LONG_LOCK_FREE == 2); /* the handler's counters */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

    /* The duration bounds the run; it proves nothing by itself. */
    double seconds = 0.75 * (double)scaled(1000) / 1000.0;
    storm("S default, T FIFO", 0, SEM_FIFO, seconds);
    storm("S FIFO, T default", SEM_FIFO, 0, seconds);
    library_still_works();
    puts("signal_release: ok");
    return 0;
}
#else
int main(void) {
    puts("signal_release: skipped on Windows: no signals to send to a thread");
    puts("signal_release: ok");
    return 0;
}
#endif
