// CThreadAffinity: pins the calling thread to a set of CPUs, for UPFControl's `ThreadAffinity`.
//
// `sched_setaffinity` and the `CPU_SET` macros are GNU extensions that Swift's Glibc module does
// not expose, so they are reached through this one function, compiled with _GNU_SOURCE.
#ifndef CTHREADAFFINITY_H
#define CTHREADAFFINITY_H

/// Restricts the calling thread to `cpus[0..<count]`. Returns 0, or the errno of the failure
/// (EINVAL also when a CPU number is out of range of a cpu_set_t).
int cthreadaffinity_pin_current_thread(const int *cpus, int count);

/// The highest CPU number a cpu_set_t can hold.
int cthreadaffinity_max_cpu(void);

#endif
