// Memory per semaphore: the size of each implementation's object, and the
// resident memory a program pays per semaphore when it makes a million of
// them one by one (as a program with a semaphore per object would: rsem
// through sem_new, the peers with new).
//
// Usage: memory [COUNT]   (run it through scripts/bench --memory)
#include <semaphore.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <condition_variable>
#include <semaphore>
#include <vector>

#include "rsem.h"

// Resident set size of this process now, in bytes (from /proc/self/statm).
static long rss() {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == nullptr || fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    if (f) fclose(f);
    return resident * 4096;
}

struct CondvarSem {
    std::mutex m;
    std::condition_variable cv;
    long count = 1;
};

// Each implementation in a child process of its own, so that none reuses
// memory another freed.
template <class Make, class Free>
static void measure(const char *name, long object_size, long count, Make make, Free free_one) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<void *> all;
        all.reserve(count);
        long before = rss();
        for (long i = 0; i < count; i++) all.push_back(make());
        long after = rss();
        printf("%-26s | %8ld | %8.1f\n", name, object_size, double(after - before) / count);
        for (void *p : all) free_one(p);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, nullptr, 0);
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 1000000;
    printf("%ld semaphores, each made on its own\n", count);
    printf("%-26s | %8s | %s\n", "implementation", "sizeof", "resident bytes per semaphore");
    measure("glibc sem_t", sizeof(sem_t), count, [] {
        sem_t *s = new sem_t;
        sem_init(s, 0, 1);
        return (void *)s;
    }, [](void *p) { delete (sem_t *)p; });
    measure("std::counting_semaphore", sizeof(std::counting_semaphore<>), count,
            [] { return (void *)new std::counting_semaphore<>(1); },
            [](void *p) { delete (std::counting_semaphore<> *)p; });
    measure("mutex+condvar", sizeof(CondvarSem), count, [] { return (void *)new CondvarSem; },
            [](void *p) { delete (CondvarSem *)p; });
    // 256: size_of::<Semaphore>(), which the layout unit test in
    // src/semaphore.rs pins (the C ABI keeps it opaque).
    measure("rsem (sem_new)", 256, count, [] { return (void *)sem_new(1); },
            [](void *p) { sem_free((rsem_semaphore *)p); });
    return 0;
}
