/**
 * @file  vt_runtime.h
 * @brief The fiber runtime of one process: its carriers, watchdog and
 *        stop, as the httpd glue, tests and benchmarks start and read it.
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
 * - Fibers are made with vt_spawn.h, waited for with vt_wait_join()
 *   (vt_wait.h). vt_runtime_admit() and vt_runtime_fiber_ended() are the
 *   two ends of a fiber's account, for vt_spawn.c.
 *
 * This header includes no httpd header.
 */
#ifndef VT_RUNTIME_H
#define VT_RUNTIME_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>

#include "vt_carrier.h"
#include "vt_config.h"
#include "vt_fiber.h"

/** Opaque runtime. */
typedef struct vt_runtime_t vt_runtime_t;

/**
 * Start a runtime: carriers, watchdog, and the guard-page handler.
 * @param rt where to store it
 * @param cfg settings (copied)
 * @param p pool for the runtime's lifetime; stop the runtime before the
 *        pool is destroyed (a cleanup registered on @a p stops it too)
 * @return APR_SUCCESS, APR_EINVAL for a bad config (logged), or the error
 *         from creating threads or pollers
 */
apr_status_t vt_runtime_create(vt_runtime_t **rt, const vt_config_t *cfg,
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

/** The runtime whose carrier runs the calling thread, else the default. */
vt_runtime_t *vt_runtime_of_caller(void);

/** The runtime's settings (as copied and rounded), or NULL for NULL. */
const vt_config_t *vt_runtime_config(const vt_runtime_t *rt);

/** Number of carriers. */
int vt_runtime_carriers(const vt_runtime_t *rt);

/** Fibers alive (created and not yet ended) in the whole runtime. */
apr_uint32_t vt_runtime_live(const vt_runtime_t *rt);

/**
 * Read carrier @a index's counters (0..vt_runtime_carriers()-1).
 * @return APR_SUCCESS or APR_EINVAL for a bad index
 */
apr_status_t vt_runtime_carrier_stats(const vt_runtime_t *rt, int index,
                                      vt_carrier_stats_t *out);

/**
 * Make a fiber that counts in @a rt: reserve one unit of max_fibers (before
 * allocating, so a refusal costs nothing), allocate it (vt_fiber_new), pick
 * the least loaded carrier (ties go to the caller's own, so a fiber's
 * children stay local when it is fair) and give it its id. Not started.
 * @return APR_SUCCESS; APR_EAGAIN at max_fibers; APR_ECONNABORTED when
 *         stopping; APR_ENOMEM
 */
apr_status_t vt_runtime_admit(vt_runtime_t *rt, vt_fiber_t **f,
                              vthread_fn_t fn, void *arg, const char *label);

/** Undo vt_runtime_admit() for a fiber that will never be started. */
void vt_runtime_unadmit(vt_fiber_t *f);

/**
 * A fiber has ended, run or not: count it out, wake its joiners, drop its
 * run reference. Its carrier calls this (a hook); so does vt_spawn_start()
 * for a fiber whose carrier had already exited.
 */
void vt_runtime_fiber_ended(vt_fiber_t *f);

#endif /* VT_RUNTIME_H */
