/**
 * @file  vt_carrier.h
 * @brief Carrier threads: the scheduler that runs fibers.
 *
 * A carrier runs fibers one at a time on its own thread. It owns a run
 * queue, a timer heap, a reactor and a stack cache, all touched only from
 * its thread. Other threads reach it through two locked inboxes (fibers to
 * run, fibers to cancel) and a reactor wake-up.
 *
 * The carrier sits below the waits and the runtime: it calls nothing of
 * theirs. What it must tell them (a fiber ended, a parked fiber must end
 * its wait, the thread is leaving) goes through the vt_carrier_hooks_t its
 * owner hands to vt_carrier_init().
 */
#ifndef VT_CARRIER_H
#define VT_CARRIER_H

#include <apr.h>
#include <apr_thread_proc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "vt_config.h"
#include "vt_fiber.h"
#include "vt_reactor.h"
#include "vt_stack.h"
#include "vt_timer.h"

struct vt_carrier_t;

/** What a carrier tells its owner. Called on the carrier's thread. */
typedef struct vt_carrier_hooks_t {
    /** @a f has ended (run or not) and its carrier let go of it; the hook
     *  owns the fiber's run reference from here. */
    void (*fiber_ended)(vt_fiber_t *f);
    /** End parked @a f's cancellable wait, if any (cancel, stop). */
    void (*cancel_parked)(vt_fiber_t *f);
    /** The carrier's thread is about to return (after stop). */
    void (*exited)(struct vt_carrier_t *c);
} vt_carrier_hooks_t;

typedef struct vt_carrier_t {
    void *owner;                /**< the runtime (opaque here) */
    const vt_config_t *cfg;     /**< the owner's settings */
    const _Atomic int *stopping; /**< the owner's stop flag */
    const vt_carrier_hooks_t *hooks;
    int index;
    apr_thread_t *thread;
    vt_fiber_sched_t sched;     /**< where its fibers switch out to */
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
    _Atomic apr_uint32_t parked[3]; /**< by vt_fiber_park_e */
    _Atomic apr_uint64_t switches;
    _Atomic apr_uint64_t started;
    _Atomic apr_uint32_t stacks_cached;
    _Atomic apr_size_t stacks_hot_bytes;
    _Atomic apr_uint32_t pinned;
    _Atomic(vt_stack_t *) running_stack; /**< NULL when in the scheduler */
    _Atomic int watch_reading;  /**< the watchdog may be reading a stack
                                     header: no stack is unmapped */
} vt_carrier_t;

/** Counters of one carrier, read from any thread. */
typedef struct vt_carrier_stats_t {
    apr_uint32_t live;          /**< fibers assigned and not ended */
    apr_uint32_t runnable;      /**< ready to run or running */
    apr_uint32_t parked_timer;  /**< in vthread_sleep() */
    apr_uint32_t parked_io;     /**< waiting for a socket or fd */
    apr_uint32_t parked_sync;   /**< waiting on event/mutex/cond/chan/join */
    apr_uint64_t switches;      /**< fiber switch-ins so far */
    apr_uint64_t started;       /**< fibers started so far */
    apr_uint32_t stacks_cached; /**< released stacks kept for reuse */
    apr_size_t stacks_cached_bytes; /**< of those, bytes still committed */
    apr_uint32_t pinned;        /**< pinned-fiber reports so far */
} vt_carrier_stats_t;

/** Read @a c's counters; any thread. */
void vt_carrier_stats(const vt_carrier_t *c, vt_carrier_stats_t *out);

/** This thread's carrier, or NULL. */
vt_carrier_t *vt_carrier_self(void);

/**
 * Set up a carrier's state (not its thread).
 * @param owner what vt_carrier_t.owner is (the runtime)
 * @param cfg settings, read for the carrier's life
 * @param stopping set by the owner to stop the carrier (then notify it)
 * @param hooks how the carrier tells its owner (vt_carrier_hooks_t)
 */
apr_status_t vt_carrier_init(vt_carrier_t *c, int index, void *owner,
                             const vt_config_t *cfg,
                             const _Atomic int *stopping,
                             const vt_carrier_hooks_t *hooks);

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

/** Relaxed add on a counter that only its carrier writes. */
#define VT_COUNT_ADD(counter, delta) \
    atomic_store_explicit(&(counter), \
        atomic_load_explicit(&(counter), memory_order_relaxed) + (delta), \
        memory_order_relaxed)

#endif /* VT_CARRIER_H */
