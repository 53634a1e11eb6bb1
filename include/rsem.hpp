// rsem.hpp: a header-only C++ wrapper over rsem's C ABI with exactly the
// interface of C++20 std::counting_semaphore, so that swapping `std::` for
// `rsem::` is the only change a program needs:
//
//     rsem::counting_semaphore<8> slots(8);   // was std::counting_semaphore<8>
//     rsem::binary_semaphore ready(0);        // was std::binary_semaphore
//     slots.acquire(); ... slots.release();
//
// What the standard leaves undefined is defined here (each documented at its
// function): a negative or too large initial count throws
// std::invalid_argument at construction; a release past max() throws
// std::system_error with std::errc::value_too_large (nothing is released); a
// negative release throws std::invalid_argument. Beyond std: FIFO mode,
// multi-permit acquires, shutdown (blocked and later acquires throw
// rsem::semaphore_closed), value(), waiters(), and rsem::permit_guard, an
// RAII guard that releases on scope exit.
//
// Needs C++11 at least (C++20 for the drop-in use beside <semaphore>); link
// librsem as for the C API (CMake: rsem::rsem or rsem::rsem_static).
#ifndef RSEM_HPP
#define RSEM_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <system_error>

#include "rsem.h"

namespace rsem {

/// Thrown by blocking acquires of a semaphore that was shut down.
class semaphore_closed : public std::runtime_error {
public:
    semaphore_closed() : std::runtime_error("rsem: the semaphore was shut down") {}
};

/// Tag for the FIFO constructor: `counting_semaphore<> s(0, rsem::fifo);`
struct fifo_t {
    explicit fifo_t() = default;
};
constexpr fifo_t fifo{};

namespace detail {

constexpr std::int64_t count_max = SEM_COUNT_MAX;
/// The default LeastMaxValue: SEM_COUNT_MAX, or PTRDIFF_MAX if smaller.
constexpr std::ptrdiff_t default_max =
    static_cast<std::uint64_t>(PTRDIFF_MAX) < static_cast<std::uint64_t>(SEM_COUNT_MAX)
        ? PTRDIFF_MAX
        : static_cast<std::ptrdiff_t>(SEM_COUNT_MAX);

/// A duration as whole nanoseconds, rounded up, saturating at INT64_MAX;
/// zero for zero, negative and NaN durations.
template <class Rep, class Period>
std::int64_t to_ns(const std::chrono::duration<Rep, Period>& d) {
    const std::chrono::duration<long double, std::nano> exact = d;
    const long double ns = exact.count();
    if (!(ns > 0)) return 0;  // also NaN
    if (ns >= 9.2e18L) return INT64_MAX;
    const std::int64_t whole = static_cast<std::int64_t>(ns);
    return static_cast<long double>(whole) < ns ? whole + 1 : whole;
}

/// `sem_clock_ns()` plus `rel_ns`, saturating at INT64_MAX (no limit).
inline std::int64_t deadline_after(std::int64_t rel_ns) {
    const std::int64_t now = sem_clock_ns();
    return rel_ns > INT64_MAX - now ? INT64_MAX : now + rel_ns;
}

/// Acquire status to result: true, false, or an exception.
inline bool acquired(int status) {
    switch (status) {
    case SEM_OK:
        return true;
    case SEM_TIMEDOUT:
        return false;
    case SEM_ECLOSED:
        throw semaphore_closed();
    default:
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "rsem: invalid acquire");
    }
}

}  // namespace detail

/// std::counting_semaphore over rsem. Not copyable, not movable (as std).
template <std::ptrdiff_t LeastMaxValue = detail::default_max>
class counting_semaphore {
    static_assert(LeastMaxValue >= 0, "LeastMaxValue must be non-negative");
    static_assert(static_cast<std::uint64_t>(LeastMaxValue) <=
                      static_cast<std::uint64_t>(SEM_COUNT_MAX),
                  "LeastMaxValue must not exceed SEM_COUNT_MAX");

public:
    /// The largest count: releases past it throw.
    static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

    /// A semaphore holding `desired` permits. Throws std::invalid_argument
    /// unless 0 <= desired <= max() (undefined in std), std::bad_alloc if
    /// memory ran out.
    explicit counting_semaphore(std::ptrdiff_t desired) : sem_(make(desired, 0)) {}

    /// As above, serving blocked acquirers strictly in arrival order.
    counting_semaphore(std::ptrdiff_t desired, fifo_t) : sem_(make(desired, SEM_FIFO)) {}

    ~counting_semaphore() { sem_free(sem_); }

    counting_semaphore(const counting_semaphore&) = delete;
    counting_semaphore& operator=(const counting_semaphore&) = delete;

    /// Adds `update` permits and wakes the blocked threads they satisfy.
    /// update == 0 does nothing. Throws std::invalid_argument for a negative
    /// update and std::system_error (std::errc::value_too_large) if the count
    /// would pass max(), releasing nothing (both undefined in std).
    void release(std::ptrdiff_t update = 1) {
        if (update == 0) return;
        if (update < 0) throw std::invalid_argument("rsem: release of a negative count");
        const int status = update == 1 ? sem_release(sem_)
                                       : sem_release_n(sem_, static_cast<std::int64_t>(update));
        if (status == SEM_EOVERFLOW)
            throw std::system_error(std::make_error_code(std::errc::value_too_large),
                                    "rsem: release past the semaphore's maximum");
        if (status != SEM_OK)
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "rsem: invalid release");
    }

    /// Takes a permit, blocking until one is free. Throws semaphore_closed
    /// after shutdown().
    void acquire() { detail::acquired(sem_acquire(sem_)); }

    /// Takes a permit if one is free now. False if none is (or after
    /// shutdown()).
    bool try_acquire() noexcept { return sem_try_acquire(sem_) == SEM_OK; }

    /// Takes a permit, waiting at most `rel_time` (steady clock). Throws
    /// semaphore_closed after shutdown().
    template <class Rep, class Period>
    bool try_acquire_for(const std::chrono::duration<Rep, Period>& rel_time) {
        return try_acquire_many_for(1, rel_time);
    }

    /// Takes a permit, waiting until `abs_time` at the latest. A deadline on
    /// a clock other than the steady one is converted once, on entry (as the
    /// standard allows). Throws semaphore_closed after shutdown().
    template <class Clock, class Duration>
    bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& abs_time) {
        return try_acquire_many_until(1, abs_time);
    }

    // ---- beyond std ----------------------------------------------------

    /// Takes `n` permits at once, blocking. Throws std::invalid_argument
    /// unless 1 <= n <= max(), semaphore_closed after shutdown().
    void acquire_many(std::ptrdiff_t n) {
        check_n(n);
        detail::acquired(sem_acquire_many(sem_, n, std::numeric_limits<double>::infinity()));
    }

    /// Takes `n` permits at once or none, waiting at most `rel_time`.
    template <class Rep, class Period>
    bool try_acquire_many_for(std::ptrdiff_t n,
                              const std::chrono::duration<Rep, Period>& rel_time) {
        check_n(n);
        return detail::acquired(
            sem_acquire_until(sem_, n, detail::deadline_after(detail::to_ns(rel_time))));
    }

    /// Takes `n` permits at once or none, waiting until `abs_time`.
    template <class Clock, class Duration>
    bool try_acquire_many_until(std::ptrdiff_t n,
                                const std::chrono::time_point<Clock, Duration>& abs_time) {
        check_n(n);
        // In long double nanoseconds: subtracting (or even comparing) time
        // points of different durations converts both to the finer one, which
        // overflows at the far end of a coarse clock (hours::max()): that far
        // end means no limit.
        using exact = std::chrono::duration<long double, std::nano>;
        const exact rel = exact(abs_time.time_since_epoch()) - exact(Clock::now().time_since_epoch());
        return detail::acquired(
            sem_acquire_until(sem_, n, detail::deadline_after(detail::to_ns(rel))));
    }

    /// Blocked and later acquires throw semaphore_closed (try_acquire returns
    /// false); releases keep working.
    void shutdown() noexcept { sem_shutdown(sem_); }

    /// The free permits now (a snapshot).
    std::ptrdiff_t value() const noexcept { return static_cast<std::ptrdiff_t>(sem_value(sem_)); }

    /// Threads blocked in an acquire now (a snapshot).
    std::ptrdiff_t waiters() const noexcept {
        return static_cast<std::ptrdiff_t>(sem_waiters(sem_));
    }

    /// The C handle, for the C API's other functions. Owned by this object.
    rsem_semaphore* native_handle() noexcept { return sem_; }

private:
    static rsem_semaphore* make(std::ptrdiff_t desired, std::uint32_t flags) {
        if (desired < 0 || desired > LeastMaxValue)
            throw std::invalid_argument("rsem: initial count outside [0, max()]");
        rsem_semaphore* s = sem_new_ex(desired, LeastMaxValue, flags);
        if (s == nullptr) throw std::bad_alloc();
        return s;
    }

    static void check_n(std::ptrdiff_t n) {
        if (n < 1 || n > LeastMaxValue)
            throw std::invalid_argument("rsem: permit count outside [1, max()]");
    }

    rsem_semaphore* sem_;
};

/// std::binary_semaphore over rsem.
using binary_semaphore = counting_semaphore<1>;

/// Holds `n` permits of a semaphore for a scope: acquires them on
/// construction (blocking) and releases them on destruction.
template <class Semaphore>
class permit_guard {
public:
    explicit permit_guard(Semaphore& sem, std::ptrdiff_t n = 1) : sem_(sem), n_(n) {
        if (n_ == 1)
            sem_.acquire();
        else
            sem_.acquire_many(n_);
    }
    ~permit_guard() { sem_.release(n_); }
    permit_guard(const permit_guard&) = delete;
    permit_guard& operator=(const permit_guard&) = delete;

private:
    Semaphore& sem_;
    std::ptrdiff_t n_;
};

}  // namespace rsem

#endif  // RSEM_HPP
