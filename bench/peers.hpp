// The implementations the benchmarks compare (glibc sem_t, libstdc++
// std::counting_semaphore, a mutex+condvar semaphore, rsem through its C
// ABI) behind one interface, and the measurements both bench.cpp and
// sweep.cpp take: CPU time, context switches and system calls per
// operation, and percentiles.
#pragma once

#include <linux/perf_event.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "rsem.h"

using Clock = std::chrono::steady_clock;

static inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- the implementations ---------------------------------------------------

struct PosixSem {
    static constexpr const char *name = "glibc sem_t";
    sem_t s;
    explicit PosixSem(long v) { sem_init(&s, 0, (unsigned)v); }
    ~PosixSem() { sem_destroy(&s); }
    void acquire() {
        while (sem_wait(&s) != 0) {
        }
    }
    bool try_acquire() { return sem_trywait(&s) == 0; }
    void release(long n = 1) {
        for (long i = 0; i < n; i++) sem_post(&s);
    }
    bool acquire_for(double secs) {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = ts.tv_nsec + (long long)(secs * 1e9);
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        for (;;) {
            if (sem_clockwait(&s, CLOCK_MONOTONIC, &ts) == 0) return true;
            if (errno == ETIMEDOUT) return false;
        }
    }
};

struct StdSem {
    static constexpr const char *name = "std::counting_semaphore";
    std::counting_semaphore<> s;
    explicit StdSem(long v) : s(v) {}
    void acquire() { s.acquire(); }
    bool try_acquire() { return s.try_acquire(); }
    void release(long n = 1) { s.release(n); }
    bool acquire_for(double secs) {
        return s.try_acquire_for(std::chrono::duration<double>(secs));
    }
};

// CPython's threading.Semaphore: a Condition (lock + condvar) around a count;
// release(n) notifies n waiters.
struct CondvarSem {
    static constexpr const char *name = "mutex+condvar";
    std::mutex m;
    std::condition_variable cv;
    long count;
    explicit CondvarSem(long v) : count(v) {}
    void acquire() {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return count > 0; });
        count--;
    }
    bool try_acquire() {
        std::lock_guard<std::mutex> lk(m);
        if (count == 0) return false;
        count--;
        return true;
    }
    void release(long n = 1) {
        std::lock_guard<std::mutex> lk(m);
        count += n;
        for (long i = 0; i < n; i++) cv.notify_one();
    }
    bool acquire_for(double secs) {
        auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(secs));
        std::unique_lock<std::mutex> lk(m);
        if (!cv.wait_until(lk, deadline, [&] { return count > 0; })) return false;
        count--;
        return true;
    }
};

struct Rsem {
    static constexpr const char *name = "rsem";
    rsem_semaphore *s;
    explicit Rsem(long v) : s(sem_new(v)) {}
    ~Rsem() { sem_free(s); }
    void acquire() { sem_acquire(s); }
    bool try_acquire() { return sem_try_acquire(s) == SEM_OK; }
    void release(long n = 1) {
        if (n == 1)
            sem_release(s);
        else
            sem_release_n(s, n);
    }
    bool acquire_for(double secs) { return sem_acquire_timed(s, secs) == SEM_OK; }
};

// ---- measurements ----------------------------------------------------------

// System calls made by this process and the threads it starts, counted by
// the kernel's raw_syscalls:sys_enter tracepoint through perf_event_open.
// Needs tracefs (mounted at /sys/kernel/tracing) and root or
// perf_event_paranoid <= -1; without them the bench prints "n/a".
static int syscall_counter = -1;

static inline void open_syscall_counter() {
    const char *paths[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                           "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    for (const char *path : paths) {
        FILE *f = fopen(path, "r");
        if (!f) continue;
        unsigned long long id = 0;
        bool ok = fscanf(f, "%llu", &id) == 1;
        fclose(f);
        if (!ok) continue;
        perf_event_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.type = PERF_TYPE_TRACEPOINT;
        attr.size = sizeof attr;
        attr.config = id;
        attr.inherit = 1;  // count the threads this process starts, too
        syscall_counter = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
        if (syscall_counter >= 0) return;
    }
}

static inline long syscalls_so_far() {
    long long n = 0;
    if (syscall_counter < 0 || read(syscall_counter, &n, sizeof n) != (ssize_t)sizeof n) return -1;
    return (long)n;
}

struct Usage {
    double cpu;     // user + system seconds, whole process
    long csw;       // voluntary + involuntary context switches
    long syscalls;  // system calls so far (-1: not countable here)
};

static inline Usage usage() {
    long syscalls = syscalls_so_far();
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return {ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                ru.ru_stime.tv_usec / 1e6,
            ru.ru_nvcsw + ru.ru_nivcsw, syscalls};
}

static inline double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    if (v.empty()) return NAN;
    size_t i = (size_t)std::min<double>(v.size() - 1, std::floor(p * (v.size() - 1) + 0.5));
    return v[i];
}

