// The space users live in: every implementation (glibc sem_t, libstdc++
// std::counting_semaphore, mutex+condvar, rsem) over critical-section
// length {0, ~25 ns, ~100 ns, ~1 us, ~10 us} x threads {2, 4, 8, 16, 64} x
// permits {1, 4}, interleaved cell by cell in one process; then ping-pong
// and the contended cells at ~100 ns again on a loaded machine (as many
// busy processes as there are CPUs, started and stopped here).
//
// For each cell and implementation: throughput, CPU time per operation,
// context switches and system calls per operation, and the distribution of
// the time individual acquires waited (p50, p99, max), so that fairness and
// starvation show beside throughput. Each thread loops: read the clock,
// acquire, read the clock, work, release; every implementation pays the
// same two clock reads.
//
// Usage: sweep [--quick] [--rounds N] [--cell-ms MS] [--csv FILE] [--no-load | --only-loaded]
//              [--only TEXT]
//        (run it through scripts/bench --sweep); --only runs just the cells
//        whose description ("quiet, 0 ns, 2 threads, 1 permits"; ping-pong
//        is "-1 ns") contains TEXT, for tuning.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "peers.hpp"

// ---- the critical section ----------------------------------------------------

static thread_local volatile unsigned sink;

__attribute__((noinline)) static void work(long iters) {
    for (long i = 0; i < iters; i++) sink = sink + (unsigned)i;
}

// ns per iteration of `work`, the fastest of a few timings.
static double calibrate() {
    double best = 1e9;
    for (int k = 0; k < 5; k++) {
        auto t0 = Clock::now();
        work(2000000);
        best = std::min(best, seconds_since(t0) * 1e9 / 2000000);
    }
    return best;
}

// ---- one cell ------------------------------------------------------------------

struct Cell {
    double ops_per_s, cpu_ns, csw, sys;  // per operation, except ops_per_s
    double p50_ns, p99_ns, max_ns;       // wait of individual acquires
};

static Cell summarize(double seconds, long ops, const Usage &u0, const Usage &u1,
                      std::vector<float> &waits) {
    Cell c{};
    if (ops == 0) return {0, NAN, NAN, NAN, NAN, NAN, NAN};  // starved for the whole cell
    c.ops_per_s = ops / seconds;
    c.cpu_ns = (u1.cpu - u0.cpu) / ops * 1e9;
    c.csw = double(u1.csw - u0.csw) / ops;
    c.sys = u0.syscalls < 0 || u1.syscalls < 0 ? NAN
                                               : std::max(0.0, double(u1.syscalls - u0.syscalls - 2) / ops);
    if (!waits.empty()) {
        auto at = [&](double p) {
            size_t i = (size_t)std::min<double>(waits.size() - 1, std::floor(p * (waits.size() - 1)));
            std::nth_element(waits.begin(), waits.begin() + i, waits.end());
            return (double)waits[i];
        };
        c.p50_ns = at(0.5);
        c.p99_ns = at(0.99);
        c.max_ns = *std::max_element(waits.begin(), waits.end());
    }
    return c;
}

// Acquires that never returned although permits were free (a lost
// wake-up), per implementation: the watchdog below frees them.
static std::map<std::string, int> hangs;

// The cell being measured, for the watchdog's report.
static std::string current_cell;

// Waits for `done` to reach `want`. A thread still asleep after 2 s while
// a permit is free (try_acquire takes one) is a lost wake-up: counted for
// `impl`, and freed by taking every free permit and giving them back (plus
// one) every 10 ms: a release from zero wakes a sleeper in every peer
// (libstdc++'s only notifies when the count was zero).
template <class S>
static void watchdog(S &s, std::atomic<int> &done, int want, const char *impl) {
    auto t0 = Clock::now();
    bool lost = false;
    while (done.load() < want) {
        if (!lost && seconds_since(t0) > 2.0 && s.try_acquire()) {
            s.release();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (done.load() == want) break;
            lost = true;
            hangs[impl]++;
            fprintf(stderr, "%s, %s: %d thread(s) asleep in acquire with permits free: a lost wake-up\n",
                    current_cell.c_str(), impl, want - done.load());
        }
        if (lost) {
            long k = 0;
            while (s.try_acquire()) k++;
            s.release(k + 1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(lost ? 10 : 1));
    }
}

// `threads` threads loop acquire / work(cs_iters) / release on `permits`
// permits for about `seconds`. Operations and CPU time are counted up to
// the stop signal.
template <class S>
Cell contended(int threads, long permits, long cs_iters, double seconds) {
    S s(permits);
    std::atomic<int> ready{0}, done{0};
    std::atomic<bool> go{false}, stop{false};
    std::vector<std::vector<float>> waits(threads);
    struct alignas(128) Count {
        std::atomic<long> n{0};
    };
    std::vector<Count> ops(threads);
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; i++)
        ts.emplace_back([&, i] {
            std::vector<float> &w = waits[i];
            w.reserve(1 << 16);
            long n = 0;
            ready++;
            while (!go.load()) std::this_thread::yield();
            while (!stop.load(std::memory_order_relaxed)) {
                auto t0 = Clock::now();
                s.acquire();
                auto t1 = Clock::now();
                work(cs_iters);
                s.release();
                w.push_back((float)std::chrono::duration<double, std::nano>(t1 - t0).count());
                ops[i].n.store(++n, std::memory_order_relaxed);
            }
            done++;
        });
    while (ready.load() < threads) std::this_thread::yield();
    Usage u0 = usage();
    auto t0 = Clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    double t = seconds_since(t0);
    Usage u1 = usage();
    long total = 0;
    for (int i = 0; i < threads; i++) total += ops[i].n.load(std::memory_order_relaxed);
    watchdog(s, done, threads, S::name);
    for (auto &th : ts) th.join();
    size_t samples = 0;
    for (auto &w : waits) samples += w.size();
    std::vector<float> all;
    all.reserve(samples);
    for (auto &w : waits) all.insert(all.end(), w.begin(), w.end());
    return summarize(t, total, u0, u1, all);
}

// Two threads hand a permit back and forth through two semaphores; the
// "wait" is the round trip.
template <class S>
Cell ping_pong(double seconds) {
    S ping(0), pong(0);
    std::atomic<bool> stop{false};
    std::thread other([&] {
        for (;;) {
            ping.acquire();
            if (stop.load(std::memory_order_relaxed)) return;
            pong.release();
        }
    });
    std::vector<float> trips;
    trips.reserve(1 << 16);
    Usage u0 = usage();
    auto start = Clock::now();
    long n = 0;
    while (seconds_since(start) < seconds) {
        auto t0 = Clock::now();
        ping.release();
        pong.acquire();
        trips.push_back((float)std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
        n++;
    }
    double t = seconds_since(start);
    Usage u1 = usage();
    stop = true;
    ping.release();
    std::atomic<int> done{0};
    std::thread joiner([&] {
        other.join();
        done = 1;
    });
    watchdog(ping, done, 1, S::name);
    joiner.join();
    return summarize(t, n, u0, u1, trips);
}

// ---- a loaded machine ---------------------------------------------------------

static std::vector<pid_t> hogs;

static void start_load() {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
            for (;;) __asm__ volatile("");
        }
        if (pid > 0) hogs.push_back(pid);
    }
}

static void stop_load() {
    for (pid_t pid : hogs) kill(pid, SIGKILL);
    for (pid_t pid : hogs) waitpid(pid, nullptr, 0);
    hogs.clear();
}

// ---- the run --------------------------------------------------------------------

struct Key {
    std::string section;  // "quiet" or "loaded"
    double cs_ns;         // nominal; -1 for ping-pong
    int threads;
    long permits;
    bool operator<(const Key &o) const {
        return std::tie(section, cs_ns, threads, permits) < std::tie(o.section, o.cs_ns, o.threads, o.permits);
    }
};

static std::map<Key, std::map<std::string, std::vector<Cell>>> results;
static std::vector<Key> order;
static const char *impl_names[] = {PosixSem::name, StdSem::name, CondvarSem::name, Rsem::name};

static std::string describe(const Key &k) {
    char b[96];
    snprintf(b, sizeof b, "%s, %g ns, %d threads, %ld permits", k.section.c_str(), k.cs_ns, k.threads, k.permits);
    return b;
}

static void record(const Key &k, const char *impl, const Cell &c) {
    if (results.find(k) == results.end()) order.push_back(k);
    results[k][impl].push_back(c);
}

// Every implementation once on one cell, starting with a different one each
// time, so that a noisy moment of the machine falls on all of them alike.
template <class S>
struct Tag {
    using type = S;
};

// `--only`: the text a cell's description must contain to be run.
static const char *only_cells = "";

template <class F>
static void all_impls(const Key &k, int turn, F f) {
    current_cell = describe(k);
    if (!strstr(current_cell.c_str(), only_cells)) return;
    std::function<void()> runs[] = {[&] { f(Tag<PosixSem>{}); }, [&] { f(Tag<StdSem>{}); },
                                    [&] { f(Tag<CondvarSem>{}); }, [&] { f(Tag<Rsem>{}); }};
    for (int k = 0; k < 4; k++) runs[(k + turn) % 4]();
}

static double median_of(const std::vector<Cell> &v, double Cell::*field) {
    std::vector<double> xs;
    for (auto &c : v) xs.push_back(c.*field);
    return percentile(xs, 0.5);
}

static double max_of(const std::vector<Cell> &v, double Cell::*field) {
    double m = 0;
    for (auto &c : v) m = std::max(m, c.*field);
    return m;
}

int main(int argc, char **argv) {
    open_syscall_counter();
    bool quick = false, load = true, quiet = true;
    int rounds = 0;
    double cell_ms = 0;
    const char *csv_path = nullptr;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-load")) load = false;
        else if (!strcmp(argv[i], "--only-loaded")) quiet = false;
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::max(1, atoi(argv[++i]));
        else if (!strcmp(argv[i], "--cell-ms") && i + 1 < argc) cell_ms = std::max(1.0, atof(argv[++i]));
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only_cells = argv[++i];
        else {
            fprintf(stderr, "usage: sweep [--quick] [--rounds N] [--cell-ms MS] [--csv FILE] [--no-load | --only-loaded]"
                            " [--only TEXT]\n");
            return 2;
        }
    }
    if (rounds == 0) rounds = quick ? 1 : 3;
    if (cell_ms == 0) cell_ms = quick ? 3 : 100;
    double secs = cell_ms / 1000;
    std::thread([] {}).join();  // a threaded process from the start (see bench.cpp)
    double ns_iter = calibrate();
    const std::vector<double> cs_ns = {0, 25, 100, 1000, 10000};
    const int thread_counts[] = {2, 4, 8, 16, 64};
    const long permit_counts[] = {1, 4};
    printf("rsem sweep: %d round(s) of %.0f ms per cell, %u hardware threads, work: %.2f ns per iteration%s\n",
           rounds, cell_ms, std::thread::hardware_concurrency(), ns_iter,
           quick ? " (quick mode: not for figures)" : "");
    int turn = 0;
    for (int r = 0; r < rounds; r++) {
        for (double cs : quiet ? cs_ns : std::vector<double>{})
            for (int threads : thread_counts)
                for (long permits : permit_counts) {
                    long iters = (long)std::llround(cs / ns_iter);
                    Key k{"quiet", cs, threads, permits};
                    all_impls(k, turn++, [&](auto tag) {
                        using S = typename decltype(tag)::type;
                        record(k, S::name, contended<S>(threads, permits, iters, secs));
                    });
                }
        if (load) {
            start_load();
            Key pp{"loaded", -1, 2, 0};
            all_impls(pp, turn++, [&](auto tag) {
                using S = typename decltype(tag)::type;
                record(pp, S::name, ping_pong<S>(secs));
            });
            for (int threads : thread_counts)
                for (long permits : permit_counts) {
                    Key k{"loaded", 100, threads, permits};
                    all_impls(k, turn++, [&](auto tag) {
                        using S = typename decltype(tag)::type;
                        record(k, S::name, contended<S>(threads, permits, (long)std::llround(100 / ns_iter), secs));
                    });
                }
            stop_load();
        }
        // Ping-pong on the quiet machine, for comparison with the loaded one.
        if (quiet) {
            Key pp{"quiet", -1, 2, 0};
            all_impls(pp, turn++, [&](auto tag) {
                using S = typename decltype(tag)::type;
                record(pp, S::name, ping_pong<S>(secs));
            });
        }
        fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
    }

    FILE *csv = csv_path ? fopen(csv_path, "w") : nullptr;
    if (csv)
        fprintf(csv, "section,cs_ns,threads,permits,implementation,ops_per_s,cpu_ns_per_op,csw_per_op,"
                     "syscalls_per_op,wait_p50_ns,wait_p99_ns,wait_max_ns\n");
    printf("\nthroughput in M ops/s (ping-pong: round trips), medians over rounds; tp = best peer / rsem\n"
           "(below 1: rsem faster); cpu = rsem's CPU per op / the lowest peer's; p99 = rsem's p99 wait / glibc's\n");
    printf("%-7s %-10s %3s %2s", "section", "work", "thr", "pm");
    for (auto *n : impl_names) printf(" | %-26s", n);
    printf(" | tp    cpu   p99\n");
    int cells = 0, won_tp = 0, won_cpu = 0, won_p99 = 0;
    for (auto &k : order) {
        char work_s[16];
        if (k.cs_ns < 0) snprintf(work_s, sizeof work_s, "ping-pong");
        else snprintf(work_s, sizeof work_s, "%gns", k.cs_ns);
        printf("%-7s %-10s %3d %2ld", k.section.c_str(), work_s, k.threads, k.permits);
        double best_tp = 0, best_cpu = INFINITY, ours_tp = 0, ours_cpu = 0, ours_p99 = 0, glibc_p99 = 0;
        for (auto *n : impl_names) {
            auto &v = results[k][n];
            double tp = median_of(v, &Cell::ops_per_s), cpu = median_of(v, &Cell::cpu_ns);
            double p50 = median_of(v, &Cell::p50_ns), p99 = median_of(v, &Cell::p99_ns), mx = max_of(v, &Cell::max_ns);
            char cell[64];
            snprintf(cell, sizeof cell, "%.3g c%.0f w%.0f/%.0f/%.0fu", tp / 1e6, cpu, p50 / 1e3, p99 / 1e3,
                     mx / 1e3);
            printf(" | %-26s", cell);
            if (csv)
                fprintf(csv, "%s,%g,%d,%ld,%s,%g,%g,%g,%g,%g,%g,%g\n", k.section.c_str(), k.cs_ns, k.threads,
                        k.permits, n, tp, cpu, median_of(v, &Cell::csw), median_of(v, &Cell::sys), p50, p99, mx);
            if (!strcmp(n, Rsem::name)) {
                ours_tp = tp, ours_cpu = cpu, ours_p99 = p99;
            } else {
                best_tp = std::max(best_tp, tp);
                best_cpu = std::min(best_cpu, cpu);
            }
            if (!strcmp(n, PosixSem::name)) glibc_p99 = p99;
        }
        double tp_r = best_tp / ours_tp, cpu_r = ours_cpu / best_cpu, p99_r = ours_p99 / glibc_p99;
        printf(" | %.2f  %.2f  %.2f\n", tp_r, cpu_r, p99_r);
        cells++;
        won_tp += tp_r <= 1.0;
        won_cpu += cpu_r <= 1.0;
        won_p99 += p99_r <= 1.0;
    }
    printf("\nlost wake-ups (a thread asleep 2 s with permits free; freed by extra releases):");
    for (auto *n : impl_names) printf(" %s %d;", n, hangs[n]);
    printf("\n");
    printf("\nrsem at or ahead of the best peer: throughput in %d of %d cells, CPU per op in %d, "
           "p99 wait vs glibc in %d\n",
           won_tp, cells, won_cpu, won_p99);
    printf("cells: c = CPU ns per op (all threads); w = acquire wait p50/p99/max in us\n");
    if (csv) fclose(csv);
    return 0;
}
