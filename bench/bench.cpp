// Side-by-side benchmark of rsem against its peers, in one process, through
// each one's C/C++ API as users call it:
//   glibc sem_t (timed waits via sem_clockwait on CLOCK_MONOTONIC),
//   libstdc++ std::counting_semaphore, a mutex+condvar semaphore (the
//   structure of CPython's threading.Semaphore), and rsem's C ABI.
// Every scenario runs for every implementation, interleaved, for several
// rounds; medians are reported with min-max, and the ratio rsem/best peer.
//
// Usage: bench [--quick] [--csv FILE] [--only SUBSTRING] [--rounds N]
//        (run it through scripts/bench; extra arguments are passed on)
#include "peers.hpp"

static bool quick = false;
static long scale(long n) { return quick ? std::max(1L, n / 20) : n; }

// A little work inside the critical section (about 100 ns).
static void work() {
    static thread_local volatile unsigned sink;
    for (int i = 0; i < 64; i++) sink = sink + (unsigned)i;
}

struct Sample {
    double value;       // the scenario's figure (ns, us or ops/s)
    double cpu_per_op;  // ns of CPU per operation (0 if not measured)
    double csw_per_op;  // context switches per operation
    double sys_per_op;  // system calls per operation (NAN if not measured)
};

// The per-operation figures of a sample that did `ops` operations between
// the two usage readings (which themselves make 2 system calls: counted
// out).
static Sample per_op(double value, const Usage &u0, const Usage &u1, long ops) {
    double sys = u0.syscalls < 0 || u1.syscalls < 0 ? NAN : double(u1.syscalls - u0.syscalls - 2) / ops;
    if (!std::isnan(sys)) sys = std::max(0.0, sys);
    return {value, (u1.cpu - u0.cpu) / ops * 1e9, double(u1.csw - u0.csw) / ops, sys};
}

template <class S>
Sample uncontended(long initial) {
    S s(initial);
    long n = scale(2000000);
    Usage u0 = usage();
    auto t0 = Clock::now();
    for (long i = 0; i < n; i++) {
        s.acquire();
        s.release();
    }
    double t = seconds_since(t0);
    return per_op(t / n * 1e9, u0, usage(), n);
}

template <class S>
Sample failing_try() {
    S s(0);
    long n = scale(2000000);
    long got = 0;
    Usage u0 = usage();
    auto t0 = Clock::now();
    for (long i = 0; i < n; i++) got += s.try_acquire();
    double t = seconds_since(t0);
    Usage u1 = usage();
    if (got != 0) std::abort();
    return per_op(t / n * 1e9, u0, u1, n);
}

template <class S>
Sample ping_pong() {
    S ping(0), pong(0);
    long n = scale(20000);
    std::thread other([&] {
        for (long i = 0; i < n; i++) {
            ping.acquire();
            pong.release();
        }
    });
    Usage u0 = usage();
    auto t0 = Clock::now();
    for (long i = 0; i < n; i++) {
        ping.release();
        pong.acquire();
    }
    double t = seconds_since(t0);
    Usage u1 = usage();
    other.join();
    return per_op(t / n * 1e9, u0, u1, n);
}

template <class S>
Sample contended(int threads, long permits) {
    S s(permits);
    long per_thread = scale(400000) / threads;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; i++)
        ts.emplace_back([&] {
            ready++;
            while (!go.load()) std::this_thread::yield();
            for (long k = 0; k < per_thread; k++) {
                s.acquire();
                work();
                s.release();
            }
        });
    while (ready.load() < threads) std::this_thread::yield();
    Usage u0 = usage();
    auto t0 = Clock::now();
    go = true;
    for (auto &t : ts) t.join();
    double t = seconds_since(t0);
    Usage u1 = usage();
    long ops = per_thread * threads;
    return per_op(ops / t, u0, u1, ops);
}

// n threads asleep in acquire; one release of n; time until the last woke.
template <class S>
Sample wake_n(int n) {
    S s(0);
    std::atomic<int> started{0};
    std::vector<Clock::time_point> woke(n);
    std::vector<std::thread> ts;
    for (int i = 0; i < n; i++)
        ts.emplace_back([&, i] {
            started++;
            s.acquire();
            woke[i] = Clock::now();
        });
    while (started.load() < n) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let them fall asleep
    auto t0 = Clock::now();
    s.release(n);
    for (auto &t : ts) t.join();
    auto last = *std::max_element(woke.begin(), woke.end());
    return {std::chrono::duration<double>(last - t0).count() * 1e6, 0, 0, NAN};
}

// How far past the deadline a timed acquire returns, in us (one sample).
template <class S>
Sample overshoot(double timeout) {
    S s(0);
    auto t0 = Clock::now();
    if (s.acquire_for(timeout)) std::abort();
    return {(seconds_since(t0) - timeout) * 1e6, 0, 0, NAN};
}

// ---- the run ----------------------------------------------------------------

struct Series {
    std::vector<double> values, cpu, csw, sys;
};

// results[scenario][implementation]
static std::map<std::string, std::map<std::string, Series>> results;
static std::vector<std::string> scenario_order;
static const char *impl_names[] = {PosixSem::name, StdSem::name, CondvarSem::name, Rsem::name};

// --only SUBSTRING: run just the scenarios whose name contains it.
static const char *only = nullptr;

// Runs `measure` and records its sample, unless --only leaves the scenario out.
template <class F>
static void record(const std::string &scenario, const char *impl, F measure) {
    if (only && scenario.find(only) == std::string::npos) return;
    Sample s = measure();
    if (results.find(scenario) == results.end()) scenario_order.push_back(scenario);
    Series &r = results[scenario][impl];
    r.values.push_back(s.value);
    r.cpu.push_back(s.cpu_per_op);
    r.csw.push_back(s.csw_per_op);
    r.sys.push_back(s.sys_per_op);
}

template <class S>
static void run_round() {
    record("uncontended pair, count 1 (ns)", S::name, [] { return uncontended<S>(1); });
    record("uncontended pair, count 2 (ns)", S::name, [] { return uncontended<S>(2); });
    record("failing try_acquire (ns)", S::name, [] { return failing_try<S>(); });
    record("ping-pong round trip (ns)", S::name, [] { return ping_pong<S>(); });
    for (int threads : {2, 4, 8, 16})
        for (long permits : {1L, 4L})
            record("contended " + std::to_string(threads) + " threads, " +
                       std::to_string(permits) + " permit(s) (ops/s)",
                   S::name, [=] { return contended<S>(threads, permits); });
}

// One sample of a scheduler-bound scenario (see `timing_round`).
template <class S>
static void timing_sample(int kind) {
    if (kind == 0) record("release(8) wakes 8 sleepers (us)", S::name, [] { return wake_n<S>(8); });
    if (kind == 1) record("1 ms timeout overshoot (us)", S::name, [] { return overshoot<S>(0.001); });
    if (kind == 2) record("10 ms timeout overshoot (us)", S::name, [] { return overshoot<S>(0.010); });
}

// The scheduler's noise dominates the wake-up and timeout scenarios: take
// several samples per round (35, 280 and 70 over 7 rounds), and interleave
// the implementations sample by sample, so that a noisy moment of the
// machine falls on all of them alike rather than on one's whole batch.
static void timing_round(int round) {
    const int counts[] = {quick ? 1 : 5, quick ? 2 : 40, quick ? 1 : 10};
    void (*const samples[])(int) = {timing_sample<PosixSem>, timing_sample<StdSem>,
                                    timing_sample<CondvarSem>, timing_sample<Rsem>};
    for (int kind = 0; kind < 3; kind++)
        for (int i = 0; i < counts[kind]; i++)
            for (int k = 0; k < 4; k++) samples[(k + i + round) % 4](kind);
}

int main(int argc, char **argv) {
    open_syscall_counter();
    const char *csv_path = nullptr;
    int rounds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::max(1, atoi(argv[++i]));
        else {
            fprintf(stderr, "usage: bench [--quick] [--csv FILE] [--only SUBSTRING] [--rounds N]\n");
            return 2;
        }
    }
    if (rounds == 0) rounds = quick ? 1 : 7;
    // glibc runs a process that never started a thread with single-thread
    // shortcuts (mutexes without locked instructions): that would flatter
    // whichever implementation runs before the first thread is created. A
    // semaphore lives in a threaded process, so make this one threaded now.
    std::thread([] {}).join();
    printf("rsem benchmark: %d round(s), %u hardware threads%s\n", rounds,
           std::thread::hardware_concurrency(), quick ? " (quick mode: not for figures)" : "");
    for (int r = 0; r < rounds; r++) {
        // Interleave: every implementation once per round, rotating who goes first.
        std::vector<std::function<void()>> runs = {
            [] { run_round<PosixSem>(); }, [] { run_round<StdSem>(); },
            [] { run_round<CondvarSem>(); }, [] { run_round<Rsem>(); }};
        for (size_t k = 0; k < runs.size(); k++) runs[(k + r) % runs.size()]();
        timing_round(r);
        fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
    }

    FILE *csv = csv_path ? fopen(csv_path, "w") : nullptr;
    if (csv) fprintf(csv, "scenario,implementation,median,min,max,p99,cpu_ns_per_op,csw_per_op,syscalls_per_op\n");
    printf("\n%-46s", "scenario (median [min-max])");
    for (auto *n : impl_names) printf(" | %-26s", n);
    printf(" | rsem/best peer\n");
    for (auto &scenario : scenario_order) {
        bool higher_is_better = scenario.find("ops/s") != std::string::npos;
        bool overshoot_row = scenario.find("overshoot") != std::string::npos;
        printf("%-46s", scenario.c_str());
        double best_peer = NAN, ours = NAN;
        for (auto *n : impl_names) {
            Series &s = results[scenario][n];
            double med = percentile(s.values, 0.5);
            double lo = *std::min_element(s.values.begin(), s.values.end());
            double hi = *std::max_element(s.values.begin(), s.values.end());
            double p99 = percentile(s.values, 0.99);
            double cpu = percentile(s.cpu, 0.5), csw = percentile(s.csw, 0.5);
            char cell[96];
            if (overshoot_row)
                snprintf(cell, sizeof cell, "%.0f p99 %.0f", med, p99);
            else if (higher_is_better)
                snprintf(cell, sizeof cell, "%.3gM [%.3g-%.3g] cpu%.0fns", med / 1e6, lo / 1e6, hi / 1e6, cpu);
            else
                snprintf(cell, sizeof cell, "%.4g [%.3g-%.3g]", med, lo, hi);
            printf(" | %-26s", cell);
            if (csv)
                fprintf(csv, "\"%s\",%s,%g,%g,%g,%g,%g,%g,%g\n", scenario.c_str(), n, med, lo, hi, p99, cpu, csw,
                        percentile(s.sys, 0.5));
            if (!strcmp(n, Rsem::name)) {
                ours = med;
            } else if (std::isnan(best_peer) || (higher_is_better ? med > best_peer : med < best_peer)) {
                best_peer = med;
            }
        }
        // Ratio as "cost": for throughput, best/ours (below 1 means rsem is faster).
        double ratio = higher_is_better ? best_peer / ours : ours / best_peer;
        if (overshoot_row) {
            // Overshoot compares the median against glibc's.
            ratio = percentile(results[scenario][Rsem::name].values, 0.5) /
                    percentile(results[scenario][PosixSem::name].values, 0.5);
            printf(" | %.2fx glibc (p99 %.2fx)\n", ratio,
                   percentile(results[scenario][Rsem::name].values, 0.99) /
                       percentile(results[scenario][PosixSem::name].values, 0.99));
        } else {
            printf(" | %.2fx\n", ratio);
        }
    }
    printf("\nratio: rsem's time (or best peer's throughput / rsem's) divided by the best peer's; "
           "below 1.00 rsem is faster. cpu = CPU ns per operation (all threads).\n");
    printf("system calls / context switches per op (median; %s):\n",
           syscall_counter < 0 ? "system calls NOT countable here: needs tracefs and root" : "all counted");
    for (auto &scenario : scenario_order) {
        // Not per-operation scenarios: one wake-up, one timed wait.
        if (scenario.find("overshoot") != std::string::npos || scenario.find("wakes") != std::string::npos)
            continue;
        printf("  %-44s", scenario.c_str());
        for (auto *n : impl_names) {
            double sys = percentile(results[scenario][n].sys, 0.5);
            if (std::isnan(sys))
                printf(" %s n/a / %.3f;", n, percentile(results[scenario][n].csw, 0.5));
            else
                printf(" %s %.3f / %.3f;", n, sys, percentile(results[scenario][n].csw, 0.5));
        }
        printf("\n");
    }
    if (csv) fclose(csv);
    return 0;
}
