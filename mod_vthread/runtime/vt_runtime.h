/**
 * @file  vt_runtime.h
 * @brief The fiber runtime as the httpd glue, tests and benchmarks see it.
 *
 * One runtime per process (per httpd child): N carrier threads, each with
 * its own run queue, timer heap, reactor and stack cache, plus a watchdog
 * thread. The first runtime created becomes the process default that the
 * public vthread_* calls use off a fiber.
 *
 * Lifecycle rules:
 * - vt_runtime_create() starts the carriers; vt_runtime_stop() cancels
 *   every fiber, waits for them to end, joins the carriers and frees every
 *   stack. Nothing may be submitted after stop has begun.
 * - A fiber is created (capacity reserved, may fail) and then started
 *   (cannot fail). This split lets the httpd glue decide at handler time
 *   and start later, when the MPM is done with the connection.
 * - A vt_fiber_t handle from vt_fiber_create() is owned by the caller until
 *   passed to vt_fiber_join() (which frees it once the fiber has ended) or
 *   vt_fiber_detach().
 *
 * This header includes no httpd header.
 */
#ifndef VT_RUNTIME_H
#define VT_RUNTIME_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "vthread.h"

/** Opaque runtime. */
typedef struct vt_runtime_t vt_runtime_t;
/** A fiber; the same object as the public vthread_t. */
typedef struct vthread_t vt_fiber_t;

/** Log levels passed to vt_log_fn, in httpd's order. */
typedef enum {
    VT_LOG_ERR = 3,
    VT_LOG_WARNING = 4,
    VT_LOG_INFO = 6,
    VT_LOG_DEBUG = 7
} vt_log_level_e;

/** What a runtime message is about, so the httpd glue can give each its
 *  own APLOGNO. */
typedef enum {
    VT_MSG_PINNED = 1,      /**< a fiber held its carrier past pinned_warn */
    VT_MSG_CONFIG,          /**< vt_runtime_create() refused a setting */
    VT_MSG_THREAD,          /**< a carrier or watchdog thread failed */
    VT_MSG_STACK,           /**< a fiber stack could not be mapped */
    VT_MSG_STOP_WAIT,       /**< stop is waiting for fibers that do not end */
    VT_MSG_MISUSE           /**< an API call that needs a fiber made off one */
} vt_msg_e;

/**
 * Where the runtime reports (pinned fibers, failures). Called from carrier
 * or watchdog threads; must be thread-safe.
 * @param baton vt_runtime_config_t.log_baton
 * @param level a vt_log_level_e
 * @param msg_id a vt_msg_e
 * @param msg a NUL-terminated message, without newline
 */
typedef void (*vt_log_fn)(void *baton, int level, int msg_id,
                          const char *msg);

/** How carrier and watchdog threads are created (httpd: ap_thread_create). */
typedef apr_status_t (*vt_thread_create_fn)(apr_thread_t **thread,
                                            apr_threadattr_t *attr,
                                            apr_thread_start_t fn,
                                            void *data, apr_pool_t *p);

/** Runtime settings; fill with vt_runtime_config_default() first. */
typedef struct vt_runtime_config_t {
    /** Carrier threads; 0 means one per online CPU. 1..VT_MAX_CARRIERS. */
    int carriers;
    /** Usable stack bytes per fiber, rounded up to pages; a guard page is
     *  added below. VT_MIN_STACK_SIZE..VT_MAX_STACK_SIZE. */
    apr_size_t stack_size;
    /** Most fibers alive at once in this runtime; 0 is unlimited. */
    apr_uint32_t max_fibers;
    /** Released stacks each carrier keeps committed (fast reuse); above
     *  it, released stacks are kept but their pages given back. */
    apr_uint32_t stack_cache_hot;
    /** Report a fiber that holds its carrier this long; 0 disables the
     *  watchdog. */
    apr_interval_time_t pinned_warn;
    /** Where to report; NULL writes to stderr. */
    vt_log_fn log;
    /** Passed to @a log. */
    void *log_baton;
    /** NULL means apr_thread_create. */
    vt_thread_create_fn thread_create;
} vt_runtime_config_t;

/** Upper bound on carriers per runtime. */
#define VT_MAX_CARRIERS 256
/** Smallest accepted stack size. */
#define VT_MIN_STACK_SIZE (16 * 1024)
/** Largest accepted stack size. */
#define VT_MAX_STACK_SIZE (64 * 1024 * 1024)
/** Default stack size. */
#define VT_DEFAULT_STACK_SIZE (256 * 1024)
/** Longest label kept per fiber (bytes, with NUL); longer ones are cut. */
#define VT_LABEL_MAX 160

/** Fill @a cfg with defaults (online CPUs, 256 KiB, unlimited, 100 ms). */
void vt_runtime_config_default(vt_runtime_config_t *cfg);

/**
 * Check a configuration without starting anything.
 * @param why on APR_EINVAL, a static message naming the bad field
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t vt_runtime_config_check(const vt_runtime_config_t *cfg,
                                     const char **why);

/**
 * Start a runtime: carriers, watchdog, and the guard-page handler.
 * @param rt where to store it
 * @param cfg settings (copied)
 * @param p pool for the runtime's lifetime; stop the runtime before the
 *        pool is destroyed (a cleanup registered on @a p stops it too)
 * @return APR_SUCCESS, APR_EINVAL for a bad config (logged), or the error
 *         from creating threads or pollers
 */
apr_status_t vt_runtime_create(vt_runtime_t **rt,
                               const vt_runtime_config_t *cfg,
                               apr_pool_t *p);

/**
 * Stop: refuse new fibers, cancel every fiber (waits return
 * APR_ECONNABORTED), wait for all to end (a fiber that never parks is
 * waited for), join the carriers and watchdog, free every stack. Safe to
 * call twice.
 */
apr_status_t vt_runtime_stop(vt_runtime_t *rt);

/** The process default runtime (the first created and not stopped). */
vt_runtime_t *vt_runtime_default(void);

/** Number of carriers. */
int vt_runtime_carriers(const vt_runtime_t *rt);

/** Fibers alive (created and not yet ended) in the whole runtime. */
apr_uint32_t vt_runtime_live(const vt_runtime_t *rt);

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

/**
 * Read carrier @a index's counters (0..vt_runtime_carriers()-1).
 * @return APR_SUCCESS or APR_EINVAL for a bad index
 */
apr_status_t vt_runtime_carrier_stats(const vt_runtime_t *rt, int index,
                                      vt_carrier_stats_t *out);

/**
 * Create a fiber on the least loaded carrier without starting it; this
 * reserves one unit of max_fibers.
 * @param f where to store the handle (owned by the caller: start it, then
 *        join or detach it; or discard it if never started)
 * @param fn the fiber's body
 * @param arg passed to @a fn
 * @param label what the fiber serves (e.g. a request line), for the
 *        watchdog and stack overflow report; copied, may be NULL
 * @return APR_SUCCESS; APR_EAGAIN at max_fibers; APR_ECONNABORTED when the
 *         runtime is stopping; APR_EINVAL for a NULL @a fn; APR_ENOMEM
 */
apr_status_t vt_fiber_create(vt_fiber_t **f, vt_runtime_t *rt,
                             vthread_fn_t fn, void *arg, const char *label);

/** Start a created fiber on its carrier. Any thread; never fails. */
void vt_fiber_start(vt_fiber_t *f);

/** Give back a created fiber that was never started. */
void vt_fiber_discard(vt_fiber_t *f);

/** Give up the handle: the fiber is freed when it ends. */
void vt_fiber_detach(vt_fiber_t *f);

/** Same as vthread_join(). */
apr_status_t vt_fiber_join(vt_fiber_t *f, apr_interval_time_t timeout,
                           apr_status_t *result);

/** Same as vthread_cancel(). */
void vt_fiber_cancel(vt_fiber_t *f);

/** The fiber running on this thread, or NULL off a fiber. */
vt_fiber_t *vt_fiber_current(void);

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

#endif /* VT_RUNTIME_H */
