/**
 * @file  vt_fiber.h
 * @brief The fiber object, its context switch, and what lives with it
 *        (label, defers, the first-wait hook, its joiners).
 *
 * This is the runtime's lowest scheduling layer: it switches a fiber in
 * from a scheduler context (vt_fiber_resume) and back out
 * (vt_fiber_switch_out), and knows nothing of run queues, carriers or
 * placement. A carrier prepares a fiber on a stack (vt_fiber_prepare)
 * when it first runs it; the same carrier's thread is the only one that
 * ever resumes it, so thread-local state stays coherent across a wait.
 *
 * The object is reference counted: one reference for the handle, one for
 * the running fiber, one per pending cancel request; the last
 * vt_fiber_unref() frees it.
 */
#ifndef VT_FIBER_H
#define VT_FIBER_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "vt_annotate.h"
#include "vt_fcontext.h"
#include "vt_libstate.h"
#include "vt_stack.h"
#include "vt_waitq.h"
#include "vthread.h"

/** Longest label kept per fiber (bytes, with NUL); longer ones are cut. */
#define VT_FIBER_LABEL_MAX VT_STACK_LABEL_MAX

struct vt_carrier_t;

/** Where a fiber is in its life (carrier thread only, but NEW). */
typedef enum {
    VT_FIBER_NEW = 0,   /**< created, not yet on its carrier */
    VT_FIBER_READY,     /**< in the run queue */
    VT_FIBER_RUNNING,
    VT_FIBER_PARKED,
    VT_FIBER_DONE
} vt_fiber_state_e;

/** What a fiber is parked on, for its carrier's counters. */
typedef enum {
    VT_PARK_TIMER = 0,
    VT_PARK_IO = 1,
    VT_PARK_SYNC = 2
} vt_fiber_park_e;

/** A deferred call (vthread_defer). */
typedef struct vt_defer_t {
    void (*fn)(void *);
    void *arg;
    struct vt_defer_t *next;
} vt_defer_t;

/** The context a fiber switches back to: its carrier's scheduler loop,
 *  with that loop's stack for the sanitizer annotations (vt_annotate.h). */
typedef struct vt_fiber_sched_t {
    vt_fcontext_t ctx;          /**< the scheduler, while a fiber runs */
    const void *stack;
    size_t stack_size;
    void *fake_stack;
} vt_fiber_sched_t;

struct vthread_t {
    vt_fcontext_t ctx;          /**< saved context while not running */
    vt_stack_t *stack;          /**< from the carrier's cache, once run */
    vt_fiber_sched_t *sched;    /**< where it switches out to, once run */
    struct vt_carrier_t *carrier; /**< its carrier (never changes) */
    int carrier_index;
    const _Atomic int *stopping; /**< its runtime's stop flag */
    vthread_fn_t fn;
    void *arg;
    apr_status_t result;        /**< fn's return value */
    vt_fiber_state_e state;
    _Atomic unsigned refs;
    _Atomic int cancelled;
    _Atomic int cancel_queued;  /**< in the carrier's cancel inbox */
    int transparent;            /**< hooked libc calls park it (vt_hook.h) */
    void *libstate;             /**< its OpenSSL errors while switched out */
    int *errno_loc;             /**< its carrier's errno (set at entry) */
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
    char label[VT_FIBER_LABEL_MAX];
};

/**
 * Allocate a fiber that will run @a fn(@a arg); it holds two references
 * (the handle and its run).
 * @param label what it serves, copied and cut; may be NULL
 * @return the fiber, or NULL when out of memory; its owner sets carrier,
 *         carrier_index, stopping and id before it is started
 */
vt_fiber_t *vt_fiber_new(vthread_fn_t fn, void *arg, const char *label);

/** Free a fiber that holds no reference any more, or was never run. */
void vt_fiber_free(vt_fiber_t *f);

/** Drop one reference; the last frees the object. */
void vt_fiber_unref(vt_fiber_t *f);

/** Give @a f its stack and the scheduler it switches out to; its first
 *  vt_fiber_resume() then enters @a f->fn. */
void vt_fiber_prepare(vt_fiber_t *f, vt_stack_t *stack,
                      vt_fiber_sched_t *sched);


/* The fiber running on this thread (vt_fiber_resume sets it).
 * initial-exec: in mod_vthread.so a global-dynamic TLS read is a call to
 * __tls_get_addr on every API entry; 8 bytes of static TLS avoid it. */
extern _Thread_local vt_fiber_t *vt_fiber_tls_current
    __attribute__((tls_model("initial-exec")));

/** The fiber running on this thread, or NULL off a fiber. Inline: every
 *  API call asks it first. */
static inline vt_fiber_t *vt_fiber_current(void)
{
    return vt_fiber_tls_current;
}

/**
 * Switch to @a f from its scheduler until it parks, yields or ends (its
 * state is then VT_FIBER_DONE). While it runs, vt_fiber_current() is @a f.
 * Inline, as vt_fiber_switch_out(): together they are a switch.
 */
static inline void vt_fiber_resume(vt_fiber_t *f)
{
    vt_fiber_sched_t *s = f->sched;
    vt_transfer_t t;
    vt_fiber_tls_current = f;
    f->state = VT_FIBER_RUNNING;
    vt_annotate_switch_start(&s->fake_stack, f->stack->lo,
                             (size_t)(f->stack->hi - f->stack->lo));
    t = jump_fcontext(f->ctx, f);
    vt_annotate_switch_finish(s->fake_stack, NULL, NULL);
    vt_fiber_tls_current = NULL;
    if (f->state != VT_FIBER_DONE) {
        f->ctx = t.fctx;
    }
}

/**
 * Leave the current fiber for its scheduler, until it is resumed. Its
 * state and counters are set by the caller (a wait, or a yield). Inline:
 * a yield is this and a queue push.
 */
static inline void vt_fiber_switch_out(vt_fiber_t *f)
{
    vt_fiber_sched_t *s = f->sched;
    /* errno and OpenSSL's error queue are per thread: the fiber's own
     * come back with it, whatever other fibers did meanwhile. errno is
     * reached through the address taken at entry (a fiber never changes
     * thread): __errno_location() is a call. */
    int saved_errno = *f->errno_loc;
    if (vt_libstate_on) {
        vt_libstate_save(&f->libstate);
    }
    vt_annotate_switch_start(&f->asan_fake_stack, s->stack, s->stack_size);
    vt_transfer_t t = jump_fcontext(s->ctx, NULL);
    vt_annotate_switch_finish(f->asan_fake_stack, &s->stack,
                              &s->stack_size);
    s->ctx = t.fctx;
    if (f->libstate) {
        vt_libstate_restore(&f->libstate);
    }
    *f->errno_loc = saved_errno;
}

/** Index of the carrier a fiber belongs to. */
int vt_fiber_carrier_index(const vt_fiber_t *f);

/** The fiber's label ("" if none). */
const char *vt_fiber_label(const vt_fiber_t *f);

/** Name what @a f does now (copied, truncated), for a fiber that serves
 *  one piece of work after another. */
void vt_fiber_set_label(vt_fiber_t *f, const char *label);

/**
 * Call @a fn(@a arg) on @a f, once, when it next parks (a wait that does
 * not end at once) or yields; NULL cancels. For work that only matters to
 * a fiber that waits: a handler that never waits never pays for it. Only
 * @a f itself may call this.
 */
void vt_fiber_on_first_wait(vt_fiber_t *f, void (*fn)(void *), void *arg);

/**
 * Cumulative time the fiber has spent parked, in microseconds (read by
 * the fiber itself or after it ended).
 */
apr_interval_time_t vt_fiber_parked_time(const vt_fiber_t *f);

/** Has @a f been cancelled, or is its runtime stopping? Checked by every
 *  wait, so a fiber that runs while stop begins sees it at once, even if
 *  its carrier is too busy to pass the cancel on yet. Inline: a yield
 *  makes this check. */
static inline int vt_fiber_is_cancelled(const vt_fiber_t *f)
{
    return atomic_load_explicit(&f->cancelled, memory_order_relaxed)
           || atomic_load_explicit(f->stopping, memory_order_relaxed);
}

/* The fiber is about to park or yield: run what vt_fiber_on_first_wait
 * deferred to this moment, once. */
static inline void vt_fiber_first_wait(vt_fiber_t *f)
{
    void (*fn)(void *) = f->first_wait;

    if (fn) {
        /* It runs inside a park, its waiter already reachable: a hooked
         * call in it (a contended lock) must not park again. */
        int transparent = f->transparent;
        f->first_wait = NULL;
        f->transparent = 0;
        fn(f->first_wait_arg);
        f->transparent = transparent;
    }
}

#endif /* VT_FIBER_H */
