// rsem.hpp at the far ends of every clock and duration type: the largest
// time point or duration of any representation means "no limit" (the acquire
// waits, and a release from another thread ends it); the smallest means "do
// not wait". Issue 12: time_point<steady_clock, hours>::max() used to return
// false at once (the conversion to nanoseconds overflowed).
#include "rsem.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            std::exit(1);                                                          \
        }                                                                          \
    } while (0)

using namespace std::chrono;

// Waits until `s` has a blocked acquirer, then releases one permit; returns
// once the acquire (run by `wait`) has returned true.
template <class Wait>
void released_while_waiting(rsem::counting_semaphore<>& s, Wait wait) {
    std::atomic<int> result{-1};
    std::thread t([&] { result = wait() ? 1 : 0; });
    while (s.waiters() == 0 && result == -1) std::this_thread::yield();
    CHECK(result == -1);  // still waiting: no limit, not "expired"
    s.release();
    t.join();
    CHECK(result == 1);
}

int main() {
    rsem::counting_semaphore<> s(0);
    // The far end: no limit.
    released_while_waiting(s, [&] { return s.try_acquire_until(time_point<steady_clock, hours>::max()); });
    released_while_waiting(s, [&] { return s.try_acquire_until(steady_clock::time_point::max()); });
    released_while_waiting(s, [&] { return s.try_acquire_until(system_clock::time_point::max()); });
    released_while_waiting(s, [&] {
        return s.try_acquire_until(time_point<system_clock, duration<double>>::max());
    });
    released_while_waiting(s, [&] { return s.try_acquire_for(hours::max()); });
    released_while_waiting(s, [&] { return s.try_acquire_for(nanoseconds::max()); });
    released_while_waiting(s, [&] { return s.try_acquire_for(duration<double>::max()); });
    released_while_waiting(s, [&] { return s.try_acquire_many_until(1, time_point<steady_clock, hours>::max()); });
    // The near end: do not wait.
    CHECK(!s.try_acquire_until(time_point<steady_clock, hours>::min()));
    CHECK(!s.try_acquire_until(steady_clock::time_point::min()));
    CHECK(!s.try_acquire_until(system_clock::time_point::min()));
    CHECK(!s.try_acquire_for(hours::min()));
    CHECK(!s.try_acquire_for(nanoseconds::min()));
    CHECK(!s.try_acquire_for(duration<double>(-1e300)));
    CHECK(s.value() == 0);
    std::puts("chrono_edges: ok");
    return 0;
}
