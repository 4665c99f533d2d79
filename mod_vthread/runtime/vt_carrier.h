/**
 * @file  vt_carrier.h
 * @brief Carrier threads and the runtime that owns them.
 *
 * A carrier runs fibers one at a time on its own thread. It owns a run
 * queue, a timer heap, a reactor and a stack cache, all touched only from
 * its thread. Other threads reach it through two locked inboxes (fibers to
 * run, fibers to cancel) and a reactor wake-up.
 */
#ifndef VT_CARRIER_H
#define VT_CARRIER_H

#include <apr.h>
#include <apr_thread_proc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "vt_fcontext.h"
#include "vt_fiber.h"
#include "vt_reactor.h"
#include "vt_runtime.h"
#include "vt_stack.h"
#include "vt_timer.h"

typedef struct vt_carrier_t {
    vt_runtime_t *rt;
    int index;
    apr_thread_t *thread;
    vt_fcontext_t sched_ctx;    /**< the scheduler, while a fiber runs */
    const void *sched_stack;    /**< the scheduler's stack (vt_annotate.h) */
    size_t sched_stack_size;
    void *sched_fake_stack;
    vt_fiber_t *current;        /**< fiber running now (carrier thread) */
    vt_fiber_t *runq_head;      /**< ready fibers, FIFO */
    vt_fiber_t *runq_tail;
    vt_fiber_t *live_head;      /**< fibers received and not ended */
    vt_fiber_t *stackless_head; /**< fibers waiting for a stack, FIFO */
    vt_fiber_t *stackless_tail;
    apr_uint32_t owned;         /**< length of live_head */
    vt_reactor_t reactor;
    vt_timer_heap_t timers;
    vt_stack_cache_t stacks;
    int stop_seen;              /**< this carrier has cancelled its fibers */
    apr_time_t next_trim;       /**< when to trim the stack cache next */
    apr_time_t trim_deferred_since; /**< first deferred tick, or 0 */
    int released_since_tick;    /**< fibers ended since the last tick */

    pthread_mutex_t inbox_lock;
    vt_fiber_t *inbox_head;     /**< to make runnable (new or woken) */
    vt_fiber_t *inbox_tail;
    vt_fiber_t *cancel_head;    /**< to cancel */
    int closed;                 /**< exited: the inbox takes no more */

    /* Read from other threads (stats, watchdog, placement). */
    _Atomic apr_uint32_t live;      /**< created for it and not ended */
    _Atomic apr_uint32_t runnable;
    _Atomic apr_uint32_t parked[3]; /**< by vt_park_kind_e */
    _Atomic apr_uint64_t switches;
    _Atomic apr_uint64_t started;
    _Atomic apr_uint32_t stacks_cached;
    _Atomic apr_size_t stacks_hot_bytes;
    _Atomic apr_uint32_t pinned;
    _Atomic(vt_stack_t *) running_stack; /**< NULL when in the scheduler */
    _Atomic int watch_reading;  /**< the watchdog may be reading a stack
                                     header: no stack is unmapped */
    _Atomic int exited;
} vt_carrier_t;

struct vt_runtime_t {
    vt_runtime_config_t cfg;
    apr_pool_t *pool;
    int ncarriers;
    vt_carrier_t *carriers;
    _Atomic apr_uint32_t live;     /**< fibers created and not ended */
    _Atomic apr_uint64_t next_id;
    _Atomic int stopping;
    int stopped;
    pthread_mutex_t exit_lock;     /**< carriers_exited, with exit_cond */
    pthread_cond_t exit_cond;
    int carriers_exited;
    struct vt_watchdog_t *watchdog;
};

/** Has @a f been cancelled, or is its runtime stopping? Checked by every
 *  wait, so a fiber that runs while stop begins sees it at once, even if
 *  its carrier is too busy to pass the cancel on yet. Inline: a yield
 *  makes this check. */
static inline int vt_fiber_is_cancelled(vt_fiber_t *f)
{
    return atomic_load_explicit(&f->cancelled, memory_order_relaxed)
           || atomic_load_explicit(&f->carrier->rt->stopping,
                                   memory_order_relaxed);
}

/** This thread's carrier, or NULL. */
vt_carrier_t *vt_carrier_self(void);

/** Set up a carrier's state (not its thread). */
apr_status_t vt_carrier_init(vt_carrier_t *c, vt_runtime_t *rt, int index);

/** Free what vt_carrier_init() made (after the thread exited). */
void vt_carrier_destroy(vt_carrier_t *c);

/** The carrier thread's body. */
void *APR_THREAD_FUNC vt_carrier_main(apr_thread_t *thread, void *data);

/**
 * Make @a f runnable on its carrier, from any thread.
 * @return 1, or 0 if the carrier has exited (only a fiber that was never
 *         started can meet one: the caller ends it unrun)
 */
int vt_carrier_schedule(vt_fiber_t *f);

/** Ask @a f's carrier to cancel its wait (from another thread). */
void vt_carrier_post_cancel(vt_fiber_t *f);

/** Wake a carrier so it notices the runtime is stopping. */
void vt_carrier_notify(vt_carrier_t *c);

/** Report through the runtime's log callback (printf-style). */
void vt_log(const vt_runtime_t *rt, int level, int msg_id,
            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Relaxed add on a counter that only its carrier writes. */
#define VT_COUNT_ADD(counter, delta) \
    atomic_store_explicit(&(counter), \
        atomic_load_explicit(&(counter), memory_order_relaxed) + (delta), \
        memory_order_relaxed)

#endif /* VT_CARRIER_H */
