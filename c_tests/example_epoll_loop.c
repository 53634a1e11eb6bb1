/* Runs examples/epoll_loop.c (an epoll event loop over a notifier) as a
 * test, so that the README's example keeps working. Linux only: elsewhere
 * this program only says so. */
#ifdef __linux__
#define main epoll_loop_main
#include "../examples/epoll_loop.c"
#undef main

int main(void) {
    if (epoll_loop_main() != 0) return 1;
    printf("example_epoll_loop: ok\n");
    return 0;
}
#else
#include <stdio.h>
int main(void) {
    printf("example_epoll_loop: ok (the example needs Linux: not run)\n");
    return 0;
}
#endif
