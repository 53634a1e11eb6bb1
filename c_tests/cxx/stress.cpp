// Lost wake-up stress through rsem.hpp: many timed acquirers and one bulk
// releaser; every released permit is acquired or still counted at the end,
// and no acquirer is left blocked.
#include "rsem.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int main() {
    const char* scale_env = std::getenv("RSEM_TEST_SCALE");
    const long scale = scale_env ? std::atol(scale_env) : 1;
    const long rounds = 20000 / (scale > 0 ? scale : 1);
    rsem::counting_semaphore<> s(0);
    std::atomic<long> acquired{0}, released{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> acquirers;
    for (int i = 0; i < 6; i++)
        acquirers.emplace_back([&, i] {
            while (!done.load()) {
                bool got = i % 2 ? s.try_acquire_for(200us)
                                 : s.try_acquire_until(std::chrono::steady_clock::now() + 300us);
                if (got) acquired++;
            }
        });
    for (long r = 0; r < rounds; r++) {
        const long k = 1 + r % 4;
        s.release(k);  // one bulk release wakes up to k timed waiters
        released += k;
        if (r % 8 == 0) std::this_thread::yield();
    }
    done = true;
    for (auto& t : acquirers) t.join();
    const long left = static_cast<long>(s.value());
    std::printf("stress: released %ld, acquired %ld, left %ld\n", released.load(), acquired.load(), left);
    if (left != released - acquired || s.waiters() != 0) {
        std::puts("stress: permits not conserved");
        return 1;
    }
    std::puts("stress: ok");
    return 0;
}
