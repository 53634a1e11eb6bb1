/* Process-shared semaphores (sem_new_shared, sem_open_named,
 * sem_unlink_named) with real processes: bad input, names, every existing
 * function on a shared handle, blocking and waking across fork() and
 * exec(), multi-permit wake-ups, timeouts, shutdown, children killed with
 * SIGKILL while blocked or while cycling, and freeing right after an
 * acquire. A hang is a failure: every wait for a child is bounded, and each
 * process has an alarm. Linux only; elsewhere the functions must say ENOSYS. */
#define _GNU_SOURCE
#include "test_util.h"

#include <string.h>

#if defined(__linux__)
#include "proc_util.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>

static char self_path[4096];

static int acquire_n(rsem_semaphore *sem, int64_t n) {
    return sem_acquire_many(sem, n, INFINITY) == SEM_OK ? 0 : 10;
}

static int acquire_expect_closed(rsem_semaphore *sem, int64_t n) {
    return sem_acquire_many(sem, n, INFINITY) == SEM_ECLOSED ? 0 : 11;
}

static void a_name(char *buf, size_t size, const char *what) {
    snprintf(buf, size, "/rsem-test-%d-%s", (int)getpid(), what);
}

static int shm_file_exists(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/rsem.%s", name + 1);
    return access(path, F_OK) == 0;
}

static void bad_input(void) {
    errno = 0;
    CHECK(sem_new_shared(-1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_new_shared(2, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_new_shared(0, (int64_t)SEM_SHARED_MAX + 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_new_shared(0, 1, 4) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_new_shared(0, 1, 8) == NULL);
    CHECK_EQ(errno, EINVAL);

    char name[64];
    a_name(name, sizeof name, "bad");
    errno = 0;
    CHECK(sem_open_named(NULL, SEM_CREATE, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    const char *bad_names[] = {"", "/", "a/b", "//a"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        errno = 0;
        CHECK(sem_open_named(bad_names[i], SEM_CREATE, 0600, 1, 1, 0) == NULL);
        CHECK_EQ(errno, EINVAL);
        CHECK_EQ(sem_unlink_named(bad_names[i]), SEM_EINVAL);
    }
    char long_name[300];
    memset(long_name, 'x', 251);
    long_name[251] = 0;
    CHECK(sem_open_named(long_name, SEM_CREATE, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_open_named(name, SEM_EXCL, 0600, 1, 1, 0) == NULL); /* EXCL needs CREATE */
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_open_named(name, 4, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_open_named(name, SEM_CREATE, 01600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_open_named(name, SEM_CREATE, 0600, 2, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(sem_open_named(name, SEM_CREATE, 0600, 1, 1, 8) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(!shm_file_exists(name)); /* nothing was created by any of those */
    CHECK(sem_open_named(name, 0, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(sem_unlink_named(NULL), SEM_EINVAL);
    errno = 0;
    CHECK_EQ(sem_unlink_named(name), SEM_ESYS);
    CHECK_EQ(errno, ENOENT);

    /* A file of that name that is not a semaphore is refused, and kept. */
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/rsem.%s", name + 1);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs("not a semaphore", f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(sem_open_named(name, SEM_CREATE, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(truncate(path, 65536) == 0); /* long enough, but no magic */
    CHECK(sem_open_named(name, 0, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(sem_unlink_named(name), SEM_OK);
}

/* Every function, on a shared semaphore of each kind (`flags`: plain,
 * SEM_RECOVER, SEM_FIFO, both). */
static void every_function_with(uint32_t flags) {
    rsem_semaphore *s = sem_new_shared(2, 3, flags);
    CHECK(s != NULL);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_max(s), 3);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_acquire(s), SEM_OK);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_timed(s, 0.0), SEM_TIMEDOUT);
    double t0 = now_s();
    CHECK_EQ(sem_acquire_timed(s, 0.05), SEM_TIMEDOUT);
    CHECK(now_s() - t0 >= 0.049);
    CHECK_EQ(sem_waiters(s), 0); /* the timed-out waiter left */
    CHECK_EQ(sem_acquire_until(s, 1, sem_clock_ns() + 20000000), SEM_TIMEDOUT);
    CHECK_EQ(sem_acquire_many(s, 4, INFINITY), SEM_EINVAL); /* above max */
    CHECK_EQ(sem_acquire_many(s, 0, INFINITY), SEM_EINVAL);
    CHECK_EQ(sem_release_n(s, 3), SEM_OK);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW); /* bounded at 3 */
    CHECK_EQ(sem_release_n(s, 0), SEM_EINVAL);
    CHECK_EQ(sem_value(s), 3);
    CHECK_EQ(sem_acquire_many(s, 3, INFINITY), SEM_OK);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    CHECK_EQ(sem_drain(s), 2);
    CHECK_EQ(sem_value(s), 0);
    rsem_ticket ticket;
    CHECK_EQ(sem_acquire_async(s, 1, INT64_MAX, (rsem_callback)1, NULL, &ticket), SEM_ENOTSUP);
    CHECK_EQ(sem_cancel(s, &ticket), SEM_ENOTPENDING); /* no queue, no lock taken */
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    CHECK_EQ(sem_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_try_acquire(s), SEM_ECLOSED);
    CHECK_EQ(sem_release(s), SEM_OK); /* releases keep counting */
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(sem_drain(s), 2);
    sem_free(s);

    /* The largest shared maximum works to the edge. */
    s = sem_new_shared(SEM_SHARED_MAX, SEM_SHARED_MAX, flags);
    CHECK(s != NULL);
    CHECK_EQ(sem_release(s), SEM_EOVERFLOW);
    CHECK_EQ(sem_acquire_many(s, SEM_SHARED_MAX, INFINITY), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_release_n(s, SEM_SHARED_MAX), SEM_OK);
    CHECK_EQ(sem_value(s), SEM_SHARED_MAX);
    sem_free(s);
}

static void every_function_on_a_shared_handle(void) {
    uint32_t kinds[] = {0, SEM_RECOVER, SEM_FIFO, SEM_FIFO | SEM_RECOVER};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) every_function_with(kinds[i]);
}

static void names(void) {
    char name[64];
    a_name(name, sizeof name, "names");
    rsem_semaphore *a = sem_open_named(name, SEM_CREATE | SEM_EXCL, 0600, 1, 5, 0);
    CHECK(a != NULL);
    CHECK(shm_file_exists(name));
    errno = 0;
    CHECK(sem_open_named(name, SEM_CREATE | SEM_EXCL, 0600, 1, 5, 0) == NULL);
    CHECK_EQ(errno, EEXIST);
    /* Open-or-create and open-only both find it; its parameters are kept. */
    rsem_semaphore *b = sem_open_named(name, SEM_CREATE, 0600, 0, 0, 0);
    rsem_semaphore *c = sem_open_named(name + 1, 0, 0, 0, 0, 0); /* no '/' */
    CHECK(b != NULL && c != NULL);
    CHECK(a != b && b != c);
    CHECK_EQ(sem_max(b), 5);
    CHECK_EQ(sem_release(a), SEM_OK);
    CHECK_EQ(sem_value(b), 2);
    CHECK_EQ(sem_acquire_many(c, 2, INFINITY), SEM_OK);
    CHECK_EQ(sem_value(a), 0);
    /* Removing the name: open handles keep working; a new one is new. */
    CHECK_EQ(sem_unlink_named(name), SEM_OK);
    CHECK(!shm_file_exists(name));
    CHECK(sem_open_named(name, 0, 0600, 0, 0, 0) == NULL);
    CHECK_EQ(errno, ENOENT);
    rsem_semaphore *d = sem_open_named(name, SEM_CREATE, 0640, 3, 3, 0);
    CHECK(d != NULL);
    CHECK_EQ(sem_value(d), 3);
    CHECK_EQ(sem_release(b), SEM_OK);
    CHECK_EQ(sem_value(a), 1);
    CHECK_EQ(sem_value(d), 3);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/rsem.%s", name + 1);
    CHECK(stat(path, &st) == 0);
    CHECK_EQ(st.st_mode & 0777, 0640 & ~(mode_t)umask(022));
    sem_free(a);
    sem_free(b);
    sem_free(c);
    sem_free(d);
    CHECK_EQ(sem_unlink_named(name), SEM_OK);
}

/* Another process that can write the file writes nonsense into the
 * semaphore's parameters and slow-path fields (here: the "shared" byte
 * cleared, and every pointer-sized field of the slow line set to a bogus
 * address). This process must not be sent down the in-process paths, which
 * follow pointers stored there: which handles are shared is known per
 * process, not read from the shared memory. (Crashed before that.) */
static void foreign_writes_cannot_crash(void) {
    char name[64], path[512];
    a_name(name, sizeof name, "foreign");
    snprintf(path, sizeof path, "/dev/shm/rsem.%s", name + 1);
    rsem_semaphore *s = sem_open_named(name, SEM_CREATE | SEM_EXCL, 0600, 0, 5, 0);
    CHECK(s != NULL);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    unsigned char zero = 0;
    uint64_t bogus = 0xdeadbeef;
    CHECK(fseek(f, 64 + 9, SEEK_SET) == 0); /* params: max (8 bytes), fifo, shared */
    CHECK(fwrite(&zero, 1, 1, f) == 1);
    CHECK(fseek(f, 128, SEEK_SET) == 0); /* the slow-path line(s) */
    for (int i = 0; i < 16; i++) CHECK(fwrite(&bogus, 8, 1, f) == 1);
    CHECK(fclose(f) == 0);
    CHECK_EQ(sem_acquire_timed(s, 0.01), SEM_TIMEDOUT);
    rsem_ticket ticket;
    CHECK_EQ(sem_cancel(s, &ticket), SEM_ENOTPENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_acquire(s), SEM_OK);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
    CHECK_EQ(sem_unlink_named(name), SEM_OK);
}

/* Two processes race to create one name, many times: every round one
 * semaphore results and both see it. */
static void creation_race(void) {
    char name[64];
    a_name(name, sizeof name, "race");
    for (int round = 0; round < 50; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            rsem_semaphore *s = sem_open_named(name, SEM_CREATE, 0600, 0, 100, 0);
            _exit(s != NULL && sem_release(s) == SEM_OK ? 0 : 1);
        }
        rsem_semaphore *s = sem_open_named(name, SEM_CREATE, 0600, 0, 100, 0);
        CHECK(s != NULL);
        CHECK_EQ(sem_release(s), SEM_OK);
        expect_exit_ok(pid);
        CHECK_EQ(sem_value(s), 2);
        sem_free(s);
        CHECK_EQ(sem_unlink_named(name), SEM_OK);
    }
}

static void blocking_across_fork(void) {
    rsem_semaphore *s = sem_new_shared(0, 10, 0);
    CHECK(s != NULL);
    pid_t child = fork_child(acquire_n, s, 1);
    EVENTUALLY(sem_waiters(s) == 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    expect_exit_ok(child);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);

    /* A 2-permit waiter queued first must not keep a 1-permit waiter asleep
     * while a permit is free: the release wakes both, the one that fits
     * takes it. */
    pid_t two = fork_child(acquire_n, s, 2);
    EVENTUALLY(sem_waiters(s) == 1);
    pid_t one = fork_child(acquire_n, s, 1);
    EVENTUALLY(sem_waiters(s) == 2);
    CHECK_EQ(sem_release(s), SEM_OK);
    expect_exit_ok(one);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    expect_exit_ok(two);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_waiters(s), 0);

    /* release(n) wakes n single-permit sleepers. */
    pid_t kids[4];
    for (int i = 0; i < 4; i++) kids[i] = fork_child(acquire_n, s, 1);
    EVENTUALLY(sem_waiters(s) == 4);
    CHECK_EQ(sem_release_n(s, 3), SEM_OK);
    EVENTUALLY(sem_waiters(s) == 1);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_release(s), SEM_OK);
    for (int i = 0; i < 4; i++) expect_exit_ok(kids[i]);
    CHECK_EQ(sem_value(s), 0);

    /* Shutdown wakes sleepers in other processes. */
    for (int i = 0; i < 3; i++) kids[i] = fork_child(acquire_expect_closed, s, 1 + i % 2);
    EVENTUALLY(sem_waiters(s) == 3);
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    for (int i = 0; i < 3; i++) expect_exit_ok(kids[i]);
    CHECK_EQ(sem_waiters(s), 0);
    sem_free(s);
}

/* A shutdown (or release) right after a thread registered to sleep, but
 * maybe before it is in the kernel: the thread must still wake, at once.
 * (This is why a shutdown sets a bit in the futex word: a waiter that
 * compared the count alone slept through it, and woke only at its 1 s
 * re-check. So rounds that take half a second or more are counted, and
 * more than 1 in 100 fails the test: a missing wake-up makes the test run
 * into its alarm.) */
struct racer {
    rsem_semaphore *sem;
    int result;
    atomic_int done;
};

static void *acquire_one(void *arg) {
    struct racer *r = arg;
    r->result = sem_acquire(r->sem);
    atomic_store(&r->done, 1);
    return NULL;
}

static void wake_races_registration(void) {
    int rounds = 3000, slow = 0;
    for (int round = 0; round < rounds; round++) {
        struct racer r = {sem_new_shared(0, 1, 0), -100, 0};
        CHECK(r.sem != NULL);
        pthread_t t = spawn(acquire_one, &r);
        EVENTUALLY(sem_waiters(r.sem) == 1);
        double t0 = now_s();
        if (round % 2) {
            CHECK_EQ(sem_shutdown(r.sem), SEM_OK);
        } else {
            CHECK_EQ(sem_release(r.sem), SEM_OK);
        }
        EVENTUALLY(atomic_load(&r.done) == 1);
        if (now_s() - t0 >= 0.5) slow++;
        join(t);
        CHECK_EQ(r.result, round % 2 ? SEM_ECLOSED : SEM_OK);
        CHECK_EQ(sem_waiters(r.sem), 0);
        sem_free(r.sem);
    }
    if (slow * 100 > rounds) {
        fprintf(stderr, "%d of %d wake-ups waited for the re-check\n", slow, rounds);
        exit(1);
    }
}

/* A release whose process dies between its compare-and-swap and its
 * futex wake: emulated by adding a permit to the state word directly (the
 * handle is the mapping, the word is at its start), with no wake. The
 * sleeper must notice by itself, within the 1 s re-check. */
static void lost_wake_is_bounded(void) {
    for (int round = 0; round < 3; round++) {
        struct racer r = {sem_new_shared(0, 1, 0), -100, 0};
        CHECK(r.sem != NULL);
        pthread_t t = spawn(acquire_one, &r);
        EVENTUALLY(sem_waiters(r.sem) == 1);
        struct timespec asleep = {0, 20000000}; /* let it reach the kernel */
        nanosleep(&asleep, NULL);
        __atomic_fetch_add((uint64_t *)(void *)r.sem, 1, __ATOMIC_SEQ_CST);
        double t0 = now_s();
        while (!atomic_load(&r.done)) {
            CHECK(now_s() - t0 < 3.0);
            sched_yield();
        }
        join(t);
        CHECK_EQ(r.result, SEM_OK);
        CHECK_EQ(sem_value(r.sem), 0);
        CHECK_EQ(sem_waiters(r.sem), 0);
        sem_free(r.sem);
    }
}

/* exec()ed child: opens the name, takes 1 permit, gives back 3. */
static int exec_child(const char *name) {
    rsem_semaphore *s = sem_open_named(name, 0, 0, 0, 0, 0);
    if (s == NULL) return 20;
    if (sem_acquire(s) != SEM_OK) return 21;
    if (sem_release_n(s, 3) != SEM_OK) return 22;
    sem_free(s);
    return 0;
}

static void across_exec(void) {
    char name[64];
    a_name(name, sizeof name, "exec");
    rsem_semaphore *s = sem_open_named(name, SEM_CREATE | SEM_EXCL, 0600, 0, 10, 0);
    CHECK(s != NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl(self_path, self_path, "exec-child", name, (char *)NULL);
        _exit(30);
    }
    EVENTUALLY(sem_waiters(s) == 1); /* the exec'd child blocked */
    CHECK_EQ(sem_release(s), SEM_OK);
    expect_exit_ok(pid);
    CHECK_EQ(sem_value(s), 3);
    sem_free(s);
    CHECK_EQ(sem_unlink_named(name), SEM_OK);
    CHECK(!shm_file_exists(name));
}

/* Children killed while blocked leave registrations behind; the count stays
 * right and live waiters are still woken. */
static void killed_waiters(void) {
    rsem_semaphore *s = sem_new_shared(0, 100, 0);
    CHECK(s != NULL);
    pid_t kids[3];
    for (int i = 0; i < 3; i++) kids[i] = fork_child(acquire_n, s, 1 + i % 2);
    EVENTUALLY(sem_waiters(s) == 3);
    for (int i = 0; i < 3; i++) {
        CHECK(kill(kids[i], SIGKILL) == 0);
        int status = wait_child(kids[i], 10.0, __LINE__);
        CHECK(WIFSIGNALED(status));
    }
    CHECK_EQ(sem_waiters(s), 3); /* stale, as documented */
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(sem_release_n(s, 2), SEM_OK);
    CHECK_EQ(sem_value(s), 2); /* nobody took them */
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_acquire(s), SEM_OK);
    pid_t live = fork_child(acquire_n, s, 1);
    EVENTUALLY(sem_waiters(s) == 4);
    CHECK_EQ(sem_release(s), SEM_OK);
    expect_exit_ok(live);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

/* Conservation and liveness under load: PROCS processes with THREADS
 * threads each cycle acquire/release (1 or 2 permits, some timed) on
 * PERMITS permits, checking that no more than PERMITS are ever held.
 * stress_exact: all finish, and every permit is back. stress_with_kills:
 * two processes are killed at random points; what they held is lost (no
 * recovery), so the survivors could starve: the parent then tops the count
 * up by TOPUP (more than the killed ones can hold) and the survivors must
 * all finish (a live waiter left asleep with permits free would hang
 * them), and the count must be PERMITS + TOPUP less what the killed ones
 * held when they died (their `held` counters, in shared memory, bracket
 * it). */
#define PROCS 6
#define THREADS 2
#define PERMITS 3
#define CYCLES 3000
#define TOPUP (2 * THREADS * 2)

struct board {
    atomic_long in_use;           /* permits held right now, all processes */
    atomic_long held[PROCS];      /* permits each process holds, +-1 around */
    atomic_int over;              /* in_use ever exceeded PERMITS */
    int killing;                  /* processes get killed: in_use may keep
                                     a dead one's permits, so skip `over` */
    atomic_long timeouts;
    atomic_int stop;              /* killing: cycle until this is set */
    atomic_long cycles;
};

struct cycler {
    rsem_semaphore *sem;
    struct board *board;
    int proc;
    unsigned seed;
};

static void *cycle(void *arg) {
    struct cycler *c = arg;
    for (int i = 0; c->board->killing ? !atomic_load(&c->board->stop) : i < CYCLES; i++) {
        c->seed = c->seed * 1103515245u + 12345u;
        int64_t n = 1 + (c->seed >> 16) % 2;
        int timed = (c->seed >> 20) % 4 == 0;
        int r = timed ? sem_acquire_many(c->sem, n, 0.0005) : sem_acquire_many(c->sem, n, INFINITY);
        if (r == SEM_TIMEDOUT) {
            atomic_fetch_add(&c->board->timeouts, 1);
            continue;
        }
        if (r != SEM_OK) exit(40);
        atomic_fetch_add(&c->board->held[c->proc], n);
        if (atomic_fetch_add(&c->board->in_use, n) + n > PERMITS && !c->board->killing)
            atomic_store(&c->board->over, 1);
        for (volatile int k = 0; k < 100; k++) {
        }
        if ((c->seed >> 24) % 4 == 0) sched_yield(); /* hold across a system call */
        atomic_fetch_sub(&c->board->in_use, n);
        atomic_fetch_sub(&c->board->held[c->proc], n);
        atomic_fetch_add(&c->board->cycles, 1);
        if (sem_release_n(c->sem, n) != SEM_OK) exit(41);
    }
    return NULL;
}

/* Forks PROCS processes of THREADS cycling threads each (seeds from `seed`). */
static void start_cyclers(rsem_semaphore *s, struct board *board, pid_t *pids, unsigned seed) {
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            alarm(120);
            struct cycler c[THREADS];
            pthread_t t[THREADS];
            for (int i = 0; i < THREADS; i++) {
                c[i] = (struct cycler){s, board, p, (unsigned)(p * seed + i * 104729 + 1)};
                t[i] = spawn(cycle, &c[i]);
            }
            for (int i = 0; i < THREADS; i++) join(t[i]);
            _exit(0);
        }
    }
}

static void stress_with_kills(void) {
    struct board *board =
        mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(board != MAP_FAILED);
    memset(board, 0, sizeof *board);
    board->killing = 1;
    rsem_semaphore *s = sem_new_shared(PERMITS, PERMITS + TOPUP, 0);
    CHECK(s != NULL);
    pid_t pids[PROCS];
    start_cyclers(s, board, pids, 7919);
    /* Kill two of them at random moments while they cycle. */
    unsigned seed = (unsigned)getpid();
    for (int k = 0; k < 2; k++) {
        seed = seed * 1103515245u + 12345u;
        struct timespec ts = {0, (long)(1000000 + (seed >> 8) % 20000000)};
        nanosleep(&ts, NULL);
        kill(pids[k], SIGKILL);
    }
    struct timespec more = {0, 20000000};
    nanosleep(&more, NULL);
    atomic_store(&board->stop, 1);
    CHECK_EQ(sem_release_n(s, TOPUP), SEM_OK);
    long lost_min = 0, lost_max = 0;
    for (int p = 0; p < PROCS; p++) {
        int status = wait_child(pids[p], 120.0, __LINE__);
        if (p < 2 && WIFSIGNALED(status)) {
            /* Between its acquire and its `held` increment, or its `held`
             * decrement and its release, a thread holds up to 2 permits
             * that `held` does not count. */
            long h = atomic_load(&board->held[p]);
            lost_min += h;
            lost_max += h + 2 * THREADS;
            continue;
        }
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
    int64_t v = sem_value(s), lost = PERMITS + TOPUP - v;
    CHECK(lost >= lost_min && lost <= lost_max && lost <= PERMITS);
    /* What the killed ones held is gone; what is free can be taken, by a
     * fresh process too. */
    for (int64_t i = 0; i < v; i++) CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    printf("stress with kills: %lld permits lost with 2 killed processes, %ld cycles, %ld "
           "timeouts\n",
           (long long)lost, (long)atomic_load(&board->cycles),
           (long)atomic_load(&board->timeouts));
    sem_free(s);
    munmap(board, sizeof *board);
}

/* Without any kill: exact conservation. */
static void stress_exact(void) {
    struct board *board =
        mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(board != MAP_FAILED);
    memset(board, 0, sizeof *board);
    rsem_semaphore *s = sem_new_shared(PERMITS, PERMITS, 0);
    CHECK(s != NULL);
    pid_t pids[PROCS];
    start_cyclers(s, board, pids, 31);
    for (int p = 0; p < PROCS; p++) expect_exit_ok(pids[p]);
    CHECK_EQ(atomic_load(&board->over), 0);
    CHECK_EQ(sem_value(s), PERMITS);
    CHECK_EQ(sem_waiters(s), 0);
    printf("stress: %ld cycles, %ld timeouts\n", (long)atomic_load(&board->cycles),
           (long)atomic_load(&board->timeouts));
    sem_free(s);
    munmap(board, sizeof *board);
}

/* A thread whose acquire returned frees (unmaps) its handle at once, while
 * the releasing thread may still be inside sem_release (glibc bug 12674). */
struct freer {
    rsem_semaphore *sem;
    atomic_int waiting;
};

static void *acquire_then_free(void *arg) {
    struct freer *f = arg;
    atomic_store(&f->waiting, 1);
    CHECK_EQ(sem_acquire(f->sem), SEM_OK);
    sem_free(f->sem);
    return NULL;
}

static void free_right_after_acquire(void) {
    /* Plain shared semaphores, then managed ones (whose release unlocks
     * their mutex and wakes after its last change). */
    uint32_t kinds[] = {0, SEM_RECOVER, SEM_FIFO};
    for (int i = 0; i < 3000; i++) {
        uint32_t flags = kinds[i < 2000 ? 0 : 1 + i % 2];
        struct freer f = {sem_new_shared(0, 1, flags), 0};
        CHECK(f.sem != NULL);
        pthread_t t = spawn(acquire_then_free, &f);
        EVENTUALLY(atomic_load(&f.waiting) == 1);
        if (i % 2) EVENTUALLY(sem_waiters(f.sem) == 1);
        CHECK_EQ(sem_release(f.sem), SEM_OK); /* last touch of f.sem */
        join(t);
    }
}

/* Runs one part, naming it first (a hang then says where). */
#define STEP(part)                                                             \
    do {                                                                       \
        fprintf(stderr, "shared: %s\n", #part);                                \
        part();                                                                \
    } while (0)

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "exec-child") == 0) return exec_child(argv[2]);
    alarm(300);
    ssize_t len = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    CHECK(len > 0);
    self_path[len] = 0;
    STEP(bad_input);
    STEP(every_function_on_a_shared_handle);
    STEP(names);
    STEP(foreign_writes_cannot_crash);
    STEP(creation_race);
    STEP(blocking_across_fork);
    STEP(wake_races_registration);
    STEP(lost_wake_is_bounded);
    STEP(across_exec);
    STEP(killed_waiters);
    STEP(stress_exact);
    STEP(stress_with_kills);
    STEP(free_right_after_acquire);
    puts("shared: ok");
    return 0;
}

#else /* not Linux: the functions exist and say ENOSYS */

int main(void) {
    errno = 0;
    CHECK(sem_new_shared(1, 1, 0) == NULL);
    CHECK_EQ(errno, ENOSYS);
    errno = 0;
    CHECK(sem_open_named("/x", SEM_CREATE, 0600, 1, 1, 0) == NULL);
    CHECK_EQ(errno, ENOSYS);
    errno = 0;
    CHECK_EQ(sem_unlink_named("/x"), SEM_ESYS);
    CHECK_EQ(errno, ENOSYS);
    puts("shared: ok");
    return 0;
}
#endif
