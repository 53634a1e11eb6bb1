/* Helpers for the C tests that use real processes (Linux): bounded waits
 * for children (a hang is a failure, never a stuck test) and forking a
 * child that runs one function. */
#ifndef RSEM_PROC_UTIL_H
#define RSEM_PROC_UTIL_H

#include "test_util.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Waits up to `seconds` for child `pid`; returns its exit status, or fails
 * the test (after killing it) if it did not exit in time. */
static int wait_child(pid_t pid, double seconds, int line) {
    double t0 = now_s();
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        CHECK(r >= 0);
        if (r == pid) return status;
        if (now_s() - t0 > seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "%s:%d: child %d hung\n", __FILE__, line, (int)pid);
            exit(1);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

#define expect_exit_ok(pid)                                                    \
    do {                                                                       \
        int status_ = wait_child((pid), 30.0, __LINE__);                       \
        CHECK(WIFEXITED(status_));                                             \
        CHECK_EQ(WEXITSTATUS(status_), 0);                                     \
    } while (0)

/* Kills child `pid` with SIGKILL and reaps it. */
#define kill_child(pid)                                                        \
    do {                                                                       \
        CHECK(kill((pid), SIGKILL) == 0);                                      \
        CHECK(WIFSIGNALED(wait_child((pid), 10.0, __LINE__)));                 \
    } while (0)

/* Forks a child that runs `body(sem, arg)` and exits with its result. */
static pid_t fork_child(int (*body)(rsem_semaphore *, int64_t), rsem_semaphore *sem, int64_t arg) {
    fflush(NULL); /* or the child repeats what the parent had buffered */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(60);
        _exit(body(sem, arg));
    }
    return pid;
}

#endif
