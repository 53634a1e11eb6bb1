/* rsem.h in the same translation unit as <semaphore.h> and <limits.h>, built
 * as C99 and as C++ with -Wall -Wextra -Werror -pedantic: no name clashes, and
 * both semaphores work side by side. */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <limits.h>
#include <semaphore.h>
#include <stdio.h>

#include "rsem.h"
#include "rsem.h" /* the include guard works */

int main(void) {
    sem_t posix;
    rsem_semaphore *ours;
    int value = -1;

    if (sem_init(&posix, 0, 1) != 0) return 1;
    if (sem_wait(&posix) != 0 || sem_post(&posix) != 0) return 2;
    if (sem_getvalue(&posix, &value) != 0 || value != 1) return 3;
    if (sem_destroy(&posix) != 0) return 4;
#ifdef SEM_VALUE_MAX
    if (SEM_VALUE_MAX < 32767) return 5;
#endif

    ours = sem_new(1);
    if (ours == NULL) return 6;
    if (sem_acquire(ours) != SEM_OK || sem_release(ours) != SEM_OK) return 7;
    if (sem_value(ours) != 1) return 8;
    sem_free(ours);
    puts("posix_coexist: ok");
    return 0;
}
