// Process-shared semaphores against their peers, measured in the same run:
// rsem's shared semaphores (anonymous and named) against glibc's sem_t with
// pshared = 1 in shared memory and POSIX named semaphores (sem_open), and
// rsem's in-process semaphore for the uncontended pair.
//
//   uncontended  acquire + release by one thread, ns per pair
//   ping-pong    two processes pass a permit back and forth through two
//                semaphores, us per round trip
//   contended    P processes on K permits, each looping acquire, ~100 ns of
//                work, release, for a fixed time: M operations/s, and CPU
//                time per operation
//
// Implementations are interleaved round by round (the machine is shared and
// noisy); each figure is the median of the rounds. Ratios are rsem / the
// best peer (lower is better for times, higher for throughput).
//
//   shared [--quick] [--rounds N]
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "rsem.h"

namespace {

std::atomic<int> sink;  // the critical section's work

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

double cpu_s() {  // this process and its waited-for children
    rusage self{}, kids{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return s(self.ru_utime) + s(self.ru_stime) + s(kids.ru_utime) + s(kids.ru_stime);
}

[[noreturn]] void die(const char* what) {
    perror(what);
    std::exit(1);
}

// Shared memory for peers' objects and counters, inherited by children.
void* shared_pages(size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

// One implementation: make a semaphore (in memory children share), P, V.
struct Impl {
    const char* name;
    bool rsem;
    void* (*make)(int value);
    void (*acquire)(void*);
    void (*release)(void*);
    void (*destroy)(void*);
};

std::string unique_name(const char* what) {
    static int n = 0;
    return "/rsem-bench-" + std::to_string(getpid()) + "-" + what + std::to_string(n++);
}

void rsem_acquire(void* s) {
    if (sem_acquire(static_cast<rsem_semaphore*>(s)) != SEM_OK) die("sem_acquire");
}
void rsem_release(void* s) {
    if (sem_release(static_cast<rsem_semaphore*>(s)) != SEM_OK) die("sem_release");
}
void rsem_destroy(void* s) { sem_free(static_cast<rsem_semaphore*>(s)); }

void* make_rsem_local(int value) { return sem_new(value); }
void* make_rsem_shared(int value) {
    void* s = sem_new_shared(value, SEM_SHARED_MAX, 0);
    if (!s) die("sem_new_shared");
    return s;
}
void* make_rsem_recover(int value) {
    void* s = sem_new_shared(value, SEM_SHARED_MAX, SEM_RECOVER);
    if (!s) die("sem_new_shared(SEM_RECOVER)");
    return s;
}
void* make_rsem_fifo(int value) {
    void* s = sem_new_shared(value, SEM_SHARED_MAX, SEM_FIFO);
    if (!s) die("sem_new_shared(SEM_FIFO)");
    return s;
}
void* make_rsem_named(int value) {
    std::string name = unique_name("rsem");
    void* s = sem_open_named(name.c_str(), SEM_CREATE | SEM_EXCL, 0600, value, SEM_SHARED_MAX, 0);
    if (!s) die("sem_open_named");
    sem_unlink_named(name.c_str());  // the handle lives on
    return s;
}

void posix_acquire(void* s) {
    while (sem_wait(static_cast<sem_t*>(s)) != 0)
        if (errno != EINTR) die("sem_wait");
}
void posix_release(void* s) {
    if (sem_post(static_cast<sem_t*>(s)) != 0) die("sem_post");
}
void* make_pshared(int value) {
    auto* s = static_cast<sem_t*>(shared_pages(sizeof(sem_t)));
    if (sem_init(s, 1, value) != 0) die("sem_init");
    return s;
}
void destroy_pshared(void* s) {
    sem_destroy(static_cast<sem_t*>(s));
    munmap(s, sizeof(sem_t));
}
void* make_sem_open(int value) {
    std::string name = unique_name("posix");
    sem_t* s = sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, value);
    if (s == SEM_FAILED) die("sem_open");
    sem_unlink(name.c_str());
    return s;
}
void destroy_sem_open(void* s) { sem_close(static_cast<sem_t*>(s)); }

const Impl kRsemLocal{"rsem in-process", true, make_rsem_local, rsem_acquire, rsem_release,
                      rsem_destroy};
const Impl kRsemShared{"rsem shared (anon)", true, make_rsem_shared, rsem_acquire, rsem_release,
                       rsem_destroy};
const Impl kRsemNamed{"rsem shared (named)", true, make_rsem_named, rsem_acquire, rsem_release,
                      rsem_destroy};
const Impl kRsemRecover{"rsem SEM_RECOVER", true, make_rsem_recover, rsem_acquire,
                        rsem_release, rsem_destroy};
const Impl kRsemFifo{"rsem SEM_FIFO", true, make_rsem_fifo, rsem_acquire, rsem_release,
                     rsem_destroy};
const Impl kPshared{"sem_t pshared", false, make_pshared, posix_acquire, posix_release,
                    destroy_pshared};
const Impl kSemOpen{"sem_open (named)", false, make_sem_open, posix_acquire, posix_release,
                    destroy_sem_open};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ns per acquire+release pair, one thread.
double uncontended(const Impl& impl, long iterations) {
    void* s = impl.make(1);
    for (long i = 0; i < iterations / 10; i++) {  // warm up
        impl.acquire(s);
        impl.release(s);
    }
    double t0 = now_s();
    for (long i = 0; i < iterations; i++) {
        impl.acquire(s);
        impl.release(s);
    }
    double ns = (now_s() - t0) * 1e9 / iterations;
    impl.destroy(s);
    return ns;
}

// us per round trip between two processes.
double ping_pong(const Impl& impl, long trips) {
    void* ping = impl.make(0);
    void* pong = impl.make(0);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        for (long i = 0; i < trips + 100; i++) {
            impl.acquire(ping);
            impl.release(pong);
        }
        _exit(0);
    }
    for (long i = 0; i < 100; i++) {  // warm up
        impl.release(ping);
        impl.acquire(pong);
    }
    double t0 = now_s();
    for (long i = 0; i < trips; i++) {
        impl.release(ping);
        impl.acquire(pong);
    }
    double us = (now_s() - t0) * 1e6 / trips;
    int status;
    waitpid(child, &status, 0);
    impl.destroy(ping);
    impl.destroy(pong);
    return us;
}

struct Counters {
    std::atomic<long> ops;
    std::atomic<int> go;
    std::atomic<int> stop;
    std::atomic<int> in_use;
    std::atomic<int> over;
};

// P processes on K permits for `seconds`: M ops/s and CPU us per op.
std::pair<double, double> contended(const Impl& impl, int procs, int permits, double seconds) {
    void* s = impl.make(permits);
    auto* c = static_cast<Counters*>(shared_pages(sizeof(Counters)));
    new (c) Counters{};
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            while (!c->go.load()) {
            }
            long ops = 0;
            while (!c->stop.load(std::memory_order_relaxed)) {
                impl.acquire(s);
                if (c->in_use.fetch_add(1) + 1 > permits) c->over.store(1);
                for (int k = 0; k < 50; k++) sink.fetch_add(0, std::memory_order_relaxed);
                c->in_use.fetch_sub(1);
                impl.release(s);
                ops++;
            }
            c->ops.fetch_add(ops);
            _exit(0);
        }
        kids.push_back(pid);
    }
    double cpu0 = cpu_s();
    double t0 = now_s();
    c->go.store(1);
    timespec ts{static_cast<time_t>(seconds), static_cast<long>((seconds - (long)seconds) * 1e9)};
    nanosleep(&ts, nullptr);
    c->stop.store(1);
    for (pid_t pid : kids) {
        int status;
        waitpid(pid, &status, 0);
    }
    double elapsed = now_s() - t0;
    double ops = c->ops.load();
    if (c->over.load()) {
        std::fprintf(stderr, "%s: more than %d permits held at once\n", impl.name, permits);
        std::exit(1);
    }
    double cpu = cpu_s() - cpu0;
    munmap(c, sizeof(Counters));
    impl.destroy(s);
    return {ops / elapsed / 1e6, cpu / ops * 1e9};
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    int rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--quick")) {
            quick = true;
            rounds = 1;
        } else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = std::max(1, std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr, "usage: shared [--quick] [--rounds N]\n");
            return 2;
        }
    }
    long pairs = quick ? 10000 : 5000000;
    long trips = quick ? 200 : 20000;
    double secs = quick ? 0.02 : 0.3;

    std::printf("Process-shared semaphores, median of %d rounds, implementations interleaved\n\n",
                rounds);

    const Impl* unc[] = {&kRsemLocal,   &kRsemShared, &kRsemNamed, &kRsemRecover,
                         &kRsemFifo, &kPshared,    &kSemOpen};
    const int nu = 7;
    std::vector<std::vector<double>> u(nu);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < nu; i++)
            u[(i + r) % nu].push_back(uncontended(*unc[(i + r) % nu], pairs));
    std::printf("uncontended acquire+release (ns per pair)\n");
    double local = median(u[0]);
    for (int i = 0; i < nu; i++)
        std::printf("  %-22s %8.2f  (%.2fx rsem in-process)\n", unc[i]->name, median(u[i]),
                    median(u[i]) / local);

    // Across processes: rsem's four kinds first, then the two peers.
    const Impl* cross[] = {&kRsemShared, &kRsemNamed, &kRsemRecover, &kRsemFifo, &kPshared, &kSemOpen};
    const int nc = 6, first_peer = 4;
    std::vector<std::vector<double>> pp(nc);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < nc; i++) {
            int k = (i + r) % nc;
            pp[k].push_back(ping_pong(*cross[k], trips));
        }
    double best_pp = std::min(median(pp[first_peer]), median(pp[first_peer + 1]));
    std::printf("\nping-pong between two processes (us per round trip)\n");
    for (int i = 0; i < nc; i++)
        std::printf("  %-22s %8.2f%s\n", cross[i]->name, median(pp[i]),
                    cross[i]->rsem ? (" (" + std::to_string(median(pp[i]) / best_pp).substr(0, 4) +
                                      "x the best peer)")
                                         .c_str()
                                   : "");

    struct Shape {
        int procs, permits;
    };
    const Shape shapes[] = {{2, 1}, {4, 1}, {8, 1}, {4, 2}, {8, 4}};
    std::printf("\ncontended: processes on permits, ~100 ns held: M ops/s (CPU ns per op)\n");
    std::printf("  %-14s", "");
    for (int i = 0; i < nc; i++) std::printf("  %-22s", cross[i]->name);
    std::printf("  rsem anon / best peer\n");
    for (const Shape& sh : shapes) {
        std::vector<std::vector<double>> tp(nc), cpu(nc);
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < nc; i++) {
                int k = (i + r) % nc;
                auto [m, c] = contended(*cross[k], sh.procs, sh.permits, secs);
                tp[k].push_back(m);
                cpu[k].push_back(c);
            }
        double best = std::max(median(tp[first_peer]), median(tp[first_peer + 1]));
        std::printf("  %d procs/%d perm", sh.procs, sh.permits);
        for (int i = 0; i < nc; i++) std::printf("  %8.2f (%5.0f)        ", median(tp[i]), median(cpu[i]));
        std::printf("  %.2fx\n", median(tp[0]) / best);
    }
    return 0;
}
