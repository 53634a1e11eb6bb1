/* Native threads for the Node tests: they hold permits of a semaphore that
 * JavaScript shares, through the same library. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "rsem.h"

static rsem_semaphore *g_sem;
static int g_rounds;
static atomic_long g_done, g_inside, g_worst;
static pthread_t g_threads[16];
static int g_count;

static void *holder(void *arg) {
    (void)arg;
    for (int i = 0; i < g_rounds; i++) {
        if (sem_acquire(g_sem) != SEM_OK) return (void *)1;
        long in = atomic_fetch_add(&g_inside, 1) + 1;
        long w = atomic_load(&g_worst);
        while (in > w && !atomic_compare_exchange_weak(&g_worst, &w, in)) {
        }
        for (volatile int k = 0; k < 20000; k++) {
        }
        atomic_fetch_sub(&g_inside, 1);
        sem_release(g_sem);
        atomic_fetch_add(&g_done, 1);
    }
    return NULL;
}

int holders_start(rsem_semaphore *sem, int threads, int rounds) {
    g_sem = sem;
    g_rounds = rounds;
    g_count = threads > 16 ? 16 : threads;
    for (int i = 0; i < g_count; i++)
        if (pthread_create(&g_threads[i], NULL, holder, NULL) != 0) return -1;
    return 0;
}

/* Joins them; returns how many rounds they completed. */
long holders_join(void) {
    for (int i = 0; i < g_count; i++) pthread_join(g_threads[i], NULL);
    return atomic_load(&g_done);
}

/* Enter/leave for JavaScript, so both sides count the same "inside". */
long holders_enter(void) {
    long in = atomic_fetch_add(&g_inside, 1) + 1;
    long w = atomic_load(&g_worst);
    while (in > w && !atomic_compare_exchange_weak(&g_worst, &w, in)) {
    }
    return in;
}
void holders_leave(void) { atomic_fetch_sub(&g_inside, 1); }
long holders_worst(void) { return atomic_load(&g_worst); }
