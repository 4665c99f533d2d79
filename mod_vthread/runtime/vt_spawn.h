/**
 * @file  vt_spawn.h
 * @brief Making fibers: create, start, and give up or cancel the handle.
 *
 * A fiber is created on any thread (capacity reserved, a carrier chosen:
 * may fail) and then started (queued to that carrier: cannot fail). The
 * split lets the httpd glue decide at handler time and start later, when
 * the MPM is done with the connection.
 *
 * A handle from vt_spawn_create() is owned by the caller until passed to
 * vt_wait_join() (vt_wait.h; frees it once the fiber has ended),
 * vt_spawn_detach(), or, if never started, vt_spawn_discard().
 *
 * This file also holds the public vthread_spawn/join/cancel/cancelled,
 * vthread_defer and vthread_on_fiber (include/vthread.h).
 */
#ifndef VT_SPAWN_H
#define VT_SPAWN_H

#include <apr.h>
#include <apr_errno.h>

#include "vt_runtime.h"

/**
 * Create a fiber on @a rt's least loaded carrier without starting it;
 * this reserves one unit of max_fibers.
 * @param f where to store the handle
 * @param fn the fiber's body
 * @param arg passed to @a fn
 * @param label what the fiber serves (e.g. a request line), for the
 *        watchdog and stack overflow report; copied, may be NULL
 * @return APR_SUCCESS; APR_EAGAIN at max_fibers; APR_ECONNABORTED when the
 *         runtime is stopping; APR_EINVAL for a NULL @a rt or @a fn;
 *         APR_ENOMEM
 */
apr_status_t vt_spawn_create(vt_fiber_t **f, vt_runtime_t *rt,
                             vthread_fn_t fn, void *arg, const char *label);

/** Start a created fiber on its carrier. Any thread; never fails. */
void vt_spawn_start(vt_fiber_t *f);

/** Give back a created fiber that was never started. */
void vt_spawn_discard(vt_fiber_t *f);

/** Give up the handle: the fiber is freed when it ends. */
void vt_spawn_detach(vt_fiber_t *f);

/** Same as vthread_cancel(): its waits return APR_ECONNABORTED. */
void vt_spawn_cancel(vt_fiber_t *f);

#endif /* VT_SPAWN_H */
