/**
 * @file  vt_clock.h
 * @brief The runtime's clock: monotonic microseconds, and deadlines for
 *        loops that wait more than once.
 *
 * Every timer, timeout and pinned-fiber threshold in the runtime is on
 * this clock, so a wall-clock step never fires or stalls one.
 * Thread-safe; no state.
 */
#ifndef VT_CLOCK_H
#define VT_CLOCK_H

#include <apr.h>
#include <apr_time.h>

/** A point a wait must not pass, or none. */
typedef struct vt_clock_deadline_t {
    apr_time_t at;      /**< on vt_clock_now()'s clock; unused if forever */
    int forever;
} vt_clock_deadline_t;

/** Monotonic time in microseconds. */
apr_time_t vt_clock_now(void);

/**
 * Start a deadline.
 * @param d the deadline to set
 * @param timeout from now, in microseconds; negative means forever
 */
void vt_clock_deadline_start(vt_clock_deadline_t *d,
                             apr_interval_time_t timeout);

/**
 * Time left before a deadline.
 * @return microseconds; 0 once passed; negative if forever
 */
apr_interval_time_t vt_clock_deadline_left(const vt_clock_deadline_t *d);

#endif /* VT_CLOCK_H */
