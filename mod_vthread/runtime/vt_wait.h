/**
 * @file  vt_wait.h
 * @brief Waiters: one park of a fiber or a plain thread, and the queues of
 *        them that sync objects keep.
 *
 * Every wait is a vt_waiter_t on the waiting side's stack. Whoever ends a
 * wait (a waker on any thread, the carrier's timer or reactor, a cancel)
 * must first win vt_waiter_claim(); exactly one party wins, sets the
 * result, and then calls vt_waiter_resume(). The waiting side never returns
 * before that resume, and a party that loses the claim touches the waiter
 * no more: so no stale timer, socket event or signal ever resumes a wait
 * that has ended.
 *
 * Queues are guarded by their owner's lock (a sync object's mutex); a
 * waker unlinks and claims under that lock and resumes after releasing it.
 */
#ifndef VT_WAIT_H
#define VT_WAIT_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>
#include <pthread.h>

typedef struct vthread_t vt_fiber_t;

/** What a fiber is parked on, for the carrier's counters. */
typedef enum {
    VT_PARK_TIMER = 0,
    VT_PARK_IO = 1,
    VT_PARK_SYNC = 2
} vt_park_kind_e;

/** Flags for vt_waiter_wait(). */
#define VT_WAIT_UNCANCELLABLE 1 /**< cancellation does not end this wait */

/** One wait. */
typedef struct vt_waiter_t {
    _Atomic int claimed;        /**< 0 while waiting; 1 once claimed */
    apr_status_t result;        /**< set by whoever claimed */
    vt_fiber_t *fiber;          /**< the waiting fiber, or NULL */
    struct vt_parker_t *parker; /**< the waiting thread's, if no fiber */
    struct vt_waiter_t *prev;   /**< queue links (owner's lock) */
    struct vt_waiter_t *next;
    int linked;                 /**< in a queue (owner's lock) */
    struct vt_waiter_t *resume_next; /**< a waker's list of claimed ones */
    void *data;                 /**< a value handed over with the wake */
} vt_waiter_t;

/** A FIFO of waiters; the owner's lock guards it. */
typedef struct vt_waitq_t {
    vt_waiter_t *head;
    vt_waiter_t *tail;
    apr_size_t count;
} vt_waitq_t;

/** Deadline arithmetic for loops that wait more than once. */
typedef struct vt_deadline_t {
    apr_time_t at;      /**< monotonic; meaningless if forever */
    int forever;
} vt_deadline_t;

/** Monotonic time in microseconds. */
apr_time_t vt_now(void);

/** Start a deadline @a timeout from now (negative: forever). */
void vt_deadline_start(vt_deadline_t *d, apr_interval_time_t timeout);

/** Time left (negative: forever; 0 when passed). */
apr_interval_time_t vt_deadline_left(const vt_deadline_t *d);

/** Prepare @a w for a wait by the calling fiber or thread. */
void vt_waiter_init(vt_waiter_t *w);

/**
 * Try to end @a w's wait with @a result.
 * @return 1 if this caller won and must call vt_waiter_resume(); 0 if
 *         someone else already did
 */
int vt_waiter_claim(vt_waiter_t *w, apr_status_t result);

/** Make the claimed waiter's fiber runnable, or wake its thread. */
void vt_waiter_resume(vt_waiter_t *w);

/** Resume a list linked through resume_next. */
void vt_waiter_resume_list(vt_waiter_t *list);

/** Append @a w (owner's lock held). */
void vt_waitq_push(vt_waitq_t *q, vt_waiter_t *w);

/** Unlink @a w if still queued (owner's lock held). */
void vt_waitq_unlink(vt_waitq_t *q, vt_waiter_t *w);

/**
 * Unlink waiters from the front until one is claimed with @a result
 * (owner's lock held); it is added to *@a resume_list.
 * @return the claimed waiter, or NULL if none was waiting
 */
vt_waiter_t *vt_waitq_claim_first(vt_waitq_t *q, apr_status_t result,
                                  vt_waiter_t **resume_list);

/**
 * Claim every queued waiter with @a result (owner's lock held).
 * @return how many were claimed
 */
apr_size_t vt_waitq_claim_all(vt_waitq_t *q, apr_status_t result,
                              vt_waiter_t **resume_list);

/**
 * Queue @a w on @a q, release @a lock, park until claimed or @a timeout,
 * then retake @a lock and unlink @a w if a timeout or cancel ended it.
 * Called and returns with @a lock held.
 * @param before_park run after @a lock is released, before parking (a
 *        condition variable releases its mutex there); may be NULL
 * @return the claimed result: APR_SUCCESS (woken), APR_TIMEUP,
 *         APR_ECONNABORTED (cancelled, unless VT_WAIT_UNCANCELLABLE)
 */
apr_status_t vt_waitq_wait(vt_waitq_t *q, pthread_mutex_t *lock,
                           vt_waiter_t *w, apr_interval_time_t timeout,
                           int flags, void (*before_park)(void *),
                           void *before_park_arg);

/**
 * Park the caller until @a w is claimed or @a timeout passes. The waiter
 * must already be reachable by its wakers. On a fiber this parks it on its
 * carrier; on a plain thread it blocks the thread.
 */
apr_status_t vt_waiter_wait(vt_waiter_t *w, vt_park_kind_e kind,
                            apr_interval_time_t timeout, int flags);

#endif /* VT_WAIT_H */
