/**
 * @file  vt_waitq.h
 * @brief One wait (vt_waiter_t), the claim that ends it, and the FIFO
 *        queues of waiters that sync objects keep.
 *
 * Every wait is a vt_waiter_t on the waiting side's stack. Whoever ends a
 * wait (a waker on any thread, the carrier's timer or reactor, a cancel)
 * must first win vt_waitq_claim(); exactly one party wins, sets the
 * result, and then resumes the waiter (vt_wait_resume(), vt_wait.h). The
 * waiting side never returns before that resume, and a party that loses
 * the claim touches the waiter no more: so no stale timer, socket event or
 * signal ever resumes a wait that has ended.
 *
 * This part is plain data: it knows no carrier and parks nobody, so the
 * fiber object can hold a queue of its joiners. Queues are guarded by
 * their owner's lock (a sync object's mutex); a waker unlinks and claims
 * under that lock and resumes after releasing it.
 */
#ifndef VT_WAITQ_H
#define VT_WAITQ_H

#include <apr.h>
#include <apr_errno.h>

typedef struct vthread_t vt_fiber_t;

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

/**
 * Try to end @a w's wait with @a result (queued or not).
 * @return 1 if this caller won and must resume it; 0 if someone else
 *         already did
 */
int vt_waitq_claim(vt_waiter_t *w, apr_status_t result);

/** Append @a w (owner's lock held). */
void vt_waitq_push(vt_waitq_t *q, vt_waiter_t *w);

/** Unlink @a w if still queued (owner's lock held). */
void vt_waitq_unlink(vt_waitq_t *q, vt_waiter_t *w);

/**
 * Unlink waiters from the front until one is claimed with @a result
 * (owner's lock held); it is added to *@a resume_list (linked through
 * resume_next) for the caller to resume after unlocking.
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

#endif /* VT_WAITQ_H */
