/**
 * @file  vt_fiber.h
 * @brief The fiber object and the carrier-side operations on it.
 *
 * A fiber is created on any thread (vt_fiber_create: reserves capacity,
 * picks the least loaded carrier), then started (queued to that carrier's
 * inbox). Its carrier gives it a stack when it first runs and takes it back
 * when it ends. The object is reference counted: one reference for the
 * handle, one for the running fiber, one per pending cancel request.
 */
#ifndef VT_FIBER_H
#define VT_FIBER_H

#include <apr.h>
#include <apr_errno.h>
#include <pthread.h>

#include "vt_fcontext.h"
#include "vt_runtime.h"
#include "vt_stack.h"
#include "vt_wait.h"

struct vt_carrier_t;

/** Where a fiber is in its life (carrier thread only, but NEW). */
typedef enum {
    VT_FIBER_NEW = 0,   /**< created, not yet on its carrier */
    VT_FIBER_READY,     /**< in the run queue */
    VT_FIBER_RUNNING,
    VT_FIBER_PARKED,
    VT_FIBER_DONE
} vt_fiber_state_e;

/** A deferred call (vthread_defer). */
typedef struct vt_defer_t {
    void (*fn)(void *);
    void *arg;
    struct vt_defer_t *next;
} vt_defer_t;

struct vthread_t {
    vt_fcontext_t ctx;          /**< saved context while not running */
    vt_stack_t *stack;          /**< from the carrier's cache, once run */
    struct vt_carrier_t *carrier;
    vthread_fn_t fn;
    void *arg;
    apr_status_t result;        /**< fn's return value */
    vt_fiber_state_e state;
    _Atomic unsigned refs;
    _Atomic int cancelled;
    _Atomic int cancel_queued;  /**< in the carrier's cancel inbox */
    struct vthread_t *next;     /**< run queue / inbox link */
    struct vthread_t *cancel_next;
    struct vthread_t *live_prev; /**< carrier's list of its fibers */
    struct vthread_t *live_next;
    vt_waiter_t *wait;          /**< the cancellable wait it is parked in */
    void *asan_fake_stack;      /**< for vt_annotate.h while switched out */
    vt_defer_t *defers;
    void (*first_wait)(void *); /**< vt_fiber_on_first_wait, once */
    void *first_wait_arg;
    apr_time_t park_start;
    apr_interval_time_t parked_total;
    apr_uint64_t id;
    /* join: guarded by join_lock */
    pthread_mutex_t join_lock;
    vt_waitq_t joiners;
    int done;
    char label[VT_LABEL_MAX];
};

/** The fiber running on this thread's carrier, or NULL. */
vt_fiber_t *vt_fiber_current(void);

/** Drop one reference; the last frees the object. */
void vt_fiber_unref(vt_fiber_t *f);

/**
 * Park the current fiber: switch to its carrier's scheduler until
 * someone makes it runnable again. Its state and counters are set by the
 * caller (vt_waiter_wait) or yield.
 */
void vt_fiber_switch_out(vt_fiber_t *f);

/** First code a fresh context runs (carrier side: vt_carrier.c). */
void vt_fiber_entry(vt_transfer_t t);

/** Called by the carrier when a fiber has ended: wakes joiners, frees. */
void vt_fiber_finished(vt_fiber_t *f);

/** Carrier side of a cancel: end the fiber's cancellable wait, if any. */
void vt_fiber_cancel_parked(vt_fiber_t *f);

/* The fiber is about to park or yield: run what vt_fiber_on_first_wait
 * deferred to this moment, once. */
static inline void vt_fiber_first_wait(vt_fiber_t *f)
{
    void (*fn)(void *) = f->first_wait;

    if (fn) {
        f->first_wait = NULL;
        fn(f->first_wait_arg);
    }
}

#endif /* VT_FIBER_H */
