/* Making fibers, and the public spawn/join/cancel/defer calls. See
 * vt_spawn.h. */
#include "vt_spawn.h"
#include "vt_carrier.h"
#include "vt_log.h"
#include "vt_wait.h"

#include <stdatomic.h>
#include <stdlib.h>

apr_status_t vt_spawn_create(vt_fiber_t **out, vt_runtime_t *rt,
                             vthread_fn_t fn, void *arg, const char *label)
{
    *out = NULL;
    if (!rt || !fn) {
        return APR_EINVAL;
    }
    return vt_runtime_admit(rt, out, fn, arg, label);
}

void vt_spawn_start(vt_fiber_t *f)
{
    if (!vt_carrier_schedule(f)) {
        /* The runtime stopped before it could run: end it unrun. */
        f->result = APR_ECONNABORTED;
        f->state = VT_FIBER_DONE;
        vt_runtime_fiber_ended(f);
    }
}

void vt_spawn_discard(vt_fiber_t *f)
{
    vt_runtime_unadmit(f);
    vt_fiber_free(f);
}

void vt_spawn_detach(vt_fiber_t *f)
{
    vt_fiber_unref(f);
}

void vt_spawn_cancel(vt_fiber_t *f)
{
    if (!f || atomic_exchange(&f->cancelled, 1)) {
        return;
    }
    if (vt_carrier_self() == f->carrier) {
        /* Only the fiber or its scheduler touch f->wait: safe here. */
        if (f->state == VT_FIBER_PARKED) {
            vt_wait_cancel_parked(f);
        }
        return;
    }
    vt_carrier_post_cancel(f);
}

/* ---- public API ----------------------------------------------------- */

int vthread_on_fiber(void)
{
    return vt_fiber_current() != NULL;
}

apr_status_t vthread_spawn(vthread_t **thread, vthread_fn_t fn, void *arg)
{
    vt_runtime_t *rt = vt_runtime_of_caller();
    vt_fiber_t *parent = vt_fiber_current();
    vt_fiber_t *f;
    apr_status_t rv;

    if (thread) {
        *thread = NULL;
    }
    if (!rt) {
        vt_log(NULL, VT_LOG_ERR, VT_MSG_MISUSE,
               "vthread_spawn: no fiber runtime runs in this process "
               "(is mod_vthread loaded and the child started?)");
        return APR_EINVAL;
    }
    rv = vt_spawn_create(&f, rt, fn, arg, parent ? parent->label : NULL);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    vt_spawn_start(f);
    if (thread) {
        *thread = f;
    }
    else {
        vt_spawn_detach(f);
    }
    return APR_SUCCESS;
}

apr_status_t vthread_join(vthread_t *thread, apr_interval_time_t timeout,
                          apr_status_t *result)
{
    return vt_wait_join(thread, timeout, result);
}

void vthread_cancel(vthread_t *thread)
{
    vt_spawn_cancel(thread);
}

int vthread_cancelled(void)
{
    vt_fiber_t *f = vt_fiber_current();
    return f ? vt_fiber_is_cancelled(f) : 0;
}

apr_status_t vthread_defer(void (*fn)(void *arg), void *arg)
{
    vt_fiber_t *f = vt_fiber_current();
    vt_defer_t *d;
    if (!fn) {
        return APR_EINVAL;
    }
    if (!f) {
        vt_log(vt_runtime_config(vt_runtime_default()), VT_LOG_WARNING,
               VT_MSG_MISUSE,
               "vthread_defer called off a fiber: a plain thread has no "
               "end to run it at; use a pool cleanup there");
        return APR_EINVAL;
    }
    d = malloc(sizeof(*d));
    if (!d) {
        return APR_ENOMEM;
    }
    d->fn = fn;
    d->arg = arg;
    d->next = f->defers;
    f->defers = d;
    return APR_SUCCESS;
}
