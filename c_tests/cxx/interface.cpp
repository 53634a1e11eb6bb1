// rsem.hpp has std::counting_semaphore's interface and behaviour, defines
// what std leaves undefined, and its extras work.
#include "rsem.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <semaphore>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                             \
        }                                                                             \
    } while (0)

template <class E, class F>
static bool throws(F f) {
    try {
        f();
    } catch (const E&) {
        return true;
    }
    return false;
}

using namespace std::chrono_literals;

// The same shape as std's.
static_assert(!std::is_copy_constructible_v<rsem::counting_semaphore<4>>);
static_assert(!std::is_move_constructible_v<rsem::counting_semaphore<4>>);
static_assert(!std::is_copy_assignable_v<rsem::counting_semaphore<4>>);
static_assert(!std::is_move_assignable_v<rsem::counting_semaphore<4>>);
static_assert(!std::is_convertible_v<std::ptrdiff_t, rsem::counting_semaphore<4>>, "explicit");
static_assert(rsem::counting_semaphore<4>::max() == 4);
static_assert(rsem::binary_semaphore::max() == 1);
static_assert(std::is_same_v<rsem::binary_semaphore, rsem::counting_semaphore<1>>);
static_assert(rsem::counting_semaphore<>::max() >= std::counting_semaphore<>::max() ||
              rsem::counting_semaphore<>::max() == SEM_COUNT_MAX);
static_assert(noexcept(std::declval<rsem::counting_semaphore<4>&>().try_acquire()));

// The same code compiles against both.
template <class Sem>
static void generic_use(Sem& s) {
    s.acquire();
    CHECK(s.try_acquire());
    CHECK(!s.try_acquire());
    CHECK(!s.try_acquire_for(5ms));
    CHECK(!s.try_acquire_until(std::chrono::steady_clock::now() + 5ms));
    s.release(2);
    CHECK(s.try_acquire_for(1s));
    CHECK(s.try_acquire_until(std::chrono::system_clock::now() + 1s));
    s.release();
    s.release();
}

static void timed_waits_on_both_clocks() {
    rsem::counting_semaphore<4> s(0);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!s.try_acquire_for(30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);

    t0 = std::chrono::steady_clock::now();
    CHECK(!s.try_acquire_until(std::chrono::steady_clock::now() + 30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);

    auto sys0 = std::chrono::system_clock::now();
    t0 = std::chrono::steady_clock::now();
    CHECK(!s.try_acquire_until(sys0 + 30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 29ms);  // system clock: converted once

    // Past deadlines and non-positive durations are non-blocking tries.
    CHECK(!s.try_acquire_for(0s));
    CHECK(!s.try_acquire_for(-5s));
    CHECK(!s.try_acquire_until(std::chrono::steady_clock::time_point::min()));
    CHECK(!s.try_acquire_until(std::chrono::system_clock::now() - 1h));

    // Durations too large for a deadline wait without limit: a releaser ends it.
    std::thread releaser([&] {
        while (s.waiters() == 0) std::this_thread::yield();
        s.release();
    });
    CHECK(s.try_acquire_for(std::chrono::hours::max()));
    releaser.join();
    std::thread releaser2([&] {
        while (s.waiters() == 0) std::this_thread::yield();
        s.release();
    });
    CHECK(s.try_acquire_until(std::chrono::steady_clock::time_point::max()));
    releaser2.join();
    CHECK(s.value() == 0);
}

static void undefined_in_std_is_defined_here() {
    CHECK(throws<std::invalid_argument>([] { rsem::counting_semaphore<4> s(-1); }));
    CHECK(throws<std::invalid_argument>([] { rsem::counting_semaphore<4> s(5); }));
    rsem::counting_semaphore<4> s(3);
    s.release(0);  // a no-op
    CHECK(s.value() == 3);
    s.release();
    CHECK(s.value() == 4);
    bool overflow = false;
    try {
        s.release();
    } catch (const std::system_error& e) {
        overflow = e.code() == std::errc::value_too_large;
    }
    CHECK(overflow);
    CHECK(throws<std::system_error>([&] { s.release(2); }));
    CHECK(throws<std::invalid_argument>([&] { s.release(-1); }));
    CHECK(s.value() == 4);  // nothing was released
    rsem::binary_semaphore b(1);
    CHECK(throws<std::system_error>([&] { b.release(); }));
}

static void extras() {
    rsem::counting_semaphore<10> s(5);
    s.acquire_many(3);
    CHECK(s.value() == 2);
    CHECK(!s.try_acquire_many_for(3, 5ms));
    CHECK(s.try_acquire_many_until(2, std::chrono::steady_clock::now()));
    CHECK(throws<std::invalid_argument>([&] { s.acquire_many(0); }));
    CHECK(throws<std::invalid_argument>([&] { s.acquire_many(11); }));
    s.release(5);
    {
        rsem::permit_guard<rsem::counting_semaphore<10>> g(s, 4);
        CHECK(s.value() == 1);
        rsem::permit_guard<rsem::counting_semaphore<10>> g1(s);
        CHECK(s.value() == 0);
    }
    CHECK(s.value() == 5);
    CHECK(sem_value(s.native_handle()) == 5);

    // FIFO: a head that needs more holds the others back.
    rsem::counting_semaphore<10> f(0, rsem::fifo);
    std::atomic<int> served{0};
    std::thread big([&] { f.acquire_many(3); served += 10; });
    while (f.waiters() < 1) std::this_thread::yield();
    std::thread small([&] { f.acquire(); served += 1; });
    while (f.waiters() < 2) std::this_thread::yield();
    f.release(2);
    CHECK(!f.try_acquire());
    f.release(1);
    big.join();
    CHECK(served == 10);
    f.release(1);
    small.join();
    CHECK(served == 11);

    // Shutdown: blocked and later acquires throw; try_acquire returns false.
    rsem::counting_semaphore<> c(0);
    std::atomic<bool> closed{false};
    std::thread blocked([&] { closed = throws<rsem::semaphore_closed>([&] { c.acquire(); }); });
    while (c.waiters() < 1) std::this_thread::yield();
    c.shutdown();
    blocked.join();
    CHECK(closed);
    CHECK(throws<rsem::semaphore_closed>([&] { c.acquire(); }));
    CHECK(throws<rsem::semaphore_closed>([&] { (void)c.try_acquire_for(1s); }));
    CHECK(!c.try_acquire());
    c.release(3);
    CHECK(c.value() == 3);
}

int main() {
    rsem::counting_semaphore<4> ours(2);
    std::counting_semaphore<4> theirs(2);
    generic_use(ours);
    generic_use(theirs);
    CHECK(ours.value() == 2);
    timed_waits_on_both_clocks();
    undefined_in_std_is_defined_here();
    extras();
    std::puts("interface: ok");
    return 0;
}
