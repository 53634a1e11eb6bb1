/* Async acquires (sem_acquire_async, sem_acquire_notify, sem_cancel): every
 * outcome, the rules that resolve races (exactly one completion, never after
 * sem_cancel won, never touched after), one queue shared with blocked
 * threads, bad input, and a stress run that checks conservation of permits
 * and that no pending ticket is left while it could be served. */
#include "test_util.h" /* first: it sets the feature-test macros */

#include <stdatomic.h>
#include <string.h>

/* What a callback saw; one per ticket. */
typedef struct {
    rsem_ticket ticket;
    atomic_int calls;
    atomic_int status;
    atomic_int done; /* set last: the test may reuse the record after it */
} record;

static void on_done(void *ctx, rsem_ticket *ticket, int status) {
    record *r = (record *)ctx;
    CHECK(ticket == &r->ticket);
    atomic_store(&r->status, status);
    atomic_fetch_add(&r->calls, 1);
    atomic_store(&r->done, 1);
}

static void fresh(record *r) {
    memset(r, 0xA5, sizeof r->ticket); /* rsem must not rely on zeroed tickets */
    atomic_store(&r->calls, 0);
    atomic_store(&r->status, 99);
    atomic_store(&r->done, 0);
}

static int submit(rsem_semaphore *s, int64_t n, int64_t deadline, record *r) {
    fresh(r);
    return sem_acquire_async(s, n, deadline, on_done, r, &r->ticket);
}

static void outcomes(void) {
    rsem_semaphore *s = sem_new(1);
    record r;
    /* Free: SEM_OK at once, no callback. */
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    CHECK_EQ(atomic_load(&r.calls), 0);
    /* A deadline already passed: a non-blocking attempt. */
    CHECK_EQ(submit(s, 1, sem_clock_ns() - 1, &r), SEM_TIMEDOUT);
    CHECK_EQ(sem_waiters(s), 0);
    /* Pending; a release hands it the permit, on the releasing thread. */
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_PENDING);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(atomic_load(&r.calls), 0);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&r.calls), 1);
    CHECK_EQ(atomic_load(&r.status), SEM_OK);
    CHECK_EQ(sem_value(s), 0); /* the permit is the ticket's */
    CHECK_EQ(sem_waiters(s), 0);
    /* Cancel wins: the callback has run (SEM_CANCELLED) when it returns. */
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_PENDING);
    CHECK_EQ(sem_cancel(s, &r.ticket), SEM_OK);
    CHECK_EQ(atomic_load(&r.calls), 1);
    CHECK_EQ(atomic_load(&r.status), SEM_CANCELLED);
    CHECK_EQ(sem_cancel(s, &r.ticket), SEM_ENOTPENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 1); /* nothing went to the cancelled ticket */
    CHECK_EQ(atomic_load(&r.calls), 1);
    /* A grant first: cancel finds nothing, the permit is the caller's. */
    CHECK_EQ(sem_try_acquire(s), SEM_OK);
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_PENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_cancel(s, &r.ticket), SEM_ENOTPENDING);
    CHECK_EQ(atomic_load(&r.status), SEM_OK);
    CHECK_EQ(atomic_load(&r.calls), 1);
    /* The deadline: the timer thread times it out (nothing taken). */
    CHECK_EQ(submit(s, 1, sem_clock_ns() + 20 * 1000000, &r), SEM_PENDING);
    EVENTUALLY(atomic_load(&r.done));
    CHECK_EQ(atomic_load(&r.status), SEM_TIMEDOUT);
    CHECK_EQ(sem_waiters(s), 0);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(atomic_load(&r.calls), 1);
    /* Shutdown completes pending tickets with SEM_ECLOSED. */
    CHECK_EQ(sem_drain(s), 1);
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_PENDING);
    CHECK_EQ(sem_shutdown(s), SEM_OK);
    CHECK_EQ(atomic_load(&r.status), SEM_ECLOSED);
    CHECK_EQ(submit(s, 1, INT64_MAX, &r), SEM_ECLOSED);
    CHECK_EQ(atomic_load(&r.calls), 0);
    sem_free(s);
    /* sem_free with tickets pending: each completes with SEM_ECLOSED. */
    s = sem_new(0);
    record a, b;
    CHECK_EQ(submit(s, 1, INT64_MAX, &a), SEM_PENDING);
    CHECK_EQ(submit(s, 1, sem_clock_ns() + 60 * 1000000000LL, &b), SEM_PENDING);
    sem_free(s);
    CHECK_EQ(atomic_load(&a.status), SEM_ECLOSED);
    CHECK_EQ(atomic_load(&b.status), SEM_ECLOSED);
    CHECK_EQ(atomic_load(&a.calls) + atomic_load(&b.calls), 2);
}

static void bad_input(void) {
    rsem_semaphore *s = sem_new_bounded(2);
    record r;
    fresh(&r);
    CHECK_EQ(sem_acquire_async(NULL, 1, INT64_MAX, on_done, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_acquire_async(s, 1, INT64_MAX, NULL, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_acquire_async(s, 1, INT64_MAX, on_done, &r, NULL), SEM_EINVAL);
    CHECK_EQ(sem_acquire_async(s, 0, INT64_MAX, on_done, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_acquire_async(s, -1, INT64_MAX, on_done, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_acquire_async(s, 3, INT64_MAX, on_done, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_cancel(NULL, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_cancel(s, NULL), SEM_EINVAL);
    CHECK_EQ(sem_cancel(s, &r.ticket), SEM_ENOTPENDING);
    CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, NULL, &r, &r.ticket), SEM_EINVAL);
    CHECK_EQ(sem_notifier_fd(NULL), -1);
    CHECK_EQ(sem_notifier_drain(NULL, NULL, 0), SEM_EINVAL);
    CHECK_EQ(sem_notifier_free(NULL), SEM_EINVAL);
    rsem_notifier *nt = sem_notifier_new();
    CHECK(nt != NULL);
    CHECK_EQ(sem_notifier_drain(nt, NULL, 1), SEM_EINVAL);
    CHECK_EQ(sem_notifier_drain(nt, NULL, -1), SEM_EINVAL);
    CHECK_EQ(sem_notifier_drain(nt, NULL, 0), 0);
    CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, nt, &r, NULL), SEM_EINVAL);
    CHECK_EQ(sem_value(s), 2);
    CHECK_EQ(atomic_load(&r.calls), 0);
    CHECK_EQ(sem_notifier_free(nt), SEM_OK);
    sem_free(s);
}

/* One queue: blocked threads and tickets served in arrival order (FIFO),
 * with the head-of-line rule for multi-permit requests. */
static void *blocked_acquire(void *arg) {
    return (void *)(intptr_t)sem_acquire((rsem_semaphore *)arg);
}

static void one_queue(void) {
    rsem_semaphore *s = sem_new_ex(0, 100, SEM_FIFO);
    record big, small;
    pthread_t t = spawn(blocked_acquire, s); /* 1st: a thread */
    EVENTUALLY(sem_waiters(s) == 1);
    CHECK_EQ(submit(s, 2, INT64_MAX, &big), SEM_PENDING); /* 2nd: 2 permits */
    CHECK_EQ(submit(s, 1, INT64_MAX, &small), SEM_PENDING); /* 3rd: 1 */
    CHECK_EQ(sem_waiters(s), 3);
    CHECK_EQ(sem_release(s), SEM_OK); /* to the thread, which came first */
    CHECK_EQ((intptr_t)join(t), SEM_OK);
    CHECK_EQ(atomic_load(&big.calls) + atomic_load(&small.calls), 0);
    CHECK_EQ(sem_release(s), SEM_OK); /* the head needs 2: nobody barges */
    CHECK_EQ(atomic_load(&big.calls) + atomic_load(&small.calls), 0);
    CHECK_EQ(sem_try_acquire(s), SEM_TIMEDOUT);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&big.status), SEM_OK);
    CHECK_EQ(atomic_load(&small.calls), 0);
    /* A thread queued behind a ticket waits its turn too. */
    t = spawn(blocked_acquire, s);
    EVENTUALLY(sem_waiters(s) == 2);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&small.status), SEM_OK);
    CHECK_EQ(sem_waiters(s), 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ((intptr_t)join(t), SEM_OK);
    /* Cancelling the head lets the ones behind it through. */
    CHECK_EQ(submit(s, 5, INT64_MAX, &big), SEM_PENDING);
    CHECK_EQ(submit(s, 1, INT64_MAX, &small), SEM_PENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&small.calls), 0);
    CHECK_EQ(sem_cancel(s, &big.ticket), SEM_OK);
    CHECK_EQ(atomic_load(&big.status), SEM_CANCELLED);
    CHECK_EQ(atomic_load(&small.status), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    /* A head that times out lets the ones behind it through: the timer
     * thread serves them. */
    CHECK_EQ(submit(s, 5, sem_clock_ns() + 20 * 1000000, &big), SEM_PENDING);
    CHECK_EQ(submit(s, 1, INT64_MAX, &small), SEM_PENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&small.calls), 0);
    EVENTUALLY(atomic_load(&small.done) && atomic_load(&big.done));
    CHECK_EQ(atomic_load(&big.status), SEM_TIMEDOUT);
    CHECK_EQ(atomic_load(&small.status), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);

    /* Default mode: a ticket that fits is handed the permits by the release
     * (running threads cannot take them first). */
    s = sem_new(0);
    CHECK_EQ(submit(s, 2, INT64_MAX, &big), SEM_PENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&big.calls), 0);
    CHECK_EQ(sem_value(s), 1);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(atomic_load(&big.status), SEM_OK);
    CHECK_EQ(sem_value(s), 0);
    sem_free(s);
}

/* A callback that calls rsem: re-submits on the same semaphore until it has
 * been granted `rounds` times (rsem holds no lock while it runs). */
typedef struct {
    rsem_semaphore *s;
    rsem_ticket ticket;
    atomic_int grants;
    int rounds;
} chain;

static void on_chain(void *ctx, rsem_ticket *ticket, int status) {
    chain *c = (chain *)ctx;
    CHECK_EQ(status, SEM_OK);
    int g = atomic_fetch_add(&c->grants, 1) + 1;
    CHECK_EQ(sem_release(c->s), SEM_OK);
    if (g < c->rounds) {
        int r = sem_acquire_async(c->s, 1, INT64_MAX, on_chain, c, ticket);
        CHECK(r == SEM_OK || r == SEM_PENDING);
        if (r == SEM_OK)
            on_chain(c, ticket, SEM_OK);
    }
}

static void reentrant_callbacks(void) {
    chain c;
    c.s = sem_new(0);
    atomic_store(&c.grants, 0);
    c.rounds = 1000;
    CHECK_EQ(sem_acquire_async(c.s, 1, INT64_MAX, on_chain, &c, &c.ticket), SEM_PENDING);
    CHECK_EQ(sem_release(c.s), SEM_OK);
    CHECK_EQ(atomic_load(&c.grants), 1000);
    CHECK_EQ(sem_value(c.s), 1);
    sem_free(c.s);
}

#ifdef __linux__
#include <sys/epoll.h>
#include <unistd.h>

/* The notifier with an epoll loop: completions arrive on this thread only,
 * in batches, while another thread releases. */
typedef struct {
    rsem_semaphore *s;
    int n;
} releaser_args;

static void *releaser(void *arg) {
    releaser_args *a = (releaser_args *)arg;
    for (int i = 0; i < a->n; i++)
        CHECK_EQ(sem_release(a->s), SEM_OK);
    return NULL;
}

static void notifier_loop(int verbose) {
    enum { N = 64 };
    static rsem_ticket tickets[N];
    static int seen[N];
    memset(seen, 0, sizeof seen);
    rsem_semaphore *s = sem_new(0);
    rsem_notifier *nt = sem_notifier_new();
    CHECK(nt != NULL);
    int fd = sem_notifier_fd(nt);
    CHECK(fd >= 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    for (intptr_t i = 0; i < N; i++)
        CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, nt, (void *)i, &tickets[i]), SEM_PENDING);
    /* One more that will time out, and one that is cancelled. */
    static rsem_ticket late, gone;
    CHECK_EQ(sem_acquire_notify(s, 1, sem_clock_ns() + 10 * 1000000, nt, (void *)-1, &late), SEM_PENDING);
    CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, nt, (void *)-2, &gone), SEM_PENDING);
    CHECK_EQ(sem_cancel(s, &gone), SEM_OK);
    CHECK_EQ(sem_notifier_free(nt), SEM_EBUSY);
    releaser_args args = {s, N};
    pthread_t t = spawn(releaser, &args);
    int got = 0, timed_out = 0, cancelled = 0, batches = 0;
    double t0 = now_s();
    while (got < N || !timed_out || !cancelled) {
        CHECK(now_s() - t0 < 20.0);
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 1000) != 1)
            continue;
        rsem_completion done[8];
        int64_t k = sem_notifier_drain(nt, done, 8);
        CHECK(k >= 0);
        batches += k > 0;
        for (int64_t j = 0; j < k; j++) {
            intptr_t i = (intptr_t)done[j].ctx;
            if (i == -1) {
                CHECK(done[j].ticket == &late);
                CHECK_EQ(done[j].status, SEM_TIMEDOUT);
                timed_out++;
            } else if (i == -2) {
                CHECK(done[j].ticket == &gone);
                CHECK_EQ(done[j].status, SEM_CANCELLED);
                cancelled++;
            } else {
                CHECK(i >= 0 && i < N && done[j].ticket == &tickets[i]);
                CHECK_EQ(done[j].status, SEM_OK);
                CHECK_EQ(seen[i]++, 0);
                got++;
            }
        }
    }
    join(t);
    CHECK_EQ(timed_out, 1);
    CHECK_EQ(cancelled, 1);
    CHECK_EQ(sem_value(s), 0);
    /* Nothing more: the descriptor is quiet and a drain finds nothing. */
    rsem_completion extra[1];
    CHECK_EQ(sem_notifier_drain(nt, extra, 1), 0);
    struct epoll_event out;
    CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
    /* The loop releases on its own thread, quietly, and drains at once:
     * the descriptor never becomes readable. */
    static rsem_ticket own;
    CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, nt, (void *)-3, &own), SEM_PENDING);
    CHECK_EQ(sem_notifier_quiet(nt, 1), SEM_OK);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(sem_notifier_quiet(nt, 0), SEM_OK);
    CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
    CHECK_EQ(sem_notifier_drain(nt, extra, 1), 1);
    CHECK(extra[0].ticket == &own && extra[0].status == SEM_OK);
    CHECK_EQ(sem_notifier_quiet(NULL, 1), SEM_EINVAL);
    CHECK_EQ(sem_notifier_quiet(nt, 0), SEM_OK); /* unmatched: ignored */
    /* ... and the next completion signals again. */
    CHECK_EQ(sem_acquire_notify(s, 1, INT64_MAX, nt, (void *)-3, &own), SEM_PENDING);
    CHECK_EQ(sem_release(s), SEM_OK);
    CHECK_EQ(epoll_wait(ep, &out, 1, 0), 1);
    CHECK_EQ(sem_notifier_drain(nt, extra, 1), 1);
    CHECK_EQ(epoll_wait(ep, &out, 1, 0), 0);
    CHECK_EQ(sem_value(s), 0);
    /* Drained, but the releasing thread may still be finishing its last
     * push (SEM_EBUSY for that moment). */
    EVENTUALLY(sem_notifier_free(nt) == SEM_OK);
    close(ep);
    sem_free(s);
    if (verbose)
        printf("  notifier: %d completions in %d batches\n", N + 2, batches);
}
#endif

/* Stress: threads race async acquires (some with short deadlines, some
 * cancelled at once or later) against releases and blocked acquirers.
 * Conservation: every granted permit is released again, so the count ends
 * where it began; exactly one completion per SEM_PENDING; and at quiescent
 * points nobody is queued while permits are free. */
enum { WORKERS = 6, ROUNDS = 4000, PERMITS = 1 };
static rsem_semaphore *g_sem;
static atomic_long g_pending, g_completions, g_held, g_outcome[4];

typedef struct {
    rsem_ticket ticket;
    atomic_int state; /* 0 idle, 1 pending, 2 completed */
    atomic_int status;
} slot;

static void on_slot(void *ctx, rsem_ticket *ticket, int status) {
    slot *sl = (slot *)ctx;
    (void)ticket;
    CHECK_EQ(atomic_load(&sl->state), 1);
    atomic_store(&sl->status, status);
    atomic_fetch_add(&g_completions, 1);
    atomic_fetch_add(&g_outcome[status == SEM_OK ? 0 : status == SEM_TIMEDOUT ? 1 : 2], 1);
    if (status == SEM_OK) {
        atomic_fetch_add(&g_held, 1);
        CHECK(atomic_load(&g_held) <= PERMITS);
        atomic_fetch_sub(&g_held, 1);
        CHECK_EQ(sem_release(g_sem), SEM_OK);
    } else {
        CHECK(status == SEM_TIMEDOUT || status == SEM_CANCELLED);
    }
    atomic_store(&sl->state, 2);
}

/* Holds a permit for a moment, so that others queue. */
static void hold_a_while(void) {
    for (volatile int i = 0; i < 20000; i++) {
    }
}

static void *stress_worker(void *arg) {
    unsigned seed = (unsigned)(intptr_t)arg * 2654435761u + 1;
    slot *slots = calloc(8, sizeof(slot));
    for (int round = 0; round < ROUNDS; round++) {
        seed = seed * 1103515245u + 12345u;
        slot *sl = &slots[(seed >> 8) % 8];
        if (atomic_load(&sl->state) == 1) {
            /* Still pending: cancel it, or leave it to a grant/deadline. */
            if ((seed >> 16) % 2 == 0 && sem_cancel(g_sem, &sl->ticket) == SEM_OK)
                CHECK_EQ(atomic_load(&sl->state), 2); /* ran before return */
            continue;
        }
        int kind = (seed >> 12) % 4;
        if (kind == 0) {
            /* A blocked thread in the same queue. */
            int r = sem_acquire_timed(g_sem, 0.001);
            if (r == SEM_OK) {
                hold_a_while();
                CHECK_EQ(sem_release(g_sem), SEM_OK);
            }
            continue;
        }
        /* Deadlines of 20-200 us: some expire even when grants are quick. */
        int64_t deadline = kind == 1 ? sem_clock_ns() + 20000 + (seed >> 20) % 180000 : INT64_MAX;
        atomic_store(&sl->state, 1);
        int r = sem_acquire_async(g_sem, 1, deadline, on_slot, sl, &sl->ticket);
        if (r == SEM_PENDING) {
            atomic_fetch_add(&g_pending, 1);
            if (kind == 3 && sem_cancel(g_sem, &sl->ticket) == SEM_OK)
                CHECK_EQ(atomic_load(&sl->state), 2);
        } else if (r == SEM_TIMEDOUT) {
            CHECK_EQ(kind, 1); /* the deadline passed before the call */
            atomic_store(&sl->state, 0);
        } else {
            CHECK_EQ(r, SEM_OK);
            atomic_store(&sl->state, 0);
            hold_a_while();
            CHECK_EQ(sem_release(g_sem), SEM_OK);
        }
    }
    /* Liveness: what is still pending is served or times out without
     * help (every grant releases again, so permits keep coming free while
     * anything is queued): a ticket left queued with permits free fails. */
    for (int i = 0; i < 8; i++)
        EVENTUALLY(atomic_load(&slots[i].state) != 1);
    free(slots);
    return NULL;
}

static void stress(rsem_semaphore *s) {
    g_sem = s;
    atomic_store(&g_pending, 0);
    atomic_store(&g_completions, 0);
    for (int i = 0; i < 4; i++)
        atomic_store(&g_outcome[i], 0);
    /* Rounds until every race was run (at most 4: which outcome wins is up
     * to timing, and a slow machine or wine may see no timeout in one),
     * each ending with conservation and liveness checked. */
    for (int attempt = 0; attempt < 4; attempt++) {
        pthread_t t[WORKERS];
        for (intptr_t i = 0; i < WORKERS; i++)
            t[i] = spawn(stress_worker, (void *)(i + attempt * WORKERS));
        for (int i = 0; i < WORKERS; i++)
            join(t[i]);
        CHECK_EQ(atomic_load(&g_completions), atomic_load(&g_pending));
        CHECK_EQ(sem_waiters(s), 0);
        CHECK_EQ(sem_value(s), PERMITS);
        printf("  stress: %ld pending: %ld granted, %ld timed out, %ld cancelled\n",
               atomic_load(&g_pending), atomic_load(&g_outcome[0]),
               atomic_load(&g_outcome[1]), atomic_load(&g_outcome[2]));
        if (atomic_load(&g_outcome[0]) > 0 && atomic_load(&g_outcome[1]) > 0 &&
            atomic_load(&g_outcome[2]) > 0)
            break;
    }
    /* Every race was run. */
    CHECK(atomic_load(&g_outcome[0]) > 0 && atomic_load(&g_outcome[1]) > 0 &&
          atomic_load(&g_outcome[2]) > 0);
    sem_free(s);
}

int main(void) {
    outcomes();
    bad_input();
    one_queue();
    reentrant_callbacks();
#ifdef __linux__
    /* Many rounds: a lost signal between a push and a drain is a matter of
     * timing (one round caught it about one time in three). */
    for (int round = 0; round < 50; round++)
        notifier_loop(round == 0);
#endif
    stress(sem_new_bounded(PERMITS));
    stress(sem_new_ex(PERMITS, PERMITS, SEM_FIFO));
    printf("async_acquire: ok\n");
    return 0;
}
