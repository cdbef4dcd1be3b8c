#define _GNU_SOURCE
#include "cthreadaffinity.h"

#include <errno.h>
#include <sched.h>

int cthreadaffinity_pin_current_thread(const int *cpus, int count)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return EINVAL;
        CPU_SET(cpus[i], &set);
    }
    // Thread id 0: the calling thread (Linux keeps the mask per thread).
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

int cthreadaffinity_max_cpu(void)
{
    return CPU_SETSIZE - 1;
}
