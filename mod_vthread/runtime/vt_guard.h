/**
 * @file  vt_guard.h
 * @brief Reports a fiber stack overflow instead of dying silently.
 *
 * A process-wide SIGSEGV handler runs on each carrier's alternate signal
 * stack. A fault inside the running fiber's guard page is reported on
 * stderr (httpd sends a child's stderr to its error log) with the fiber's
 * id and label, then the previous disposition is restored and the fault
 * repeats, so the process dies as it would have (core dump included). Any
 * other SIGSEGV goes to the previous handler untouched.
 */
#ifndef VT_GUARD_H
#define VT_GUARD_H

#include "vt_stack.h"

/** Install the handler (once per process; later calls do nothing). */
void vt_guard_install(void);

/**
 * Give the calling carrier thread an alternate signal stack, and tell the
 * handler where that carrier publishes the stack it is running.
 * @param carrier_index named in the report
 * @param running_stack the carrier's running stack (NULL between fibers);
 *        read from the signal handler, so it must outlive the thread
 */
void vt_guard_thread_enter(int carrier_index,
                           _Atomic(vt_stack_t *) *running_stack);

/** Remove and free the calling thread's alternate signal stack. */
void vt_guard_thread_leave(void);

#endif /* VT_GUARD_H */
