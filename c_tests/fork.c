/* fork() while threads are blocked on a semaphore: the child inherits the
 * semaphore together with waiters whose threads do not exist in it (ghosts).
 * The child must be able to use it: ghosts are never woken and never handed
 * permits, the child's own waiters queue and are served, nothing hangs. The
 * child's new threads get the ghosts' stacks back from glibc's stack cache,
 * so their wait records and parking data land where the ghosts' were: that
 * collision is the point, and being probabilistic, each mode forks several
 * children. The parent's own waiters are untouched by all this.
 * A hang is the failure: the child has its own watchdog (the parent's does
 * not survive fork) and the parent waits for it a bounded time.
 * POSIX only: Windows has no fork. */
#include "test_util.h"

#ifndef _WIN32
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARENT_WAITERS 3
#define CHILD_WAITERS 3
#define CHILDREN 5

struct ask {
    rsem_semaphore *sem;
    int64_t n; /* 0: sem_acquire; otherwise sem_acquire_many(n, +inf) */
    int result;
    atomic_int *arrived; /* counted just before the acquire */
    atomic_int *done;    /* counted once the acquire returned */
};

static void *acquirer(void *arg) {
    struct ask *a = arg;
    atomic_fetch_add(a->arrived, 1);
    a->result = a->n == 0 ? sem_acquire(a->sem) : sem_acquire_many(a->sem, a->n, INFINITY);
    atomic_fetch_add(a->done, 1);
    return NULL;
}

/* Waits (yielding) up to 10 s for `want` acquirers to return; if they do not,
 * reports what the semaphore shows and fails, before the watchdog would. */
static void await_done(atomic_int *done, int want, rsem_semaphore *s, int line) {
    double t0 = now_s();
    while (atomic_load(done) < want) {
        if (now_s() - t0 > 10.0) {
            fprintf(stderr,
                    "%s:%d: child: %d of %d waiters served after 10 s "
                    "(sem_value %lld, sem_waiters %lld): permits lost to ghosts?\n",
                    __FILE__, line, atomic_load(done), want, (long long)sem_value(s),
                    (long long)sem_waiters(s));
            exit(1);
        }
        sched_yield();
    }
}

/* In the child: `s` has PARENT_WAITERS ghosts queued and no permit. */
static void child(rsem_semaphore *s, int index) {
    (void)index;
    start_watchdog(20);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0); /* the ghosts are not the child's waiters */

    /* New threads, on the ghosts' recycled stacks, block on `s`. Their own
     * counter says they reached the call; the short delay gives them time to
     * queue (coverage only: one that comes late takes its permit on the fast
     * path, and the checks still hold). */
    atomic_int arrived = 0, done = 0;
    struct ask asks[CHILD_WAITERS];
    pthread_t threads[CHILD_WAITERS];
    for (int i = 0; i < CHILD_WAITERS; i++) {
        asks[i] = (struct ask){s, 0, -100, &arrived, &done};
        threads[i] = spawn(acquirer, &asks[i]);
    }
    EVENTUALLY(atomic_load(&arrived) == CHILD_WAITERS);
    sleep_ms(20); /* setup: let them queue */

    /* Three permits for the three live waiters: none may go to a ghost. */
    CHECK_EQ(sem_release_n(s, CHILD_WAITERS), SEM_OK);
    await_done(&done, CHILD_WAITERS, s, __LINE__);
    for (int i = 0; i < CHILD_WAITERS; i++) {
        join(threads[i]);
        CHECK_EQ(asks[i].result, SEM_OK);
    }
    CHECK_EQ(sem_value(s), 0);

    /* Nobody (live) is queued now: a permit released stays free for a
     * non-blocking acquire (in FIFO mode a ghost still counted as queued
     * would take priority), and an empty semaphore times out. */
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    double t0 = now_s();
    CHECK_EQ(sem_acquire_timed(s, 0.001), SEM_TIMEDOUT);
    CHECK(now_s() - t0 >= 0.001);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);

    /* The rest of the library works in the child too. */
    rsem_semaphore *fresh = sem_new(0);
    CHECK(fresh != NULL);
    atomic_int fresh_arrived = 0, fresh_done = 0;
    struct ask a = {fresh, 0, -100, &fresh_arrived, &fresh_done};
    pthread_t t = spawn(acquirer, &a);
    EVENTUALLY(sem_waiters(fresh) == 1);
    CHECK_EQ(sem_release(fresh), SEM_OK);
    join(t);
    CHECK_EQ(a.result, SEM_OK);
    CHECK_EQ(sem_value(fresh), 0);
    CHECK_EQ(sem_waiters(fresh), 0);
    sem_free(fresh);
    _exit(0);
}

/* Waits for the child a bounded time (ten times longer under valgrind, as
 * the watchdog); kills it and fails if it does not end. */
static int wait_child(pid_t pid) {
    double limit = getenv("RSEM_TEST_SCALE") ? 300.0 : 30.0;
    double t0 = now_s();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        CHECK(r == pid || r == 0);
        if (r == pid) return status;
        if (now_s() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "%s:%d: child %d still running after %.0f s: a hang\n", __FILE__,
                    __LINE__, (int)pid, limit);
            exit(1);
        }
        sleep_ms(1); /* pacing the polls, not a proof */
    }
}

/* Forks a child that runs `body(s, index)` (it ends with _exit), waits for
 * it a bounded time, and fails the test, saying which child of `count` and
 * how, unless it exited with status 0. */
static void run_child(void (*body)(rsem_semaphore *, int), rsem_semaphore *s, int index,
                      int count, const char *what) {
    fflush(stdout); /* nothing buffered for the child to print again */
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        body(s, index);
        _exit(0);
    }
    int status = wait_child(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s:%d: %s %d of %d failed: %s %d%s\n", __FILE__, __LINE__, what,
                index + 1, count, WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                WIFEXITED(status) && WEXITSTATUS(status) == 3 ? " (its watchdog: a hang)" : "");
        exit(1);
    }
}

static void fork_with_waiters(const char *label, uint32_t flags) {
    rsem_semaphore *s = sem_new_ex(0, 100, flags);
    CHECK(s != NULL);

    /* The parent's waiters, to be ghosts in every child: one sem_acquire,
     * two sem_acquire_many (1 and 2 permits). */
    atomic_int arrived = 0, done = 0;
    struct ask asks[PARENT_WAITERS];
    pthread_t threads[PARENT_WAITERS];
    int64_t needed = 0;
    for (int i = 0; i < PARENT_WAITERS; i++) {
        asks[i] = (struct ask){s, i, -100, &arrived, &done};
        needed += i == 0 ? 1 : i;
        threads[i] = spawn(acquirer, &asks[i]);
    }
    EVENTUALLY(sem_waiters(s) == PARENT_WAITERS);

    char what[64];
    snprintf(what, sizeof what, "%s: child", label);
    for (int c = 0; c < CHILDREN; c++) {
        run_child(child, s, c, CHILDREN, what);
        /* The child's doings are its own: the parent's waiters still wait. */
        CHECK_EQ(sem_value(s), 0);
        CHECK_EQ(sem_waiters(s), PARENT_WAITERS);
        CHECK_EQ(atomic_load(&done), 0);
    }
    printf("%s: %d children used the semaphore their parent's waiters were blocked on\n", label,
           CHILDREN);

    CHECK_EQ(sem_release_n(s, needed), SEM_OK);
    for (int i = 0; i < PARENT_WAITERS; i++) {
        join(threads[i]);
        CHECK_EQ(asks[i].result, SEM_OK);
    }
    CHECK_EQ(sem_value(s), 0); /* 0 + needed released - needed acquired */
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

/* In the child of fork_with_permit_held_back: the permit is free at once,
 * for sem_try_acquire (child 0) or sem_drain (child 1). */
static void held_back_child(rsem_semaphore *s, int index) {
    start_watchdog(20);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_value(s), 1);
    if (index == 0) {
        CHECK_EQ(sem_try_acquire(s), SEM_OK);
        CHECK_EQ(sem_value(s), 0);
    } else {
        CHECK_EQ(sem_drain(s), 1);
    }
    CHECK_EQ(sem_release_n(s, 3), SEM_OK);
    CHECK_EQ(sem_acquire_many(s, 3, 0.0), SEM_OK);
    _exit(0);
}

/* FIFO mode: a 2-permit waiter at the head holds back the one free permit
 * from running threads. In the child that waiter is a ghost: the permit is
 * free for a non-blocking acquire (and for sem_drain) at once, before any
 * other call could have cleaned the queue up. */
static void fork_with_permit_held_back(void) {
    rsem_semaphore *s = sem_new_ex(0, 10, SEM_FIFO);
    CHECK(s != NULL);
    atomic_int arrived = 0, done = 0;
    struct ask a = {s, 2, -100, &arrived, &done};
    pthread_t t = spawn(acquirer, &a);
    EVENTUALLY(sem_waiters(s) == 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT); /* the head comes first */
    CHECK_EQ(sem_drain(s), 0);
    for (int c = 0; c < 2; c++) {
        run_child(held_back_child, s, c, 2, "FIFO mode, held-back permit: child");
        CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT); /* still held back here */
        CHECK_EQ(sem_waiters(s), 1);
    }
    CHECK_EQ(sem_release(s), SEM_OK);
    join(t);
    CHECK_EQ(a.result, SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
    puts("FIFO mode: children took the permit their parent's head waiter held back");
}

/* Forks while the parent's threads keep the semaphore's slow paths busy
 * (timed acquires that queue and time out, releases that walk the queue),
 * so that some children are born while a thread they do not have holds the
 * queue lock or is half-way through a walk. Every child must still use the
 * semaphore: release and acquire a permit, and serve a waiter of its own. */
#define STORMERS 3
#define STORM_CHILDREN 100
static atomic_int storm_stop;
static atomic_long storm_ops;

static void *stormer(void *arg) {
    rsem_semaphore *s = arg;
    while (!atomic_load(&storm_stop)) {
        if (sem_acquire_timed(s, 0.0002) == SEM_OK) {
            CHECK_EQ(sem_release(s), SEM_OK);
        }
        atomic_fetch_add(&storm_ops, 1);
    }
    return NULL;
}

static void storm_child(rsem_semaphore *s, int index) {
    (void)index;
    start_watchdog(20);
    /* The permit may be held by a thread the child does not have: then it
     * stays taken. Either way one more is released and taken back. */
    int64_t v = sem_value(s);
    CHECK(v == 0 || v == 1);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_acquire_timed(s, 10.0), SEM_OK);
    CHECK_EQ(sem_value(s), v);
    /* A waiter of the child's own, served by the child's release. */
    CHECK_EQ(sem_drain(s), v);
    atomic_int arrived = 0, done = 0;
    struct ask a = {s, 0, -100, &arrived, &done};
    pthread_t t = spawn(acquirer, &a);
    EVENTUALLY(sem_waiters(s) == 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    await_done(&done, 1, s, __LINE__);
    join(t);
    CHECK_EQ(a.result, SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    _exit(0);
}

static void fork_during_storm(const char *label, uint32_t flags) {
    rsem_semaphore *s = sem_new_ex(1, 10, flags);
    CHECK(s != NULL);
    atomic_store(&storm_stop, 0);
    pthread_t threads[STORMERS];
    for (int i = 0; i < STORMERS; i++) threads[i] = spawn(stormer, s);
    char what[64];
    snprintf(what, sizeof what, "%s: storm child", label);
    for (int c = 0; c < STORM_CHILDREN; c++) {
        long before = atomic_load(&storm_ops);
        while (atomic_load(&storm_ops) < before + 20) sched_yield(); /* the storm runs */
        run_child(storm_child, s, c, STORM_CHILDREN, what);
    }
    atomic_store(&storm_stop, 1);
    for (int i = 0; i < STORMERS; i++) join(threads[i]);
    CHECK_EQ(sem_value(s), 1); /* every permit taken in the parent came back */
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
    printf("%s: %d children forked during a storm of %ld operations\n", label, STORM_CHILDREN,
           atomic_load(&storm_ops));
}

int main(void) {
    start_watchdog(120);
    fork_with_waiters("default mode", 0);
    fork_with_waiters("FIFO mode", SEM_FIFO);
    fork_with_permit_held_back();
    fork_during_storm("default mode", 0);
    fork_during_storm("FIFO mode", SEM_FIFO);
    puts("fork: ok");
    return 0;
}
#else
int main(void) {
    puts("fork: skipped on Windows: no fork");
    puts("fork: ok");
    return 0;
}
#endif
