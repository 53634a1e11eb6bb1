/* A program that uses an installed rsem: a producer hands five jobs to a
 * consumer through a semaphore, then the consumer shuts it down. */
#include <pthread.h>
#include <stdio.h>

#include <rsem.h>

static rsem_semaphore *jobs;

static void *producer(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) sem_release(jobs);
    return NULL;
}

int main(void) {
    jobs = sem_new(0);
    if (jobs == NULL) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, producer, NULL) != 0) return 1;
    int taken = 0;
    while (taken < 5 && sem_acquire_timed(jobs, 5.0) == SEM_OK) taken++;
    pthread_join(t, NULL);
    sem_shutdown(jobs);
    int closed = sem_acquire(jobs) == SEM_ECLOSED;
    sem_free(jobs);
    printf("consumer: took %d jobs, closed=%d\n", taken, closed);
    return taken == 5 && closed ? 0 : 1;
}
