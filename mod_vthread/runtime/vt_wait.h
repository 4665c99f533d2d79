/**
 * @file  vt_wait.h
 * @brief Parking: a fiber or a plain thread waits for a waiter's claim
 *        (vt_waitq.h), a timeout, a cancel, or another fiber's end.
 *
 * The same wait works on both kinds of caller: on a fiber it parks the
 * fiber on its carrier (the carrier's timer heap bounds it) and the
 * carrier runs others; on a plain thread (an MPM worker, a test) it blocks
 * the thread on a per-thread condition variable. A waker on any thread
 * resumes either kind with vt_wait_resume() after winning the claim.
 *
 * Rules:
 * - vt_wait_init() on the waiting thread or fiber, before the waiter is
 *   made reachable to wakers; it records who waits.
 * - Only the claim's winner calls vt_wait_resume(), exactly once.
 * - A fiber's carrier ends a parked fiber's cancellable wait through
 *   vt_wait_cancel_parked() (installed as a carrier hook by the runtime).
 */
#ifndef VT_WAIT_H
#define VT_WAIT_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>
#include <pthread.h>

#include "vt_fiber.h"
#include "vt_waitq.h"

/** Flags for vt_wait_park(). */
#define VT_WAIT_UNCANCELLABLE 1 /**< cancellation does not end this wait */

/** Prepare @a w for a wait by the calling fiber or thread. */
void vt_wait_init(vt_waiter_t *w);

/** Make the claimed waiter's fiber runnable, or wake its thread. */
void vt_wait_resume(vt_waiter_t *w);

/** Resume a list linked through resume_next. */
void vt_wait_resume_list(vt_waiter_t *list);

/**
 * Park the caller until @a w is claimed or @a timeout passes. The waiter
 * must already be reachable by its wakers. On a fiber this parks it on its
 * carrier; on a plain thread it blocks the thread.
 * @param kind what the fiber waits for, for its carrier's counters
 * @param timeout microseconds; negative waits forever; 0 does not park
 * @param flags 0 or VT_WAIT_UNCANCELLABLE
 * @return the claimed result: the waker's, APR_TIMEUP, or
 *         APR_ECONNABORTED (cancelled, unless VT_WAIT_UNCANCELLABLE)
 */
apr_status_t vt_wait_park(vt_waiter_t *w, vt_fiber_park_e kind,
                          apr_interval_time_t timeout, int flags);

/**
 * Queue @a w on @a q, release @a lock, park until claimed or @a timeout,
 * then retake @a lock and unlink @a w if a timeout or cancel ended it.
 * Called and returns with @a lock held.
 * @param before_park run after @a lock is released, before parking (a
 *        condition variable releases its mutex there); may be NULL
 * @return the claimed result: APR_SUCCESS (woken), APR_TIMEUP,
 *         APR_ECONNABORTED (cancelled, unless VT_WAIT_UNCANCELLABLE)
 */
apr_status_t vt_wait_queued(vt_waitq_t *q, pthread_mutex_t *lock,
                            vt_waiter_t *w, apr_interval_time_t timeout,
                            int flags, void (*before_park)(void *),
                            void *before_park_arg);

/** End @a f's cancellable wait, if it is in one, with APR_ECONNABORTED.
 *  Its carrier's thread only (the fiber's wait pointer is not shared). */
void vt_wait_cancel_parked(vt_fiber_t *f);

/**
 * Wait for @a f to end (the same as vthread_join()); on success the
 * handle is given up.
 * @return APR_SUCCESS, APR_TIMEUP, APR_ECONNABORTED (the caller was
 *         cancelled), or APR_EINVAL (NULL, or a fiber joining itself)
 */
apr_status_t vt_wait_join(vt_fiber_t *f, apr_interval_time_t timeout,
                          apr_status_t *result);

/** Mark @a f ended and wake every vt_wait_join() on it. Called once, by
 *  the runtime, when the fiber has ended (run or not). */
void vt_wait_join_release(vt_fiber_t *f);

#endif /* VT_WAIT_H */
